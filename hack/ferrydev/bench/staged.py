"""The writes benchmark on real pods: what a Job with one input and archiving costs in API
writes, next to the same harness's Job with neither, on the same cluster in the same run.

Owns: a real-node local cluster with its audit log and MinIO (in --root, torn down at the
end); the bucket and the input object; the two workloads (`plain`: busybox `true`, no inputs,
archive off; `staged`: one S3 input copied into results/, archive on), each burst run by
`burst.Bench` (the operator snapshot, watched until every Job is terminal and the operator
owes no Event, the audit log's writes by actor, verb and resource); checking every staged
Job's archive (Finished, its manifest.json in the bucket listing the copied file with the
input's SHA-256); the report (writes per Job by verb and resource) and its docs block.

Must not: judge a write (docs/benchmarks.md says what each is for), or leave the cluster or
an operator running.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import time
from collections import Counter, defaultdict
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes import client as k8s
from minio import Minio

from ferrydev import kubectl
from ferrydev.bench import log
from ferrydev.bench.audit import AuditLog
from ferrydev.bench.burst import Bench
from ferrydev.bench.operator_process import LIVE_OPERATORS, install_crds, snapshot_operator
from ferrydev.bench.report import BENCHMARKS_DOC, git_meta
from ferrydev.bench.results import BurstResult, fmt
from ferrydev.bench.rundir import fresh_root, unwind_on_sigterm
from ferrydev.bench.watch import FERRY
from ferrydev.bench.workloads import APP_NAME, GROUP, VERSION, Workload, api_client
from ferrydev.cluster import ClusterState, LocalCluster
from ferrydev.images.common import BUSYBOX_IMAGE, TOOLS_IMAGE

BUCKET = "ferry"
INPUT_KEY = "bench/staged/input.dat"
INPUT = bytes(range(256)) * 64  # 16 KiB
RESOURCES = {"cpu": "10m", "memory": "32Mi"}
BEGIN = "<!-- staged-writes:begin (written by bench/staged.py --update-docs) -->"
END = "<!-- staged-writes:end -->"


def _app(namespace: str, script: str, inputs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "App",
        "metadata": {"name": APP_NAME, "namespace": namespace},
        "spec": {
            "version": "1",
            "image": BUSYBOX_IMAGE,
            "command": ["sh", "-c"],
            "args": [script],
            "inputs": inputs,
            "outputs": {"include": ["results/**"]},
            "resources": dict(RESOURCES),
        },
    }


def _job(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"appRef": {"name": APP_NAME}, **spec},
    }


def workloads(state: ClusterState) -> dict[str, Workload]:
    """`plain` and `staged`, both preparing their namespace with the store's Secret."""

    def prepare(ns: str) -> None:
        kubectl.output(
            state.kubeconfig, "create", "secret", "generic", "ferry-s3", "-n", ns,
            f"--from-literal=accessKey={state.minio_access_key}",
            f"--from-literal=secretKey={state.minio_secret_key}",
        )  # fmt: skip

    plain = Workload(
        name="plain",
        app=lambda ns: _app(ns, "true", []),
        job=lambda name, _d, _a: _job(name, {"archive": {"enabled": False}}),
        prepare=prepare,
    )
    copy = 'mkdir -p results && cp "{{inputs.data}}" results/copy.dat'
    source = {"s3": {"bucket": BUCKET, "key": INPUT_KEY}}
    staged = Workload(
        name="staged",
        app=lambda ns: _app(ns, copy, [{"name": "data", "required": True}]),
        job=lambda name, _d, _a: _job(name, {"inputs": [{"name": "data", "source": source}]}),
        prepare=prepare,
    )
    return {"plain": plain, "staged": staged}


def store(state: ClusterState) -> Minio:
    endpoint = state.minio_endpoint.split("://", 1)[-1]
    return Minio(
        endpoint, state.minio_access_key, state.minio_secret_key, secure=False, region="us-east-1"
    )


def check_archives(api: k8s.ApiClient, s3: Minio, ns: str) -> list[str]:
    """Every staged Job Finished, with a manifest in the bucket that lists results/copy.dat
    with the input's SHA-256; the problems found (empty: all good)."""
    want = hashlib.sha256(INPUT).hexdigest()
    jobs = k8s.CustomObjectsApi(api).list_namespaced_custom_object(GROUP, VERSION, ns, "jobs")
    problems = []
    for job in jobs["items"]:
        name, status = job["metadata"]["name"], job.get("status") or {}
        uri = (status.get("outputs") or {}).get("uri", "")
        if status.get("state") != "Finished" or not uri.startswith(f"s3://{BUCKET}/"):
            state = f"{status.get('state')} ({status.get('reason')})"
            problems.append(f"{name}: {state}, outputs {uri!r}")
            continue
        prefix = uri[len(f"s3://{BUCKET}/") :]
        resp = s3.get_object(BUCKET, prefix.rstrip("/") + "/manifest.json")
        try:
            manifest = json.loads(resp.read())
        finally:
            resp.close()
            resp.release_conn()
        files = {f["path"]: f for f in manifest.get("files", [])}
        if (files.get("results/copy.dat") or {}).get("sha256") != want:
            problems.append(f"{name}: manifest lacks results/copy.dat with the input's hash")
    return problems


