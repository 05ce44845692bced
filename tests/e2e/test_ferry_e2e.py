"""Ferry end to end on real containers: the examples/ Apps and Jobs, applied with kubectl to the
real-node cluster (kubelet + containerd + runc), with the operator running as a process.

Each test gets a namespace enforcing the restricted Pod Security Standard, with the default
store's Secret `ferry-s3`; the archive goes to MinIO (bucket `ferry`, created by the session
fixture: Ferry's archive does not create buckets). What the apps wrote is read back from MinIO
and checked against the archive's manifest.json, byte for byte and hash for hash.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from datetime import datetime
from typing import Any

import pytest

from ferry.clients.s3 import S3Client
from ferrydev.cluster import REAL_NODE_NAME, ClusterState
from tests.conftest import ROOT, Kube
from tests.e2e.conftest import DEFAULT_BUCKET, RealNodeOperator

pytestmark = pytest.mark.e2e

EXAMPLES = ROOT / "examples"
TERMINAL = {"Finished", "Failed", "TimedOut", "Cancelled"}


# --------------------------------------------------------------------------- helpers


def apply_example(kube: Kube, namespace: str, name: str, *files: str) -> None:
    paths = [EXAMPLES / name / f for f in (files or ("app.yaml", "job.yaml"))]
    args: list[str] = []
    for path in paths:
        args += ["-f", str(path)]
    kube.run("apply", "-n", namespace, *args)


def fjob(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    return kube.get("jobs.ferry.dev", name, namespace)


def wait_state(
    kube: Kube,
    namespace: str,
    name: str,
    states: set[str],
    op: RealNodeOperator,
    timeout: float = 180,
) -> dict[str, Any]:
    """Wait until the Job is in one of `states`; fail early (with the history) if it ends in
    another terminal state."""

    def reached() -> dict[str, Any] | None:
        job = fjob(kube, namespace, name)
        state = job.get("status", {}).get("state")
        if state in states:
            return job
        if state in TERMINAL:
            raise AssertionError(
                f"fjob/{name} ended {state} ({job['status'].get('reason')}), wanted {states}: "
                f"{json.dumps(job['status'].get('history'), indent=1)}"
            )
        return None

    try:
        result: dict[str, Any] = kube.wait_for(
            reached, timeout=timeout, interval=0.5, what=f"fjob/{name} in {states}"
        )
    except AssertionError as exc:
        events = kube.run("get", "events", "-n", namespace, check=False).stdout
        raise AssertionError(f"{exc}\nevents:\n{events}\noperator log tail:\n"
                             f"{op.log_text()[-4000:]}") from None  # fmt: skip
    return result


def store(state: ClusterState) -> S3Client:
    return S3Client(state.minio_endpoint, state.minio_access_key, state.minio_secret_key)


def split(uri: str) -> tuple[str, str]:
    assert uri.startswith("s3://"), uri
    bucket, _, prefix = uri[len("s3://") :].partition("/")
    return bucket, prefix


def verified_archive(kube: Kube, job: dict[str, Any]) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Check status.outputs against the store: every object the manifest lists is downloaded
    and hashed; returns the manifest and the content by path (outputs by their path relative
    to work/, plus `logs/app.log`)."""
    outputs = job["status"]["outputs"]
    ns, name, uid = job["metadata"]["namespace"], job["metadata"]["name"], job["metadata"]["uid"]
    attempt = job["status"]["attempt"]
    uri = f"s3://{DEFAULT_BUCKET}/{ns}/{name}/{uid}/attempt-{attempt}/"
    assert outputs["uri"] == uri
    assert outputs["manifest"] == f"{uri}manifest.json"
    bucket, prefix = split(uri)
    client = store(kube.state)
    manifest = json.loads(client.get_bytes(bucket, prefix + "manifest.json"))
    assert manifest["destination"] == uri
    entries = list(manifest["files"]) + ([manifest["log"]] if manifest.get("log") else [])
    content: dict[str, bytes] = {}
    for entry in entries:
        data = client.get_bytes(bucket, prefix + entry["key"])
        assert len(data) == entry["bytes"], entry
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], entry
        content[entry["path"]] = data
    for entry in manifest["files"]:
        assert entry["key"] == "outputs/" + entry["path"]
    listed = {o.key[len(prefix) :] for o in client.list_objects(bucket, prefix)}
    assert listed == {e["key"] for e in entries} | {"manifest.json"}
    assert manifest["totals"] == {
        "files": len(entries),
        "bytes": sum(e["bytes"] for e in entries),
    }
    assert (outputs["files"], outputs["bytes"]) == (
        manifest["totals"]["files"],
        manifest["totals"]["bytes"],
    )
    return manifest, content


