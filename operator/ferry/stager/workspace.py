"""Which files under a root may be read, and reading them without escaping the root.

Owns: the walk that selects files under a root (the workspace's work/, or a pvc input's
directory) by include/exclude globs, and the symlink policy: a symlink whose target resolves
to a regular file inside the root is read by content at the link's own path; one that points
outside the root, dangles, loops or names a directory is skipped and reported with the reason.
Directory symlinks are never followed, so a walk cannot loop or leave the root. FIFOs, sockets
and devices are skipped. Files are opened O_NOFOLLOW after re-checking the resolved path, so
nothing outside the root is ever read. Must not: talk to the network.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ferry.stager import globs


class UnsafePathError(Exception):
    """The path resolves outside the root or is not a regular file."""


@dataclass(frozen=True)
class Entry:
    """A file to read: its path relative to the root (`/`-separated), the resolved path to
    open (inside the root) and its size."""

    path: str
    source: Path
    size: int


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str


@dataclass
class Selection:
    files: list[Entry] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


def inside(root_real: str, candidate_real: str) -> bool:
    """Whether the resolved path candidate_real is root_real or below it."""
    return candidate_real == root_real or candidate_real.startswith(root_real.rstrip("/") + "/")


def _symlink(
    full: str, root_real: str, boundary_name: str
) -> tuple[str | None, os.stat_result | None, str]:
    """(resolved target, its stat, reason it is skipped or "")."""
    try:
        st = os.stat(full)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return None, None, "symlink loop"
        return None, None, "broken symlink"
    target = os.path.realpath(full)
    if not inside(root_real, target):
        return None, None, f"symlink points outside {boundary_name}"
    if stat.S_ISDIR(st.st_mode):
        return None, None, "symlink to a directory (not followed)"
    if not stat.S_ISREG(st.st_mode):
        return None, None, "not a regular file"
    return target, st, ""


def select(
    root: Path,
    include: Iterable[str],
    exclude: Iterable[str] = (),
    *,
    boundary: Path | None = None,
    boundary_name: str = "the workspace",
) -> Selection:
    """Every file under `root` whose relative path matches an include glob and no exclude
    glob, never reading or naming anything outside `boundary` (default: `root`), which
    symlinks may point anywhere inside of. Sorted by path."""
    inc = list(include)
    exc = list(exclude)
    out = Selection()
    if not os.path.isdir(root) or os.path.islink(root):
        return out
    walk_root = os.path.realpath(root)
    root_real = os.path.realpath(boundary) if boundary is not None else walk_root
    if not inside(root_real, walk_root):
        return out
    stack: list[tuple[str, str]] = [(walk_root, "")]
    while stack:
        directory, rel_dir = stack.pop()
        try:
            with os.scandir(directory) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            if rel_dir and globs.selected(rel_dir, inc, exc):
                out.skipped.append(Skipped(rel_dir, "unreadable directory"))
            continue
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            try:
                is_link = entry.is_symlink()
                is_dir = not is_link and entry.is_dir(follow_symlinks=False)
            except OSError:
                continue
            if is_dir:
                stack.append((os.path.join(directory, entry.name), rel))
                continue
            if not globs.selected(rel, inc, exc):
                continue
            try:
                rel.encode("utf-8")
            except UnicodeEncodeError:
                out.skipped.append(
                    Skipped(rel.encode("utf-8", "replace").decode(), "name is not UTF-8")
                )
                continue
            full = os.path.join(directory, entry.name)
            if is_link:
                target, st, reason = _symlink(full, root_real, boundary_name)
                if target is None or st is None:
                    out.skipped.append(Skipped(rel, reason))
                    continue
                out.files.append(Entry(rel, Path(target), st.st_size))
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                out.skipped.append(Skipped(rel, "vanished"))
                continue
            if not stat.S_ISREG(st.st_mode):
                out.skipped.append(Skipped(rel, "not a regular file"))
                continue
            out.files.append(Entry(rel, Path(full), st.st_size))
    out.files.sort(key=lambda e: e.path)
    out.skipped.sort(key=lambda s: s.path)
    return out


def open_inside(root: Path, path: Path) -> int:
    """An O_RDONLY descriptor of `path`, a regular file that resolves inside `root`.

    The path is resolved again right before opening and the final component opened with
    O_NOFOLLOW (and O_NONBLOCK, so a FIFO swapped in cannot hang the read); raises UnsafePathError
    otherwise. The caller closes the descriptor."""
    root_real = os.path.realpath(root)
    real = os.path.realpath(path)
    if not inside(root_real, real) or real == root_real:
        raise UnsafePathError(f"{path} resolves outside {root}")
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(real, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafePathError(f"{path} became a symlink") from None
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise UnsafePathError(f"{path} is not a regular file")
    return fd
