"""Progress reporting for uploads and downloads: a tiny protocol, a rich implementation for
terminals and notebooks, and a silent one.

Owns: how `progress=True` looks. Must not: know what is being transferred.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

#: Advances a task by n bytes.
Advance = Callable[[int], None]


class Progress(Protocol):
    def task(self, description: str, total: int) -> Advance: ...

    def close(self) -> None: ...


class NoProgress:
    def task(self, description: str, total: int) -> Advance:
        return lambda n: None

    def close(self) -> None:
        return None


class RichProgress:
    """One bar per file (bytes, speed, time left), on stderr unless a console is given."""

    def __init__(self, console: Any = None) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )
        from rich.progress import Progress as _Progress

        self._bar = _Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console or Console(stderr=True),
        )
        self._started = False

    def task(self, description: str, total: int) -> Advance:
        if not self._started:
            self._bar.start()
            self._started = True
        task_id = self._bar.add_task(description, total=max(total, 0))
        if total == 0:
            self._bar.update(task_id, completed=0, total=0)

        def advance(n: int) -> None:
            self._bar.advance(task_id, n)

        return advance

    def close(self) -> None:
        if self._started:
            self._bar.stop()
            self._started = False


def resolve(progress: bool | Progress | None) -> Progress:
    if progress is True:
        return RichProgress()
    if not progress:
        return NoProgress()
    return progress