def assert_admitted(kube: Kube, namespace: str, op: RealNodeOperator) -> None:
    """No pod Ferry created was refused by the namespace's restricted Pod Security admission."""
    events = kube.run("get", "events", "-n", namespace, "-o", "json").stdout
    log = op.log_text()
    for text in (events, log):
        assert "violates PodSecurity" not in text


def scheduled_on_real_node(kube: Kube, namespace: str) -> set[str]:
    """Pods of the namespace that the scheduler placed, by their Scheduled events; all must be
    on the real node."""
    events = json.loads(kube.run("get", "events", "-n", namespace, "-o", "json").stdout)["items"]
    pods: set[str] = set()
    for event in events:
        if event.get("reason") == "Scheduled":
            assert REAL_NODE_NAME in event.get("message", ""), event["message"]
            pods.add(event["involvedObject"]["name"])
    return pods


def running_pod(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    pod = kube.get("pod", name, namespace)
    assert pod["spec"]["nodeName"] == REAL_NODE_NAME
    return pod


def pod_gone(kube: Kube, namespace: str, name: str) -> bool:
    proc = kube.run("get", "pod", name, "-n", namespace, "-o", "name", check=False)
    return proc.returncode != 0 and "NotFound" in proc.stderr


def conditions(job: dict[str, Any]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in job["status"].get("conditions", [])}


# --------------------------------------------------------------------------- examples


def test_hello_example_finishes_and_archives(
    ferry_kube: Kube, ferry_namespace: str, real_operator: RealNodeOperator
) -> None:
    kube, ns = ferry_kube, ferry_namespace
    apply_example(kube, ns, "hello")
    job = wait_state(kube, ns, "hello-1", {"Finished"}, real_operator)
    st = job["status"]
    assert (st["reason"], st["exitCode"], st["attempt"]) == ("Succeeded", 0, 1)
    assert (
        conditions(job).items()
        >= {"Ready": "True", "Archived": "True", "Succeeded": "True"}.items()
    )
    manifest, content = verified_archive(kube, job)
    greeting = b"hello Ferry from hello-1 attempt 1\n"
    assert content["results/greeting.txt"] == greeting
    assert content["logs/app.log"] == greeting  # tee'd to stdout, captured by ferry-launch
    assert manifest["parameters"] == {"who": "Ferry"}
    assert manifest["outcome"] == "Succeeded"
    assert st["outputs"]["files"] == 2
    assert {"hello-1-1", "hello-1-1-archive-1"} <= scheduled_on_real_node(kube, ns)
    kube.run("wait", "--for=condition=Ready", "fjob/hello-1", "-n", ns, "--timeout=5s")
    assert_admitted(kube, ns, real_operator)


def test_without_archive_the_ended_pod_is_kept_for_kubectl_logs(
    ferry_kube: Kube, ferry_namespace: str, real_operator: RealNodeOperator
) -> None:
    """A Job without inputs or archive runs as one pod, kept when it ends (docs/api.md). The
    kubelet writes the app's terminated state a moment before the pod's phase; the operator
    used to end the Job on the first and delete the still-"Running" pod, its logs with it."""
    kube, ns = ferry_kube, ferry_namespace
    apply_example(kube, ns, "hello", "app.yaml")
    kube.apply(
        {
            "apiVersion": "ferry.dev/v1alpha1",
            "kind": "Job",
            "metadata": {"name": "plain-1"},
            "spec": {"appRef": {"name": "hello"}, "archive": {"enabled": False}},
        },
        "-n",
        ns,
    )
    job = wait_state(kube, ns, "plain-1", {"Finished"}, real_operator)
    assert conditions(job)["Archived"] == "False"
    time.sleep(3)  # long enough for a delete to be made and the kubelet to act on it
    pod = kube.get("pod", "plain-1-1", ns)
    assert not pod["metadata"].get("deletionTimestamp"), "the ended pod is being deleted"
    assert pod["status"]["phase"] == "Succeeded"
    logs = kube.run("logs", "-n", ns, "plain-1-1").stdout
    assert "hello world from plain-1 attempt 1" in logs


def random_walk(steps: int, seed: int, scale: int, every: int) -> tuple[str, dict[str, str], int]:
    """What examples/simulation's shell script computes, in Python."""
    x, pos, lines, frames = seed, 0, [], {}
    for i in range(1, steps + 1):
        x = (x * 1103515245 + 12345) % 2147483648
        pos += scale if x % 2 == 0 else -scale
        lines.append(f"{i} {pos}\n")
        if i % every == 0:
            frames[f"results/frames/frame-{i}.txt"] = f"step {i} position {pos}\n"
    return "".join(lines), frames, pos


def test_simulation_example_stages_s3_input_and_archives_results(
    ferry_kube: Kube, ferry_namespace: str, real_operator: RealNodeOperator
) -> None:
    kube, ns = ferry_kube, ferry_namespace
    config = (EXAMPLES / "simulation" / "config.txt").read_bytes()
    store(kube.state).put_bytes(DEFAULT_BUCKET, "examples/simulation/config.txt", config)
    apply_example(kube, ns, "simulation")
    job = wait_state(kube, ns, "randomwalk-1", {"Finished"}, real_operator)
    assert conditions(job)["InputsStaged"] == "True"
    manifest, content = verified_archive(kube, job)
    trajectory, frames, final = random_walk(steps=50, seed=7, scale=3, every=10)
    assert content["results/trajectory.dat"].decode() == trajectory
    for path, text in frames.items():
        assert content[path].decode() == text
    assert content["results/config-used.txt"] == config
    assert json.loads(content["results/summary.json"]) == {
        "steps": 50, "seed": 7, "scale": 3, "final": final,
    }  # fmt: skip
    outputs = {e["path"] for e in manifest["files"]}
    assert outputs == {
        "results/trajectory.dat", "results/config-used.txt", "results/summary.json", *frames,
    }  # fmt: skip
    log = content["logs/app.log"].decode()
    assert "steps=50 seed=7" in log
    assert f"final position {final}" in log
    assert "scale=3" in log  # the app printed the staged input
    (record,) = manifest["inputs"]
    assert record["name"] == "config"
    assert hashlib.sha256(config).hexdigest() in json.dumps(record)
    assert job["status"]["outputs"]["files"] == len(outputs) + 1
    assert_admitted(kube, ns, real_operator)


# --------------------------------------------------------------------------- missing objects


def walk_job(name: str, source: dict[str, Any]) -> dict[str, Any]:
    """The simulation example's App, its config staged from `source`."""
    return {
        "apiVersion": "ferry.dev/v1alpha1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "appRef": {"name": "randomwalk"},
            "parameters": {"steps": 5, "seed": 1, "frameEvery": 5},
            "inputs": [{"name": "config", "source": source}],
        },
    }