def per_job_table(bursts: list[BurstResult]) -> list[str]:
    """Writes per Job by actor, verb and resource, one column per workload (median of rounds)."""
    names = sorted({b.system for b in bursts}, key=lambda s: s != "plain")
    rows: dict[tuple[str, str, str], dict[str, list[float]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for b in bursts:
        for w in b.writes:
            if w["actor"] == "bench":
                continue
            key = (w["actor"], w["verb"], w["resource"])
            rows[key][b.system].append(w["count"] / b.jobs)
    out = [
        "| actor | verb | resource | " + " | ".join(names) + " |",
        "|---|---|---|" + "---|" * len(names),
    ]
    for key in sorted(rows, key=lambda k: (k[0] != "operator", k)):
        cells = []
        for name in names:
            rounds = [b for b in bursts if b.system == name]
            vals = rows[key].get(name, [])
            vals = vals + [0.0] * (len(rounds) - len(vals))
            cells.append(fmt(sorted(vals)[len(vals) // 2]) if vals else "0")
        out.append(f"| {key[0]} | {key[1]} | {key[2]} | " + " | ".join(cells) + " |")
    return out


def markdown(args: argparse.Namespace, bursts: list[BurstResult], meta: dict[str, Any]) -> str:
    lines = [
        f"`.venv/bin/python bench/staged.py --jobs {args.jobs} --rounds {args.rounds}` at "
        f"`{meta['commit']}`{meta['dirty']}, "
        f"{meta['date']}, real node (containerd + kubelet), MinIO, QPS {args.qps:g}:",
        "",
        "| round | workload | Jobs Finished | all terminal (s) | operator writes/Job | "
        "all writes/Job | operator CPU (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for b in bursts:
        lines.append(
            f"| {b.round} | {b.system} | {b.succeeded}/{b.jobs} | {fmt(b.seconds_to_all_terminal)}"
            f" | {b.controller_writes_per_job:.2f} | {b.writes_per_job:.2f} | "
            f"{fmt(b.operator_cpu_seconds)} |"
        )
    lines += ["", "Writes per Job (median over rounds; `bench` creates the Jobs):", ""]
    lines += per_job_table(bursts)
    lines += [
        "",
        "Each Job's versions as the benchmark's watch saw them (the create, then one per write "
        "to the Job: state (reason) [conditions changed]), the paths taken, over all rounds:",
        "",
    ]
    for name in ("plain", "staged"):
        paths: Counter[str] = Counter()
        for b in bursts:
            if b.system == name:
                paths.update(b.job_paths)
        total = sum(paths.values())
        for path, n in paths.most_common(4):
            lines.append(f"- {name}, {n} of {total} Jobs: {path}")
    return "\n".join(lines) + "\n"


def update_docs(text: str, path: Path = BENCHMARKS_DOC) -> None:
    current = path.read_text()
    if BEGIN not in current or END not in current:
        raise RuntimeError(f"{path} has no {BEGIN} ... {END} block")
    head, rest = current.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{BEGIN}\n{text}{END}{tail}")


def run(args: argparse.Namespace) -> int:
    root = Path(args.root)
    if not fresh_root(root):
        return 2
    cluster = LocalCluster(root, real_node=True, audit=True, controller_qps=args.qps,
                           controller_burst=int(2 * args.qps))  # fmt: skip
    unwind_on_sigterm()
    log(f"starting the local cluster with a real node in {root}")
    state = cluster.up()
    log(f"cluster up in {state.started_seconds}s")
    try:
        code, digest = snapshot_operator(root)
        meta = {**git_meta(), "operator_digest": digest,
                "date": datetime.now(UTC).strftime("%Y-%m-%d")}  # fmt: skip
        kubectl.output(state.kubeconfig, "apply", "--server-side", "--force-conflicts",
                       "-f", install_crds(root))  # fmt: skip
        kubectl.output(state.kubeconfig, "wait", "--for=condition=Established", "--timeout=60s",
                       "crd/apps.ferry.dev", "crd/jobs.ferry.dev")  # fmt: skip
        s3 = store(state)
        if not s3.bucket_exists(BUCKET):
            s3.make_bucket(BUCKET)
        s3.put_object(BUCKET, INPUT_KEY, io.BytesIO(INPUT), len(INPUT))
        args.operator_setting = [
            f"FERRY_DEFAULT_S3_ENDPOINT={state.minio_pod_endpoint}",
            f"FERRY_DEFAULT_S3_BUCKET={BUCKET}",
            f"FERRY_TOOLS_IMAGE={TOOLS_IMAGE}",
            "FERRY_IMAGE_PULL_POLICY=Never",
        ]
        api = api_client(state)
        bench = Bench(state, api, AuditLog(root / "audit.log"), args, None, code)
        shapes = workloads(state)
        bursts: list[BurstResult] = []
        problems: list[str] = []
        for r in range(1, args.rounds + 1):
            order = ["plain", "staged"] if r % 2 else ["staged", "plain"]
            for name in order:
                bench.workload = shapes[name]
                result = bench.burst(FERRY, r)
                result.system = name
                bursts.append(result)
                if name == "staged":
                    found = check_archives(api, s3, result.namespace)
                    problems += found
                    log(f"round {r} staged: {len(found)} archive problem(s)")
                bench.remove(result.namespace)
                time.sleep(3)
        text = markdown(args, bursts, meta)
        if problems:
            text += "\nArchive problems:\n\n" + "\n".join(f"- {p}" for p in problems) + "\n"
        print(text)
        for name in ("plain", "staged"):
            mine = sorted(b.controller_writes_per_job for b in bursts if b.system == name)
            print(f"operator writes/Job, {name}: {fmt(mine[len(mine) // 2])} (rounds: {mine})")
        print(f"staged archives checked: {'all good' if not problems else len(problems)}")
        out = {"args": vars(args), "meta": meta, "bursts": [asdict(b) for b in bursts],
               "problems": problems}  # fmt: skip
        Path(args.json or root / "staged.json").write_text(json.dumps(out, indent=2))
        if args.update_docs:
            update_docs(text)
            log("docs/benchmarks.md updated")
    finally:
        for op in list(LIVE_OPERATORS):
            op.stop()
        cluster.down()
        log("cluster stopped")
    return 1 if problems else 0
