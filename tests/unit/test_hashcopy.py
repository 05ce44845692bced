"""copy_hashed: every byte copied once, in order, and hashed, on both of its paths (inline,
and a second thread with reused buffers), whatever sizes the source's reads come in."""

from __future__ import annotations

import hashlib
import io
import os
import threading

import pytest

from ferry.clients.hashcopy import BACKGROUND_HASH, CHUNK, copy_hashed

pytestmark = pytest.mark.unit


class Dribble(io.RawIOBase):
    """A source whose reads return at most `step` bytes (as a socket's may)."""

    def __init__(self, data: bytes, step: int) -> None:
        self.data = memoryview(data)
        self.step = step
        self.at = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        n = min(len(buffer), self.step, len(self.data) - self.at)
        buffer[:n] = self.data[self.at : self.at + n]
        self.at += n
        return n


SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, BACKGROUND_HASH + 3 * CHUNK + 5]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("hinted", [True, False])
def test_every_byte_is_copied_and_hashed(size: int, hinted: bool) -> None:
    data = os.urandom(size)
    out = io.BytesIO()
    count, sha256 = copy_hashed(io.BytesIO(data), out, size_hint=size if hinted else None)
    assert out.getvalue() == data
    assert (count, sha256) == (size, hashlib.sha256(data).hexdigest())


@pytest.mark.parametrize("step", [1000, CHUNK // 3, CHUNK + 17])
def test_short_reads_are_copied_in_order(step: int) -> None:
    # The background path with buffers filled partly: a buffer handed back to the reader
    # before it was hashed would change the hash.
    data = os.urandom(BACKGROUND_HASH + 2 * CHUNK + 11)
    out = io.BytesIO()
    count, sha256 = copy_hashed(Dribble(data, step), out, size_hint=len(data))
    assert out.getvalue() == data
    assert (count, sha256) == (len(data), hashlib.sha256(data).hexdigest())


@pytest.mark.parametrize("size", [3 * CHUNK, BACKGROUND_HASH + 4 * CHUNK])
def test_check_sees_the_running_count_and_can_stop_the_copy(size: int) -> None:
    seen: list[int] = []
    before = threading.active_count()

    def check(count: int) -> None:
        seen.append(count)
        if count > 2 * CHUNK:
            raise ValueError("too large")

    out = io.BytesIO()
    with pytest.raises(ValueError, match="too large"):
        copy_hashed(io.BytesIO(os.urandom(size)), out, size_hint=size, check=check)
    assert seen == [CHUNK, 2 * CHUNK, 3 * CHUNK]
    assert len(out.getvalue()) == 2 * CHUNK  # nothing past the refused buffer was written
    assert threading.active_count() == before  # the hashing thread ended
