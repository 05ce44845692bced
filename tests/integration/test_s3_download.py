"""S3Client.get_object_to_file against the real MinIO: the bytes and the hash of what it
copies, on each of its paths (straight from the socket, inline or background hash; through
urllib3 for an object stored with a Content-Encoding), and a body the network cuts short.

The cut is made by a plain TCP relay in front of the real store that passes the request
through and closes both sides after a set number of response bytes: what a store or a
network failing mid-transfer looks like to the client.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from minio import Minio

from ferry.clients.hashcopy import BACKGROUND_HASH
from ferry.clients.s3 import S3Client, StoreUnavailableError

pytestmark = pytest.mark.integration

MiB = 1024 * 1024


class CuttingRelay:
    """127.0.0.1:port → upstream; each connection's answer is cut after `limit` bytes."""

    def __init__(self, upstream: tuple[str, int], limit: int) -> None:
        self.upstream = upstream
        self.limit = limit
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.cuts = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            threading.Thread(target=self._pipe, args=(client, server, None), daemon=True).start()
            threading.Thread(
                target=self._pipe, args=(server, client, self.limit), daemon=True
            ).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, limit: int | None) -> None:
        sent = 0
        try:
            while data := src.recv(65536):
                if limit is not None and sent + len(data) >= limit:
                    dst.sendall(data[: limit - sent])
                    self.cuts += 1
                    break
                dst.sendall(data)
                sent += len(data)
        except OSError:
            pass
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self.listener.close()


@pytest.fixture(scope="module")
def raw(cluster: Any) -> Minio:
    return Minio(
        cluster.minio_endpoint.removeprefix("http://"),
        cluster.minio_access_key,
        cluster.minio_secret_key,
        secure=False,
    )


@pytest.fixture
def relay(cluster: Any) -> Iterator[Any]:
    made: list[CuttingRelay] = []

    def make(limit: int) -> tuple[S3Client, CuttingRelay]:
        host, port = cluster.minio_endpoint.removeprefix("http://").rsplit(":", 1)
        made.append(CuttingRelay((host, int(port)), limit))
        client = S3Client(
            f"http://127.0.0.1:{made[-1].port}",
            cluster.minio_access_key,
            cluster.minio_secret_key,
        )
        return client, made[-1]

    yield make
    for r in made:
        r.close()


@pytest.mark.parametrize("size", [0, 1, 700 * 1024, 3 * MiB + 7, BACKGROUND_HASH + 5 * MiB + 3])
def test_an_object_is_copied_and_hashed(
    store: S3Client, bucket: str, tmp_path: Path, size: int
) -> None:
    data = os.urandom(size)
    key = f"dl/{uuid.uuid4().hex}"
    store.put_bytes(bucket, key, data)
    got = store.get_object_to_file(bucket, key, tmp_path / "copy")
    assert (tmp_path / "copy").read_bytes() == data
    assert (got.bytes, got.sha256) == (size, hashlib.sha256(data).hexdigest())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy"]


def test_an_object_stored_with_a_content_encoding_is_copied_as_stored(
    store: S3Client, raw: Minio, bucket: str, tmp_path: Path
) -> None:
    # Bytes that are not gzip at all: decoding them would fail; copying them as stored cannot.
    data = os.urandom(2 * MiB)
    key = f"dl/{uuid.uuid4().hex}.gz"
    raw.put_object(bucket, key, io.BytesIO(data), len(data), metadata={"Content-Encoding": "gzip"})
    got = store.get_object_to_file(bucket, key, tmp_path / "copy.gz")
    assert (tmp_path / "copy.gz").read_bytes() == data
    assert got.sha256 == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("size", [600 * 1024, BACKGROUND_HASH + 4 * MiB])
def test_a_body_cut_short_is_an_outage_and_leaves_no_file(
    store: S3Client, relay: Any, bucket: str, tmp_path: Path, size: int
) -> None:
    key = f"dl/{uuid.uuid4().hex}"
    store.put_bytes(bucket, key, os.urandom(size))
    cut, cutter = relay(size // 2)
    with pytest.raises(StoreUnavailableError) as caught:
        cut.get_object_to_file(bucket, key, tmp_path / "copy")
    assert cutter.cuts >= 1
    message = str(caught.value)
    assert message.startswith(f"s3://{bucket}/{key}: the connection ended after "), message
    assert message.endswith(f" of {size} bytes"), message
    assert list(tmp_path.iterdir()) == []
