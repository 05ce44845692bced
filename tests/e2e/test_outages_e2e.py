"""A store outage during archiving, on the real node with the real stager and a real MinIO.

The store is a MinIO of the test's own (the shared cluster's must never be stopped), on the pod
bridge's gateway so that the archive pods reach it, and it is the operator's default store. It
is killed while the app runs, so the archive pod meets a store that is down: the stager tries
for ~31 s (FERRY_ARCHIVE_RETRIES, 1 s doubling) and exits 75. Before, three such pods in quick
succession ended the Job ArchiveFailed and deleted the workspace: the outputs were lost. Now the
Job waits as Archiving/StoreUnavailable with its workspace kept, and once the store is back the
next archive pod uploads everything: every object's sha256 matches manifest.json.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ferry.clients.s3 import S3Client
from ferrydev.cluster.state import POD_GATEWAY
from ferrydev.minio import MinioServer
from tests.conftest import Kube
from tests.e2e.conftest import RealNodeOperator

pytestmark = pytest.mark.e2e

BUCKET = "outage"
BUSYBOX = "localhost/ferry/busybox:1.36"
TERMINAL = {"Finished", "Failed", "TimedOut", "Cancelled"}


class OutageOperator(RealNodeOperator):
    """The real-node operator with the test's MinIO as its default store, a short backoff and
    the outage deadline the test chooses."""

    def __init__(self, *args: Any, minio: MinioServer, deadline: float) -> None:
        super().__init__(*args)
        self.minio = minio
        self.deadline = deadline

    def env(self) -> dict[str, str]:
        env = super().env()
        env.update(
            FERRY_DEFAULT_S3_ENDPOINT=self.minio.endpoint,
            FERRY_DEFAULT_S3_BUCKET=BUCKET,
            FERRY_OUTAGE_BACKOFF_SECONDS="2",
            FERRY_OUTAGE_BACKOFF_MAX_SECONDS="4",
            FERRY_OUTAGE_DEADLINE_SECONDS=str(self.deadline),
        )
        return env


@pytest.fixture
def own_minio(ferry_kube: Kube, tmp_path: Path) -> Iterator[MinioServer]:
    server = MinioServer(tmp_path / "minio-data", host=POD_GATEWAY)
    server.start()
    S3Client(server.endpoint, server.access_key, server.secret_key).make_bucket(BUCKET)
    yield server
    server.stop()


@pytest.fixture
def outage_namespace(ferry_kube: Kube, real_namespace: str, own_minio: MinioServer) -> str:
    ferry_kube.run(
        "create", "secret", "generic", "ferry-s3", "-n", real_namespace,
        f"--from-literal=accessKey={own_minio.access_key}",
        f"--from-literal=secretKey={own_minio.secret_key}",
    )  # fmt: skip
    return real_namespace


def start_operator(
    request: pytest.FixtureRequest, kube: Kube, tmp_path: Path, minio: MinioServer, deadline: float
) -> OutageOperator:
    # The session's operator would act on this test's Jobs too (with the cluster's store).
    shared: RealNodeOperator = request.getfixturevalue("_real_operator_process")
    shared.stop()
    op = OutageOperator(kube.state, tmp_path / "operator", minio=minio, deadline=deadline)
    (tmp_path / "operator").mkdir()
    op.start()
    request.addfinalizer(op.stop)
    return op


def make_job(kube: Kube, namespace: str, name: str) -> None:
    app = {
        "apiVersion": "ferry.dev/v1alpha1",
        "kind": "App",
        "metadata": {"name": "writer"},
        "spec": {
            "version": "1.0",
            "image": BUSYBOX,
            "command": ["sh", "-c"],
            "args": [
                "mkdir -p results && i=0; while [ $i -lt 20 ]; do "
                "head -c 50000 /dev/urandom > results/part-$i.bin; i=$((i+1)); done; "
                "echo wrote 20 parts; sleep 6"
            ],
            "outputs": {"include": ["results/**"]},
            "resources": {"cpu": "100m", "memory": "64Mi"},
        },
    }
    job = {
        "apiVersion": "ferry.dev/v1alpha1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"appRef": {"name": "writer"}},
    }
    kube.create(app, "-n", namespace)
    kube.create(job, "-n", namespace)


def fjob(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    return kube.get("jobs.ferry.dev", name, namespace)


def wait_for(
    kube: Kube, namespace: str, name: str, op: OutageOperator, what: str, ok: Any, timeout: float
) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        job = fjob(kube, namespace, name)
        st = job.get("status", {})
        if ok(st):
            return job
        if st.get("state") in TERMINAL:
            raise AssertionError(f"fjob/{name} ended {st.get('state')}: {json.dumps(st)[:3000]}")
        return None

    try:
        found: dict[str, Any] = kube.wait_for(reached, timeout=timeout, interval=0.5, what=what)
    except AssertionError as exc:
        events = kube.run("get", "events", "-n", namespace, check=False).stdout
        raise AssertionError(
            f"{exc}\nevents:\n{events}\noperator log tail:\n{op.log_text()[-4000:]}"
        ) from None
    return found


def test_minio_down_longer_than_the_archive_retries_is_waited_out_and_nothing_is_lost(
    request: pytest.FixtureRequest,
    ferry_kube: Kube,
    outage_namespace: str,
    own_minio: MinioServer,
    tmp_path: Path,
) -> None:
    kube, ns = ferry_kube, outage_namespace
    op = start_operator(request, kube, tmp_path, own_minio, deadline=3600)
    make_job(kube, ns, "outage")
    wait_for(kube, ns, "outage", op, "Running", lambda s: s.get("state") == "Running", 120)
    own_minio.kill()
    down_at = time.monotonic()
    job = wait_for(
        kube,
        ns,
        "outage",
        op,
        "Archiving/StoreUnavailable",
        lambda s: s.get("reason") == "StoreUnavailable",
        120,
    )
    st = job["status"]
    assert st["state"] == "Archiving"
    assert f"the store at {own_minio.endpoint} is unavailable since" in st["message"]
    assert "connection refused" in st["message"]
    kube.get("pvc", "outage-1", ns)  # the workspace is kept
    # Longer than today's whole retry window (three pods of ~31 s would have ended it).
    while time.monotonic() - down_at < 40:
        current = fjob(kube, ns, "outage")["status"]
        assert current["state"] == "Archiving", current
        time.sleep(1)
    assert fjob(kube, ns, "outage")["status"]["reason"] == "StoreUnavailable"
    kube.get("pvc", "outage-1", ns)
    own_minio.start()
    done = wait_for(kube, ns, "outage", op, "Finished", lambda s: s.get("state") == "Finished", 150)
    st = done["status"]
    assert st["reason"] == "Succeeded"
    assert "outage" not in st
    assert st["archiveTry"] >= 2
    client = S3Client(own_minio.endpoint, own_minio.access_key, own_minio.secret_key)
    uri = st["outputs"]["uri"]
    prefix = uri[len(f"s3://{BUCKET}/") :]
    manifest = json.loads(client.get_bytes(BUCKET, prefix + "manifest.json"))
    entries = list(manifest["files"]) + ([manifest["log"]] if manifest.get("log") else [])
    assert len(manifest["files"]) == 20
    for entry in entries:
        data = client.get_bytes(BUCKET, prefix + entry["key"])
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], entry["key"]
        assert len(data) == entry["bytes"]
    events = kube.list("events", ns, "--field-selector", "involvedObject.name=outage")
    assert not [e for e in events if e["reason"] == "ArchiveFailed"]


def test_minio_down_past_the_outage_deadline_ends_archive_failed(
    request: pytest.FixtureRequest,
    ferry_kube: Kube,
    outage_namespace: str,
    own_minio: MinioServer,
    tmp_path: Path,
) -> None:
    kube, ns = ferry_kube, outage_namespace
    op = start_operator(request, kube, tmp_path, own_minio, deadline=20)
    make_job(kube, ns, "lost")
    wait_for(kube, ns, "lost", op, "Running", lambda s: s.get("state") == "Running", 120)
    own_minio.kill()
    done = wait_for(kube, ns, "lost", op, "Failed", lambda s: s.get("state") in TERMINAL, 150)
    st = done["status"]
    assert (st["state"], st["reason"]) == ("Failed", "ArchiveFailed")
    assert f"the store at {own_minio.endpoint} was unreachable since" in st["message"]
    assert "past FERRY_OUTAGE_DEADLINE_SECONDS (20s)" in st["message"]
