"""The fault suite's store outage, on the real node: the cluster's MinIO down for minutes while
Ferry's real archive pods (the stager in the tools image) try to archive, through the operator.

Owns: `store_outage` (Jobs of an App that writes random files; once every Job runs, MinIO is
stopped, kept down `outage` seconds and started again on the same address with its data;
then every Job must end Finished and every object its manifest lists must be in the store
with the manifest's size and sha256), the App, the check of one Job's archive; headline
`false Finished 0, outputs lost 0`: a Finished Job whose archive does not verify is a false
Finished; a Job whose outputs are not all in the store (not Finished, or not verified) lost
its outputs.

Must not: run on kwok (kwok's archive pods never reach a store: the verdict would be
kwok's), or leave MinIO down (`restart_component` starts it again whatever happens).
"""

from __future__ import annotations

import collections
import hashlib
import json
import time
from typing import Any

from kubernetes import client as k8s

from ferry.clients.s3 import S3Client
from ferrydev.bench.chaos_cluster import restart_component
from ferrydev.bench.chaos_fates import Fate, create
from ferrydev.bench.chaos_ledger import Ledger
from ferrydev.bench.chaos_suite import Result, Suite, wait_for
from ferrydev.bench.workloads import GROUP, VERSION

BUCKET = "ferry"  # the real-node operator's default bucket (tests/e2e/conftest.py)
APP = "chaos-writer"
#: The real-node operator's settings (as tests/e2e/conftest.py's RealNodeOperator).
REAL_NODE_SETTINGS = {
    "FERRY_DEFAULT_S3_BUCKET": BUCKET,
    "FERRY_TOOLS_IMAGE": "localhost/ferry/tools:0.1.0",
    "FERRY_IMAGE_PULL_POLICY": "Never",
    "FERRY_RESYNC_SECONDS": "5",
    "FERRY_POD_START_GRACE_SECONDS": "10",
}


def writer_app(run_seconds: int) -> dict[str, Any]:
    """Runs `run_seconds`, then writes three files of random bytes."""
    script = (
        f"sleep {run_seconds}; mkdir -p results; "
        "for i in 1 2 3; do head -c 300000 /dev/urandom > results/blob-$i.bin; done; echo wrote"
    )
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "App",
        "metadata": {"name": APP},
        "spec": {
            "version": "1.0",
            "image": "localhost/ferry/busybox:1.36",
            "command": ["sh", "-c"],
            "args": [script],
            "outputs": {"include": ["results/**"]},
            "resources": {"cpu": "100m", "memory": "64Mi"},
        },
    }


def verify(store: S3Client, job: dict[str, Any]) -> str | None:
    """None if every object the Job's manifest lists is in the store with its size and
    sha256 (and the manifest says the Job's outputs), else what is wrong."""
    st = job.get("status") or {}
    meta = job["metadata"]
    uri = f"s3://{BUCKET}/{meta['namespace']}/{meta['name']}/{meta['uid']}/attempt-{st.get('attempt')}/"
    prefix = uri[len(f"s3://{BUCKET}/") :]
    try:
        manifest = json.loads(store.get_bytes(BUCKET, prefix + "manifest.json"))
    except Exception as exc:  # the store's own error says which
        return f"no manifest at {uri}: {exc}"
    entries = list(manifest.get("files") or []) + ([manifest["log"]] if manifest.get("log") else [])
    if not any(e["key"].startswith("outputs/results/blob-") for e in entries):
        return f"the manifest lists no blob: {[e['key'] for e in entries]}"
    for e in entries:
        try:
            data = store.get_bytes(BUCKET, prefix + e["key"])
        except Exception as exc:
            return f"{e['key']}: {exc}"
        if len(data) != e["bytes"] or hashlib.sha256(data).hexdigest() != e["sha256"]:
            return f"{e['key']}: size or sha256 differs from the manifest"
    return None


def store_outage(
    suite: Suite, jobs: int, outage: float, run_seconds: int, deadline: float
) -> Result:
    result = Result("store-outage")
    t0 = time.monotonic()
    ns = suite.namespace("store")
    k8s.CustomObjectsApi(suite.api).create_namespaced_custom_object(
        GROUP, VERSION, ns, "apps", writer_app(run_seconds)
    )
    state = suite.state
    store = S3Client(state.minio_endpoint, state.minio_access_key, state.minio_secret_key)
    store.make_bucket(BUCKET)
    fates = [
        Fate(f"archive-{i}", "archive", {}, {"appRef": {"name": APP}}, "Finished", "Succeeded")
        for i in range(jobs)
    ]
    names = {f.name for f in fates}
    ledger = Ledger(suite.api, ns).start()
    op = suite.operator(ns, "store")
    try:
        suite.started(op)
        create(suite.api, ns, fates)
        running = wait_for(
            lambda: all((r := ledger.job(n)) is not None and "Running" in r.states for n in names),
            180,
        )
        if running is None:
            result.details.append("not every Job was Running before the outage")
        went = time.time()
        down = restart_component(state, "minio", outage, ready=_minio_ready(store))
        back = time.monotonic()
        returned = time.time()
        result.say(f"{jobs} Jobs archiving {run_seconds} s after they run; MinIO down {down:.0f} s")
        wait_for(lambda: ledger.terminal_count(names) == len(names), deadline, 2.0)
        took = time.monotonic() - back
        false_finished, lost = [], []
        outcomes: collections.Counter[str] = collections.Counter()
        seen: collections.Counter[str] = collections.Counter()
        for n in sorted(names):
            rec = ledger.job(n)
            job = rec.last if rec else {}
            st = job.get("status") or {}
            for h in st.get("history") or []:
                seen[f"{h.get('state')}/{h.get('reason')}"] += 1
            outcomes[f"{st.get('state')}/{st.get('reason')}"] += 1
            problem = verify(store, job) if st.get("state") == "Finished" else None
            if st.get("state") == "Finished" and problem:
                false_finished.append(f"{n}: Finished, but {problem}")
            if st.get("state") != "Finished" or problem:
                lost.append(f"{n}: {st.get('state')}/{st.get('reason')}: {st.get('message')}")
        result.say(
            f"outcomes {took:.0f} s after MinIO returned: "
            + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()))
        )
        with ledger.lock:
            archive_pods = [p for p in ledger.pods.values() if p.role == "archive"]
        during = [p for p in archive_pods if p.created and went - 1 <= p.created <= returned]
        result.say(
            f"archive pods: {len(archive_pods)} for {jobs} Jobs, {len(during)} of them created "
            "while MinIO was down"
        )
        if not during:
            result.details.append("no archive pod ran during the outage: nothing was tested")
        result.say("history entries: " + ", ".join(f"{k} {v}" for k, v in sorted(seen.items())))
        result.figures.update(false_finished=len(false_finished), outputs_lost=len(lost))
        result.say(f"false Finished {len(false_finished)}, outputs lost {len(lost)}")
        result.details += false_finished + lost
    finally:
        ledger.stop()
        suite.cleanup(ns, op)
    result.seconds = time.monotonic() - t0
    return result


def _minio_ready(store: S3Client) -> Any:
    def ready() -> bool:
        try:
            store.list_objects(BUCKET, "none/")
        except Exception:  # not up yet
            return False
        return True

    return ready
