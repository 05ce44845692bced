"""Copying bytes into a file while hashing them (SHA-256), with as little CPU as Python allows.

Owns: `copy_hashed`, the one loop every download and stage-in copy runs: read from the
source straight into a few reused buffers (`readinto`: no new bytes object per chunk, no
copy beyond the kernel's), write each to the file, and hash it. A copy larger than
`BACKGROUND_HASH` is hashed in a second thread (hashlib releases the GIL on large buffers)
while the first reads and writes the next buffer; a buffer goes back to the reader only once
it is hashed. When the size is known the file's space is reserved first (`reserve`:
fallocate, its size unchanged), so a full disk fails before a byte is fetched and the file
system allocates once instead of per page; a shorter copy gives the unused space back. An
error writing the file carries the file's name, so a caller can tell it from a failed read.
`declared_length` reads the length a response declares; `raw_body` finds the http.client
body under a urllib3 response when reading it directly is safe.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import http.client
import os
import queue
import threading
from collections.abc import Callable
from typing import Any, BinaryIO, Protocol

#: Bytes read per buffer.
CHUNK = 1024 * 1024
#: Copies larger than this are hashed in a second thread while the first reads and writes.
BACKGROUND_HASH = 8 * 1024 * 1024
#: Buffers of a background copy: one being read into, the others written or being hashed.
BUFFERS = 4
#: fallocate(2) mode: allocate the blocks, leave the file's size alone.
FALLOC_FL_KEEP_SIZE = 1
#: fallocate errors that mean "there is no room", not "this file system cannot reserve".
NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def _load_fallocate() -> Callable[[int, int, int, int], int] | None:
    try:
        function = ctypes.CDLL(None, use_errno=True).fallocate
    except (OSError, AttributeError):  # not Linux, or a libc without it
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    function.restype = ctypes.c_int
    return function


_FALLOCATE = _load_fallocate()


class Readable(Protocol):
    def readinto(self, buffer: memoryview, /) -> int | None: ...


def copy_hashed(
    source: Readable,
    out: BinaryIO,
    *,
    size_hint: int | None = None,
    check: Callable[[int], None] | None = None,
) -> tuple[int, str]:
    """Copy `source` to its end into `out`; return (bytes copied, SHA-256 hex).

    `size_hint` (the expected size, when known) reserves the file's space and picks the
    background hash for large copies; `check`, when given, sees the running count after every
    buffer and may raise to stop. An OSError writing `out` names it (`filename`)."""
    reserved = reserve(out, size_hint)
    if size_hint is not None and size_hint > BACKGROUND_HASH:
        count, sha256 = _copy_background(source, out, check)
    else:
        digest = hashlib.sha256()
        view = memoryview(bytearray(CHUNK))
        count = 0
        while n := source.readinto(view):
            count += n
            if check is not None:
                check(count)
            digest.update(view[:n])
            _write(out, view[:n])
        sha256 = digest.hexdigest()
    if reserved and size_hint is not None and count < size_hint:
        _give_back(out)
    return count, sha256


def reserve(out: BinaryIO, size: int | None) -> bool:
    """Reserve `size` bytes of disk for `out` before writing (its size stays as it is).

    True when reserved. Raises OSError (naming the file) when the file system has no room;
    False when the size is unknown or the file system cannot reserve (the writes allocate as
    they go, as without it)."""
    if not size or size < 0 or _FALLOCATE is None:
        return False
    try:
        fd = out.fileno()
    except (AttributeError, OSError, ValueError):  # not a file (io.UnsupportedOperation)
        return False
    if _FALLOCATE(fd, FALLOC_FL_KEEP_SIZE, 0, size) == 0:
        return True
    code = ctypes.get_errno()
    if code in NO_ROOM:
        # ext4 keeps what it managed to allocate before running out: give it back, or a
        # refused reservation would leave the disk as full as it said it was.
        _give_back(out)
        raise OSError(code, os.strerror(code), getattr(out, "name", None))
    return False


def _give_back(out: BinaryIO) -> None:
    """Free what was reserved past the end of a copy that came out short."""
    out.flush()
    os.ftruncate(out.fileno(), out.tell())


def _write(out: BinaryIO, data: memoryview) -> None:
    try:
        out.write(data)
    except OSError as exc:
        if exc.filename is None:
            raise OSError(exc.errno, exc.strerror, getattr(out, "name", None)) from None
        raise


def _copy_background(
    source: Readable, out: BinaryIO, check: Callable[[int], None] | None
) -> tuple[int, str]:
    digest = hashlib.sha256()
    free: queue.Queue[memoryview] = queue.Queue()
    hashing: queue.Queue[tuple[memoryview, int] | None] = queue.Queue()
    for _ in range(BUFFERS):
        free.put(memoryview(bytearray(CHUNK)))

    def hash_them() -> None:
        while (filled := hashing.get()) is not None:
            view, n = filled
            digest.update(view[:n])
            free.put(view)  # hashed: the reader may fill it again

    worker = threading.Thread(target=hash_them, name="sha256", daemon=True)
    worker.start()
    count = 0
    try:
        while True:
            view = free.get()
            n = source.readinto(view)
            if not n:
                break
            count += n
            if check is not None:
                check(count)
            _write(out, view[:n])
            hashing.put((view, n))
    finally:
        hashing.put(None)
        worker.join()
    return count, digest.hexdigest()


def declared_length(header: str | None) -> int | None:
    """A response's Content-Length as a number, or None when absent or not one (a copy then
    cannot tell a body cut short from a whole one by its length)."""
    header = header or ""
    return int(header) if header.isdigit() else None


def raw_body(response: Any) -> http.client.HTTPResponse | None:
    """The http.client body under a urllib3 response, when its bytes may be read directly:
    a known length, not chunked, and no Content-Encoding to undo. None otherwise (read the
    urllib3 response itself then)."""
    raw = getattr(response, "_fp", None)
    if not isinstance(raw, http.client.HTTPResponse) or raw.chunked or raw.length is None:
        return None
    encoding = (response.headers.get("Content-Encoding") or "identity").strip().lower()
    return raw if encoding == "identity" else None