def history_states(job: dict[str, Any]) -> list[str]:
    return [h["state"] for h in job["status"].get("history", [])]


def test_missing_config_map_input_blocks_naming_it_until_it_is_created(
    ferry_kube: Kube, ferry_namespace: str, real_operator: RealNodeOperator
) -> None:
    """The kubelet cannot mount the input's ConfigMap, which shows only in the pod's Events:
    the Job is Blocked with the kubelet's words and the input's name, then runs once the
    ConfigMap exists."""
    kube, ns = ferry_kube, ferry_namespace
    apply_example(kube, ns, "simulation", "app.yaml")
    source = {"configMap": {"name": "walk-config", "key": "config.txt"}}
    kube.apply(walk_job("walk-cm", source), "-n", ns)
    job = wait_state(kube, ns, "walk-cm", {"Blocked"}, real_operator, timeout=120)
    st = job["status"]
    assert st["reason"] == "PodNotStarting"
    assert st["message"].startswith("input 'config': pod walk-cm-1 has not started: FailedMount:")
    assert 'configmap "walk-config" not found' in st["message"]
    # docs/api.md shows this very line.
    shown = f"{st['state']}/{st['reason']}: {st['message']}"
    assert shown in (ROOT / "docs" / "api.md").read_text().splitlines()
    assert conditions(job)["Ready"] == "False"
    events = kube.run(
        "get", "events", "-n", ns, "--field-selector",
        "involvedObject.kind=Job,involvedObject.name=walk-cm,reason=PodNotStarting",
        "-o", "jsonpath={.items[*].type}",
    ).stdout  # fmt: skip
    assert events.split() == ["Warning"]
    kube.run("create", "configmap", "walk-config", "-n", ns, "--from-literal=config.txt=scale=2\n")
    job = wait_state(kube, ns, "walk-cm", {"Finished"}, real_operator, timeout=240)
    _manifest, content = verified_archive(kube, job)
    assert content["results/config-used.txt"] == b"scale=2\n"
    states = history_states(job)  # (a 5-step run may end before a pass sees it Running)
    assert states.index("Blocked") < states.index("Finished")
    assert job["status"]["attempt"] == 1  # the same pod went on: nothing was retried


