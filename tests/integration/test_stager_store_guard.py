"""The stager's S3 address guard against the real MinIO, run as a pod runs it (a subprocess).

MinIO listens on loopback here, which makes it the natural "in-cluster store": allow-listed
(FERRY_ALLOWED_STORE_ENDPOINTS, as the operator lists its default store and its trusted
stores) it works; not allow-listed the stager refuses to connect to it, for stage-in and for
archive, with a message naming the field and the address, at once (no retries) and with no
object read or written.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from ferry.clients.s3 import S3Client
from tests.integration.test_stager import Pod, _base_env

pytestmark = pytest.mark.integration


@pytest.fixture
def pod(tmp_path: Path, cluster: Any) -> Pod:
    root = tmp_path / "pod"
    (root / "ws" / "logs").mkdir(parents=True)
    env = _base_env(
        root, cluster.minio_endpoint, cluster.minio_access_key, cluster.minio_secret_key
    )
    env["FERRY_ALLOWED_STORE_ENDPOINTS"] = ""  # nothing trusted unless a test says so
    return Pod(root, env)


def _loopback(endpoint: str) -> tuple[str, int]:
    parts = urlsplit(endpoint)
    assert parts.hostname == "127.0.0.1", f"MinIO is expected on loopback: {endpoint}"
    assert parts.port is not None
    return parts.hostname, parts.port


def test_s3_input_from_a_loopback_store_is_refused_unless_allow_listed(
    pod: Pod, store: S3Client, bucket: str, cluster: Any
) -> None:
    data = b"weights\n" * 1000
    store.put_bytes(bucket, "models/w.bin", data)
    endpoint = cluster.minio_endpoint
    _, port = _loopback(endpoint)
    source = {"s3": {"bucket": bucket, "key": "models/w.bin", "endpoint": endpoint}}

    started = time.monotonic()
    refused = pod.stage("model", source, FERRY_STAGE_RETRIES="3")
    assert refused.code == 1
    assert refused.message == (
        f"input 'model': s3://{bucket}/models/w.bin: source.s3.endpoint {endpoint}: connecting "
        f"to 127.0.0.1 (port {port}), a loopback address; refused (not a trusted store: see "
        "FERRY_ALLOWED_STORE_ENDPOINTS)"
    )
    assert time.monotonic() - started < 30  # refused at once: not retried as an outage
    assert not (pod.inputs / "model").exists()
    assert pod.env["FERRY_S3_SECRET_KEY"] not in refused.message + refused.stderr

    allowed = pod.stage("model", source, FERRY_ALLOWED_STORE_ENDPOINTS=f"http://127.0.0.1:{port}")
    assert allowed.code == 0, allowed.message + allowed.stderr
    staged = (pod.inputs / "model").read_bytes()
    assert hashlib.sha256(staged).hexdigest() == hashlib.sha256(data).hexdigest()


def test_a_loopback_store_under_another_name_is_refused(
    pod: Pod, bucket: str, cluster: Any
) -> None:
    """The allow-list names endpoints, not addresses: localhost is not 127.0.0.1."""
    _, port = _loopback(cluster.minio_endpoint)
    res = pod.stage(
        "model",
        {"s3": {"bucket": bucket, "key": "k"}},
        FERRY_S3_ENDPOINT=f"http://localhost:{port}",
        FERRY_ALLOWED_STORE_ENDPOINTS=cluster.minio_endpoint,
    )
    assert res.code == 1
    assert f"connecting to 127.0.0.1 (localhost:{port}), a loopback address; refused" in (
        res.message
    )


def test_archive_to_a_forbidden_endpoint_is_refused(
    pod: Pod, store: S3Client, bucket: str, cluster: Any
) -> None:
    (pod.work / "out").mkdir(parents=True)
    (pod.work / "out" / "result.txt").write_text("42\n")
    plan = {"destination": f"s3://{bucket}/forbidden/", "include": ["**"]}

    metadata = pod.archive(
        plan, FERRY_S3_ENDPOINT="http://169.254.169.254", FERRY_ARCHIVE_RETRIES="2"
    )
    assert metadata.code == 1
    assert metadata.message.startswith("archive: s3://")
    assert metadata.message.endswith(
        ": archive.s3.endpoint http://169.254.169.254: connecting to 169.254.169.254 (port 80), "
        "a link-local/metadata address; refused"
    )

    endpoint = cluster.minio_endpoint
    _, port = _loopback(endpoint)
    loopback = pod.archive(plan)
    assert loopback.code == 1
    assert (
        f"archive.s3.endpoint {endpoint}: connecting to 127.0.0.1 (port {port}), "
        "a loopback address; refused"
    ) in loopback.message
    assert store.list_objects(bucket, "forbidden/") == []

    allowed = pod.archive(plan, FERRY_ALLOWED_STORE_ENDPOINTS=endpoint)
    assert allowed.code == 0, allowed.message + allowed.stderr
    assert {o.key for o in store.list_objects(bucket, "forbidden/")} == {
        "forbidden/outputs/out/result.txt",
        "forbidden/manifest.json",
    }
