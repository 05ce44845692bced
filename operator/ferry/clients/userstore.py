"""Object-store access for the user's side (SDK and CLI): resumable downloads and uploads with
progress, over the same mapped errors as the stager's S3Client.

Owns: appending the rest of an object to a partial file (an HTTP range read from an offset)
and uploading a file while reporting the bytes sent. Must not: decide what to fetch, verify
hashes (ferry.sdk does, over the whole file) or retry.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from ferry.clients.hashcopy import CHUNK
from ferry.clients.s3 import Digest, S3Client

#: Called with the number of bytes just transferred.
OnBytes = Callable[[int], None]


class _CountingReader:
    """A read-only file wrapper that reports every read to `on_bytes`."""

    def __init__(self, raw: BinaryIO, on_bytes: OnBytes) -> None:
        self.raw = raw
        self.on_bytes = on_bytes

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        if data:
            self.on_bytes(len(data))
        return data


class UserStore(S3Client):
    """The store as the user's credentials see it."""

    def append_object(
        self, bucket: str, key: str, part: Path, offset: int, on_bytes: OnBytes | None = None
    ) -> int:
        """Write the object's bytes from `offset` to the end of `part` (which holds the first
        `offset` bytes already); the number of bytes appended."""

        def run() -> int:
            response = self._minio.get_object(bucket, key, offset=offset)
            count = 0
            try:
                with open(part, "ab") as out:
                    for data in response.stream(CHUNK, decode_content=False):
                        out.write(data)
                        count += len(data)
                        if on_bytes is not None:
                            on_bytes(len(data))
            finally:
                response.close()
                response.release_conn()
            return count

        return self._call(f"s3://{bucket}/{key}", run)

    def object_size(self, bucket: str, key: str) -> int:
        def run() -> int:
            return int(self._minio.stat_object(bucket, key).size or 0)

        return self._call(f"s3://{bucket}/{key}", run)

    def remove_prefix(self, bucket: str, prefix: str) -> int:
        """Delete every object below `prefix`; how many there were."""
        keys = [o.key for o in self.list_objects(bucket, prefix)]

        def run() -> int:
            for key in keys:
                self._minio.remove_object(bucket, key)
            return len(keys)

        return self._call(f"s3://{bucket}/{prefix}", run)

    def upload_file(
        self, bucket: str, key: str, path: Path, on_bytes: OnBytes | None = None
    ) -> Digest:
        with open(path, "rb") as raw:
            size = os.fstat(raw.fileno()).st_size
            stream: BinaryIO = raw
            if on_bytes is not None:
                stream = _CountingReader(raw, on_bytes)  # type: ignore[assignment]
            return self.put_stream(bucket, key, stream, size)