def test_missing_credentials_secret_blocks_naming_it_until_it_is_created(
    ferry_kube: Kube, ferry_namespace: str, real_operator: RealNodeOperator
) -> None:
    kube, ns = ferry_kube, ferry_namespace
    state = kube.state
    store(state).put_bytes(DEFAULT_BUCKET, "e2e/secret/config.txt", b"scale=4\n")
    apply_example(kube, ns, "simulation", "app.yaml")
    source = {
        "s3": {"bucket": DEFAULT_BUCKET, "key": "e2e/secret/config.txt",
               "secretRef": {"name": "team-s3"}},
    }  # fmt: skip
    kube.apply(walk_job("walk-secret", source), "-n", ns)
    job = wait_state(kube, ns, "walk-secret", {"Blocked"}, real_operator, timeout=120)
    st = job["status"]
    assert st["reason"] == "ConfigError"
    assert "stage-config" in st["message"]
    assert 'secret "team-s3" not found' in st["message"]
    kube.run(
        "create", "secret", "generic", "team-s3", "-n", ns,
        f"--from-literal=accessKey={state.minio_access_key}",
        f"--from-literal=secretKey={state.minio_secret_key}",
    )  # fmt: skip
    job = wait_state(kube, ns, "walk-secret", {"Finished"}, real_operator, timeout=240)
    _manifest, content = verified_archive(kube, job)
    assert content["results/config-used.txt"] == b"scale=4\n"
    assert job["status"]["attempt"] == 1


