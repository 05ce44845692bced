"""Copying bytes into a file while hashing them (SHA-256), with as little CPU as Python allows.

Owns: `copy_hashed`, the one loop every download and stage-in copy runs: read from the
source straight into a few reused buffers (`readinto`: no new bytes object per chunk, no
copy beyond the kernel's), write each to the file, and hash it. A copy larger than
`BACKGROUND_HASH` is hashed in a second thread (hashlib releases the GIL on large buffers)
while the first reads and writes the next buffer; a buffer goes back to the reader only once
it is hashed. `raw_body` finds the http.client body under a urllib3 response when reading it
directly is safe.

Must not: decide what a short copy means (the caller compares the count with what it
expected and raises its own error), retry, or keep the source or the file open.
"""

from __future__ import annotations

import hashlib
import http.client
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

    `size_hint` (the expected size, when known) picks the background hash for large copies;
    `check`, when given, sees the running count after every buffer and may raise to stop."""
    if size_hint is not None and size_hint > BACKGROUND_HASH:
        return _copy_background(source, out, check)
    digest = hashlib.sha256()
    view = memoryview(bytearray(CHUNK))
    count = 0
    while n := source.readinto(view):
        count += n
        if check is not None:
            check(count)
        digest.update(view[:n])
        out.write(view[:n])
    return count, digest.hexdigest()


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
            out.write(view[:n])
            hashing.put((view, n))
    finally:
        hashing.put(None)
        worker.join()
    return count, digest.hexdigest()


def raw_body(response: Any) -> http.client.HTTPResponse | None:
    """The http.client body under a urllib3 response, when its bytes may be read directly:
    a known length, not chunked, and no Content-Encoding to undo. None otherwise (read the
    urllib3 response itself then)."""
    raw = getattr(response, "_fp", None)
    if not isinstance(raw, http.client.HTTPResponse) or raw.chunked or raw.length is None:
        return None
    encoding = (response.headers.get("Content-Encoding") or "identity").strip().lower()
    return raw if encoding == "identity" else None
