"""What the Job watch last said of deleted parents, for a while, for their children's sake.

Owns: the last `ParentView` of each deleted Job that some Job names in `spec.parents`,
marked deleted, kept `KEEP_SECONDS` (at most `MAX_KEPT` of them). A parent that finished and
was deleted soon after (`ttlSecondsAfterFinished: 0`) may be gone before a child's pass saw
it Finished; its last view still says Finished, the child records it (`status.parents`) and
goes on. A parent deleted before it finished is told apart from one never created. Memory
only: after a restart a parent deleted meanwhile is simply not found. Must not: decide, or
talk to the API.
"""

from __future__ import annotations

import dataclasses
import time
from collections import OrderedDict
from collections.abc import Callable

from ferry.decisions.observation import ParentView
from ferry.handlers.jobcache import Key

#: How long a deleted parent's last view is kept: children are queued at once when their
#: parent changes or goes, so a few minutes cover a busy queue.
KEEP_SECONDS = 600.0
#: The most deleted parents kept (the oldest go first).
MAX_KEPT = 10_000


class Departed:
    """Deleted parents' last views, by (namespace, name)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._kept: OrderedDict[Key, tuple[float, ParentView]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._kept)

    def remember(self, key: Key, last: ParentView) -> None:
        self._kept.pop(key, None)
        self._kept[key] = (self.clock(), dataclasses.replace(last, deleted=True))
        self._prune()

    def forget(self, key: Key) -> None:
        """A Job of this name exists again: it is the parent now."""
        self._kept.pop(key, None)

    def get(self, key: Key) -> ParentView | None:
        self._prune()
        kept = self._kept.get(key)
        return kept[1] if kept is not None else None

    def _prune(self) -> None:
        oldest = self.clock() - KEEP_SECONDS
        while self._kept:
            key, (since, _) = next(iter(self._kept.items()))
            if since >= oldest and len(self._kept) <= MAX_KEPT:
                break
            del self._kept[key]