def test_pipeline_child_stages_the_parents_output(
    ferry_kube: Kube, ferry_namespace: str, real_operator: RealNodeOperator
) -> None:
    kube, ns = ferry_kube, ferry_namespace
    apply_example(kube, ns, "pipeline")
    parent = wait_state(kube, ns, "mesh-1", {"Finished"}, real_operator)
    child = wait_state(kube, ns, "solve-1", {"Finished"}, real_operator)
    history = [h["state"] for h in child["status"]["history"]]
    assert "AwaitingParents" in history, history
    _, parent_files = verified_archive(kube, parent)
    mesh = parent_files["results/mesh.txt"].decode()
    assert "mesh by mesh-1: 6 cells" in mesh
    manifest, files = verified_archive(kube, child)
    solution = files["results/solution.txt"].decode()
    assert solution == "solution by solve-1 for a mesh of 6 cells\n" + mesh
    assert files["logs/app.log"].decode() == solution
    (record,) = manifest["inputs"]
    parent_uri = parent["status"]["outputs"]["uri"]
    assert f"{split(parent_uri)[1]}outputs/results/mesh.txt" in json.dumps(record)
    assert_admitted(kube, ns, real_operator)


def test_failing_example_ends_app_failed_with_exit_code_3(
    ferry_kube: Kube, ferry_namespace: str, real_operator: RealNodeOperator
) -> None:
    kube, ns = ferry_kube, ferry_namespace
    apply_example(kube, ns, "failing")
    job = wait_state(kube, ns, "failing-1", {"Failed"}, real_operator)
    st = job["status"]
    assert (st["reason"], st["exitCode"], st["attempt"]) == ("AppFailed", 3, 1)
    want = {"Ready": "False", "Stalled": "True", "Succeeded": "False"}
    assert conditions(job).items() >= want.items()
    manifest, content = verified_archive(kube, job)  # archive.onFailure: true
    assert content["results/partial.txt"] == b"partial result\n"
    assert b"something went wrong, exiting with 3" in content["logs/app.log"]
    assert manifest["outcome"] != "Succeeded"
    assert_admitted(kube, ns, real_operator)


def test_timeout_example_ends_timed_out(
    ferry_kube: Kube, ferry_namespace: str, real_operator: RealNodeOperator
) -> None:
    kube, ns = ferry_kube, ferry_namespace
    apply_example(kube, ns, "timeout")
    # The limit counts from the pod's start, staging included, and routine progress is held
    # up to 2 s before it is written: on a busy node the Job can pass through Running between
    # two polls (a CI rehearsal, 2026-12-04: staging took 2.9 s, which left Running 2.2 s,
    # about the hold). The history has each step's time: the test reads them there.
    job = wait_state(kube, ns, "sleeper-1", {"TimedOut"}, real_operator, timeout=120)
    st = job["status"]
    steps = {h["state"]: datetime.fromisoformat(h["time"]) for h in st["history"]}
    assert "Running" in steps, st["history"]
    assert st["attempts"][0]["nodeName"] == REAL_NODE_NAME
    # 5 s of run, then the pod stops at once (ferry-launch signals the script's whole process
    # group; before, `sleep` held the pod until the kubelet's SIGKILL 30 s later), then archive.
    assert (steps["TimedOut"] - steps["Running"]).total_seconds() < 25, st["history"]
    assert st["reason"] == "MaxRunSecondsExceeded"
    assert st["startTime"]
    assert st["completionTime"]
    kube.wait_for(lambda: pod_gone(kube, ns, "sleeper-1-1"), timeout=60, what="run pod gone")
    assert conditions(job)["Stalled"] == "True"
    assert_admitted(kube, ns, real_operator)


# --------------------------------------------------------------------------- lifecycle


def sleeper_job(name: str, seconds: int, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "ferry.dev/v1alpha1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"appRef": {"name": "sleeper"}, "parameters": {"seconds": seconds}, **spec},
    }


