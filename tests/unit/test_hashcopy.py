"""copy_hashed: every byte copied once, in order, and hashed, on both of its paths (inline,
and a second thread with reused buffers), whatever sizes the source's reads come in."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import threading
from pathlib import Path

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


class Watching(io.RawIOBase):
    """A source that notes how much disk `out` had before the first byte was read."""

    def __init__(self, data: bytes, path: str) -> None:
        self.inner = io.BytesIO(data)
        self.path = path
        self.allocated_before_reading: int | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self.allocated_before_reading is None:
            self.allocated_before_reading = os.stat(self.path).st_blocks * 512
        return self.inner.readinto(buffer)


@pytest.mark.parametrize("size", [CHUNK + 5, BACKGROUND_HASH + 2 * CHUNK])
def test_a_known_size_is_reserved_before_the_first_read(tmp_path: Path, size: int) -> None:
    path = tmp_path / "out"
    data = os.urandom(size)
    source = Watching(data, str(path))
    with open(path, "wb") as out:
        assert copy_hashed(source, out, size_hint=size)[0] == size
    assert source.allocated_before_reading is not None
    assert source.allocated_before_reading >= size
    assert path.read_bytes() == data


@pytest.mark.parametrize("size", [CHUNK + 5, BACKGROUND_HASH + 2 * CHUNK])
def test_a_short_copy_gives_back_what_was_reserved(tmp_path: Path, size: int) -> None:
    # The server (or a shrinking source file) sent less than it declared: the file keeps
    # its bytes and frees the rest of the reservation, not a hidden 64 MiB past its end.
    path = tmp_path / "out"
    with open(path, "wb") as out:
        count, _ = copy_hashed(io.BytesIO(os.urandom(size)), out, size_hint=size + 64 * CHUNK)
    assert count == size
    stat = os.stat(path)
    assert stat.st_size == size
    assert stat.st_blocks * 512 < size + CHUNK


class Full(io.RawIOBase):
    """A file that is out of space from the first write."""

    name = "/inputs/.staging-data"

    def writable(self) -> bool:
        return True

    def write(self, data: object) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("size", [CHUNK, BACKGROUND_HASH + CHUNK])
def test_a_write_error_names_the_file_a_read_error_does_not(size: int) -> None:
    with pytest.raises(OSError, match="No space left") as caught:
        copy_hashed(io.BytesIO(os.urandom(size)), Full(), size_hint=size)  # type: ignore[arg-type]
    assert caught.value.errno == errno.ENOSPC
    assert caught.value.filename == Full.name

    class Broken(io.RawIOBase):
        def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
            raise ConnectionResetError(errno.ECONNRESET, "reset")

    with pytest.raises(ConnectionResetError) as caught:
        copy_hashed(Broken(), io.BytesIO(), size_hint=size)
    assert caught.value.filename is None
