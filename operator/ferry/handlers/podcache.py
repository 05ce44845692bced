"""The operator's memory of its pods, and of the pod changes it made that the watch owes it.

Owns: Ferry's pods by Job (each as a `PodView` with the resourceVersion it was seen at), fed
by the pod informer (a listing, the watch from the listing's version, a listing again when
the watch expires: what a listing lacks is deleted, a tombstone) and a fresh LIST of one
Job's pods when a pass needs to confirm the cache. An older version never replaces a newer
one, and a pod seen deleted (its UID) never comes back, whatever a listing begun before its
deletion says. Beside them, the *expectations*: the pods this process created or
deleted whose watch event has not arrived yet, each with a deadline (`EXPECTATION_SECONDS`);
and the last view of a run pod Kueue stopped and deleted (`STOPPED_SECONDS`), which may be gone
before a pass reads Kueue's mark on it.
Until its creation is seen, the cache may lack a pod the Job's status says exists, so a pass
must wait rather than decide from it; until its deletion is seen, a pod is reported as
deleting, so that a delete is not repeated. And the *strays*: Jobs a pod of which was seen
standing since their last pass (after a restart, a terminal Job whose pass was cut short may
still have pods to release). Must not: talk to the API, decide anything, or know about queues.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable
from typing import NamedTuple

from ferry.api import names
from ferry.decisions.observation import PodView, pod_view
from ferry.handlers.jobcache import Key, Obj, Tombstones, resource_version, uid_of, vanished

#: How long a pod this process created or deleted may take to show in the watch.
EXPECTATION_SECONDS = 10.0
#: How long a name found held by another object is reported to the Job's passes before a
#: pass tries to create it again (the decision looks again after 30 s).
FOREIGN_SECONDS = 25.0
#: How long a refused create is reported before a pass tries again: doubling from the first
#: to the last (the Job controller backs off failed pods alike, 10 s up to 6 min).
REFUSED_FIRST_SECONDS = 10.0
REFUSED_MAX_SECONDS = 300.0
#: How long the last view of a run pod that Kueue stopped and that is deleted is kept: Kueue
#: deletes it right after marking it, and the pass that reads the mark may come after.
STOPPED_SECONDS = 600.0

Expectations = dict[Key, dict[str, float]]


class PodChange(NamedTuple):
    """What one pod event changed in the cache."""

    job: Key
    before: PodView | None
    after: PodView | None
    #: The pod is one this process created, and this is the first the watch showed of it.
    expected: bool


class PodCache:
    """Pods by Job, with the expectations of this process's own creates and deletes."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._pods: dict[Key, dict[str, tuple[int, PodView]]] = {}
        self._created: Expectations = {}
        self._deleted: Expectations = {}
        self._foreign: Expectations = {}
        #: Refused creates by Job: child -> (report until, the apiserver's words, refusals).
        self._refusals: dict[Key, dict[str, tuple[float, str, int]]] = {}
        self._stray: set[Key] = set()
        #: Run pods Kueue stopped, deleted since: their last view (ended), until a deadline.
        self._stopped: dict[Key, dict[str, tuple[float, PodView]]] = {}
        self._monotonic = monotonic
        self.deleted = Tombstones(monotonic=monotonic)

    # ---------------------------------------------------------------- pods

    def put(self, kind: str | None, obj: Obj) -> PodChange | None:
        """Keep what a watch event (`kind` ADDED, MODIFIED, DELETED, or None for a listing)
        shows of a pod, unless it is older than what is known; None for a pod of no Job."""
        meta = obj.get("metadata", {})
        job = (meta.get("labels") or {}).get(names.LABEL_JOB)
        if not job:
            return None
        key = (meta.get("namespace", ""), job)
        name = meta.get("name", "")
        if kind != "DELETED" and uid_of(obj) in self.deleted:
            return None  # seen deleted already: an older view never brings it back
        cached = self._pods.setdefault(key, {})
        before = cached.get(name)
        if kind == "DELETED":
            self.deleted.add(uid_of(obj))
            self._remember_stopped(key, obj)
            # The deletion of an older pod of that name leaves the newer one kept.
            if before is None or before[1].uid in ("", uid_of(obj)):
                cached.pop(name, None)
                _drop(self._deleted, key, name)
        elif resource_version(obj) >= (before[0] if before else 0):
            view = pod_view(obj)
            if view is not None:
                cached[name] = (resource_version(obj), view)
            if meta.get("deletionTimestamp"):
                _drop(self._deleted, key, name)
        expected = _drop(self._created, key, name)
        after = cached.get(name)
        if not cached:
            del self._pods[key]
        return PodChange(key, before[1] if before else None, after[1] if after else None, expected)

    def relisted(
        self, list_rv: int, listed: frozenset[tuple[str, str]], namespace: str | None
    ) -> list[PodChange]:
        """A listing of pods at `list_rv` is over: those it lacks that were known at that
        version or older are deleted (tombstones): what each deletion changed."""
        known = {
            (key[0], name): (key, rv, view)
            for key, pods in self._pods.items()
            for name, (rv, view) in pods.items()
        }
        changes = []
        for ns_name in vanished(((k, v[1]) for k, v in known.items()), listed, list_rv, namespace):
            key, _, view = known[ns_name]
            self.deleted.add(view.uid)
            cached = self._pods[key]
            del cached[ns_name[1]]
            if not cached:
                del self._pods[key]
            _drop(self._deleted, key, ns_name[1])
            _drop(self._created, key, ns_name[1])
            changes.append(PodChange(key, view, None, False))
        return changes

    def replace(self, key: Key, listed: Iterable[Obj]) -> list[PodView]:
        """Believe a fresh LIST of the Job's pods over the watch: the pods' views. A pod the
        watch showed deleted meanwhile stays deleted, and one it showed newer stays newer."""
        known = self._pods.get(key, {})
        fresh = {}
        for p in listed:
            name = p["metadata"]["name"]
            view = pod_view(p)
            if view is None or view.uid in self.deleted:
                continue
            rv = resource_version(p)
            cached = known.get(name)
            fresh[name] = cached if cached is not None and cached[0] > rv else (rv, view)
        if fresh:
            self._pods[key] = fresh
        else:
            self._pods.pop(key, None)
        return [v for _, v in fresh.values()]

    def views(self, key: Key) -> list[PodView]:
        """The Job's pods as last seen, in the order they were first seen; then the run pods
        Kueue stopped and that are gone since, as last seen (ended)."""
        found = [view for _, view in self._pods.get(key, {}).values()]
        stopped = self._stopped.get(key)
        if stopped:
            now = self._monotonic()
            for name, (until, view) in list(stopped.items()):
                if until <= now:
                    del stopped[name]
                elif all(v.name != name for v in found):
                    found.append(view)
            if not stopped:
                del self._stopped[key]
        return found

    def _remember_stopped(self, key: Key, obj: Obj) -> None:
        """A run pod Kueue marked stopped (preempted) is gone: keep its last view a while, as
        ended, so that the pass reading it sees a preemption, not a lost pod."""
        view = pod_view(obj)
        if view is None or view.role != names.ROLE_RUN or not view.stopped:
            return
        ended = dataclasses.replace(view, phase="Failed", deleting=True)
        until = self._monotonic() + STOPPED_SECONDS
        self._stopped.setdefault(key, {})[view.name] = (until, ended)

    # ---------------------------------------------------------------- expectations

    def expect_created(self, key: Key, name: str) -> None:
        """This process created the pod: its watch event is due."""
        self._expect(self._created, key, name)

    def expect_deleted(self, key: Key, name: str) -> None:
        """This process deleted the pod: it counts as deleting until the watch says so."""
        self._expect(self._deleted, key, name)

    def forget_created(self, key: Key, name: str) -> bool:
        """Stop waiting for the pod's creation to show; False when nothing waited for it."""
        return _drop(self._created, key, name)

    def unseen_created(self, key: Key) -> set[str]:
        """The pods this process created for the Job that the cache does not show yet
        (within their deadline). Those it now shows are no longer waited for."""
        pending = self._pending(self._created, key)
        seen = pending & set(self._pods.get(key, {}))
        for name in seen:  # the watch event beat the create call's return
            _drop(self._created, key, name)
        return pending - seen

    def deleting(self, key: Key) -> set[str]:
        """The Job's pods this process deleted whose deletion the watch has not shown yet
        (within their deadline)."""
        return self._pending(self._deleted, key)

    def note_refused(self, key: Key, kind: str, name: str, words: str) -> None:
        """The apiserver refused to create `kind/name` for the Job, in these words. It is
        reported to the Job's passes for a while that doubles with each refusal in a row
        (10 s, 20 s, ... 5 min), then a pass tries again."""
        child = f"{kind}/{name}"
        tries = self._refusals.get(key, {}).get(child, (0.0, "", 0))[2] + 1
        wait = min(REFUSED_FIRST_SECONDS * 2 ** (tries - 1), REFUSED_MAX_SECONDS)
        self._refusals.setdefault(key, {})[child] = (self._monotonic() + wait, words, tries)

    def refused(self, key: Key) -> dict[str, str]:
        """The Job's children ("Kind/name") the apiserver refused recently, with its words."""
        now = self._monotonic()
        return {c: w for c, (due, w, _) in self._refusals.get(key, {}).items() if due >= now}

    def forget_refusals(self, key: Key, child: str | None = None) -> None:
        """Start the backoff afresh: for `child` ("Kind/name"), made at last, or for every
        child of a Job that is gone."""
        if child is None:
            self._refusals.pop(key, None)
        elif key in self._refusals:
            self._refusals[key].pop(child, None)

    def note_foreign(self, key: Key, kind: str, name: str) -> None:
        """Ferry went to create `kind/name` for the Job and found it made by someone else."""
        self._expect(self._foreign, key, f"{kind}/{name}", FOREIGN_SECONDS)

    def foreign(self, key: Key) -> frozenset[str]:
        """The Job's child names ("Kind/name") found held by other objects, recently."""
        return frozenset(self._pending(self._foreign, key))

    def _expect(
        self, table: Expectations, key: Key, name: str, seconds: float = EXPECTATION_SECONDS
    ) -> None:
        table.setdefault(key, {})[name] = self._monotonic() + seconds

    def _pending(self, table: Expectations, key: Key) -> set[str]:
        now = self._monotonic()
        entries = table.get(key)
        if entries is None:
            return set()
        for name in [n for n, due in entries.items() if due < now]:
            del entries[name]
        if not entries:
            del table[key]
        return set(entries)

    # ---------------------------------------------------------------- strays

    def mark_stray(self, key: Key) -> None:
        """A pod of the Job was seen standing: its next pass looks at its pods even when the
        Job is terminal, to release them."""
        self._stray.add(key)

    def is_stray(self, key: Key) -> bool:
        return key in self._stray

    def take_stray(self, key: Key) -> bool:
        """Whether the Job was marked stray; the mark is cleared (one pass looks)."""
        if key in self._stray:
            self._stray.discard(key)
            return True
        return False


def _drop(table: Expectations, key: Key, name: str) -> bool:
    """Remove one expectation (and the Job's table when it empties); whether it was there."""
    entries = table.get(key)
    if entries is None or entries.pop(name, None) is None:
        return False
    if not entries:
        del table[key]
    return True