def test_cancelling_a_running_job_removes_its_pod(
    ferry_kube: Kube, ferry_namespace: str, real_operator: RealNodeOperator
) -> None:
    kube, ns = ferry_kube, ferry_namespace
    apply_example(kube, ns, "timeout", "app.yaml")
    kube.apply(sleeper_job("long-1", 600, maxRunSeconds=900), "-n", ns)
    wait_state(kube, ns, "long-1", {"Running"}, real_operator)
    running_pod(kube, ns, "long-1-1")
    kube.run("patch", "fjob", "long-1", "-n", ns, "--type=merge", "-p", '{"spec":{"cancel":true}}')
    cancelled = time.monotonic()
    job = wait_state(kube, ns, "long-1", {"Cancelled"}, real_operator, timeout=60)
    assert job["status"]["reason"] == "Cancelled"
    kube.wait_for(lambda: pod_gone(kube, ns, "long-1-1"), timeout=60, what="run pod gone")
    assert time.monotonic() - cancelled < 15  # the app stops on SIGTERM, no 30 s grace period
    assert_admitted(kube, ns, real_operator)


def test_job_exceeding_max_run_seconds_times_out(
    ferry_kube: Kube, ferry_namespace: str, real_operator: RealNodeOperator
) -> None:
    kube, ns = ferry_kube, ferry_namespace
    apply_example(kube, ns, "timeout", "app.yaml")
    kube.apply(sleeper_job("slow-1", 120, maxRunSeconds=3), "-n", ns)
    job = wait_state(kube, ns, "slow-1", {"TimedOut"}, real_operator, timeout=90)
    assert job["status"]["attempt"] == 1
    assert "maxRunSeconds (3s)" in job["status"]["message"]
    kube.wait_for(lambda: pod_gone(kube, ns, "slow-1-1"), timeout=60, what="run pod gone")


def test_deleted_run_pod_is_retried_as_an_infrastructure_failure(
    ferry_kube: Kube, ferry_namespace: str, real_operator: RealNodeOperator
) -> None:
    kube, ns = ferry_kube, ferry_namespace
    apply_example(kube, ns, "timeout", "app.yaml")
    kube.apply(
        sleeper_job("victim-1", 8, maxRunSeconds=300, retry={"appFailures": 0, "infraFailures": 2}),
        "-n",
        ns,
    )
    wait_state(kube, ns, "victim-1", {"Running"}, real_operator)
    running_pod(kube, ns, "victim-1-1")
    kube.run("delete", "pod", "victim-1-1", "-n", ns, "--wait=false")
    job = wait_state(kube, ns, "victim-1", {"Finished"}, real_operator, timeout=180)
    st = job["status"]
    assert st["attempt"] == 2
    assert st["retries"]["infraFailures"] == 1
    assert st["retries"].get("appFailures", 0) == 0
    assert "Retrying" in [h["state"] for h in st["history"]]
    _manifest, content = verified_archive(kube, job)
    assert b"woke up" in content["logs/app.log"]
    assert_admitted(kube, ns, real_operator)


def test_examples_are_copyable(ferry_kube: Kube) -> None:
    """Every example directory has app.yaml and job.yaml with a fully qualified local image, and
    examples/README.md says what it shows."""
    readme = (EXAMPLES / "README.md").read_text()
    dirs = sorted(p for p in EXAMPLES.iterdir() if p.is_dir())
    assert len(dirs) >= 5
    for d in dirs:
        assert (d / "app.yaml").is_file(), d
        assert (d / "job.yaml").is_file(), d
        assert f"{d.name}/" in readme, d.name
        text = (d / "app.yaml").read_text()
        # busybox for the data-path examples, Debian's LAMMPS and CalculiX for the science ones
        assert re.search(r"^  image: localhost/ferry/[a-z]+:[0-9.]+$", text, re.M), d
        kube_dry = ferry_kube.run(
            "apply", "--dry-run=server", "-n", "default",
            "-f", str(d / "app.yaml"), "-f", str(d / "job.yaml"),
        )  # fmt: skip
        assert "created (server dry run)" in kube_dry.stdout, kube_dry.stdout
