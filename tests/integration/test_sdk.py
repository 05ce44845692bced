"""The SDK and the `ferry` CLI against a real kube-apiserver, the operator and MinIO, with
kwok pods (their fate from sim.ferry.dev/* annotations).

kwok's archive pods upload nothing, so the tests that read an archive (outputs, download,
logs after the pod is gone) write one where status.outputs says, in the stager's layout; the
real-node tests (tests/e2e/test_sdk_e2e.py) read archives the stager wrote."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from ferry.api import names
from ferry.cli.main import main
from ferry.clients.s3 import S3Client
from ferry.sdk import (
    Client,
    IntegrityError,
    JobFailedError,
    NotFoundError,
    RefusedError,
    WaitTimeoutError,
)
from ferry.sdk.watching import until
from tests.conftest import Kube, OperatorProcess
from tests.integration.lifecycle_support import app_manifest, sim

pytestmark = pytest.mark.integration

BUCKET = "ferry"


def store_env(kube: Kube) -> dict[str, str]:
    s = kube.state
    return {
        "FERRY_S3_ENDPOINT": s.minio_endpoint,
        "FERRY_S3_ACCESS_KEY": s.minio_access_key,
        "FERRY_S3_SECRET_KEY": s.minio_secret_key,
        "FERRY_S3_BUCKET": BUCKET,
    }


@pytest.fixture
def sdk(kube: Kube, namespace: str, operator: OperatorProcess) -> Client:
    S3Client(kube.state.minio_endpoint, kube.state.minio_access_key,
             kube.state.minio_secret_key).make_bucket(BUCKET)  # fmt: skip
    kube.create(app_manifest(), "-n", namespace)
    return Client(namespace, kubeconfig=kube.kubeconfig, env=store_env(kube))


@pytest.fixture
def cli_env(kube: Kube, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", kube.kubeconfig)
    for k, v in store_env(kube).items():
        monkeypatch.setenv(k, v)


def ferry(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def fake_archive(kube: Kube, job: dict[str, Any], files: dict[str, bytes], log: bytes) -> str:
    """Write what the stager would have archived for the Job's last attempt; its URI."""
    uri = job["status"]["outputs"]["uri"]
    bucket, _, prefix = uri[len("s3://") :].partition("/")
    s = kube.state
    store = S3Client(s.minio_endpoint, s.minio_access_key, s.minio_secret_key)
    entries = []
    for path, data in sorted(files.items()):
        key = names.ARCHIVE_OUTPUTS + path.replace("..", "up")  # the store refuses `..` keys
        store.put_bytes(bucket, prefix + key, data)
        entries.append({"path": path, "key": key, "bytes": len(data),
                        "sha256": hashlib.sha256(data).hexdigest()})  # fmt: skip
    store.put_bytes(bucket, prefix + names.ARCHIVE_LOG, log)
    manifest = {
        "apiVersion": "ferry.dev/v1alpha1", "kind": "ArchiveManifest", "destination": uri,
        "outcome": "Succeeded", "parameters": job["spec"].get("parameters", {}),
        "files": entries,
        "log": {"path": names.ARCHIVE_LOG, "key": names.ARCHIVE_LOG, "bytes": len(log),
                "sha256": hashlib.sha256(log).hexdigest()},
    }  # fmt: skip
    store.put_bytes(bucket, prefix + names.ARCHIVE_MANIFEST, json.dumps(manifest).encode())
    return uri


# --------------------------------------------------------------------------- submit, list, wait


def test_submit_list_filters_and_wait(sdk: Client) -> None:
    ok = sdk.submit("sim", {"steps": 3}, name="ok-1", labels={"project": "bridge"},
                    annotations=sim(duration="1s"))  # fmt: skip
    time.sleep(1.1)  # creationTimestamp has whole seconds: newest first needs them apart
    bad = sdk.submit("sim", name="bad-1", labels={"project": "bridge"},
                     annotations=sim(duration="1s", exit_code="3"))  # fmt: skip
    time.sleep(1.1)
    other = sdk.submit("sim", labels={"project": "tunnel"}, annotations=sim(duration="60s"))
    assert other.metadata["name"].startswith("sim-")
    assert ok.spec.parameters == {"steps": 3}

    done = sdk.wait("ok-1", timeout=60)
    assert done.status is not None
    assert done.status.state == "Finished"
    failed = sdk.wait(bad, timeout=60)
    assert failed.status is not None
    assert failed.status.state == "Failed"
    with pytest.raises(JobFailedError, match="bad-1 ended Failed \\(AppFailed\\)"):
        sdk.wait(bad, timeout=5, raise_on_failure=True)
    started = time.monotonic()
    with pytest.raises(WaitTimeoutError, match="after 2s"):
        sdk.wait(other, timeout=2)
    assert time.monotonic() - started < 10

    names_ = lambda jobs: [j.metadata["name"] for j in jobs]  # noqa: E731
    assert names_(sdk.list()) == [other.metadata["name"], "bad-1", "ok-1"]
    assert names_(sdk.list(state="Finished")) == ["ok-1"]
    assert names_(sdk.list(state=["failed", "finished"])) == ["bad-1", "ok-1"]
    assert names_(sdk.list(labels={"project": "bridge"}, last_n=1)) == ["bad-1"]
    assert names_(sdk.list(app="nope")) == []
    assert "ok-1" in names_(sdk.list(all_namespaces=True))
    with pytest.raises(NotFoundError, match="not found"):
        sdk.get("nope")
    with pytest.raises(RefusedError, match="already exists"):
        sdk.submit("sim", name="ok-1")
    sdk.cancel(other)


def test_cancel_suspend_resume_extend_rerun_timeline_events(sdk: Client) -> None:
    job = sdk.submit("sim", name="long-1", max_run_seconds=300, annotations=sim(duration="120s"))
    running = until(sdk.kube, sdk.namespace, "long-1",
                    lambda o: (o.get("status") or {}).get("state") == "Running", 60)  # fmt: skip
    assert running["status"]["attempt"] == 1
    assert sdk.extend(job, 600).spec.max_run_seconds == 900
    sdk.suspend(job)
    until(sdk.kube, sdk.namespace, "long-1",
          lambda o: (o.get("status") or {}).get("state") == "Suspended", 60)  # fmt: skip
    sdk.resume(job)
    until(sdk.kube, sdk.namespace, "long-1",
          lambda o: (o.get("status") or {}).get("attempt") == 2, 60)  # fmt: skip
    sdk.cancel(job)
    ended = sdk.wait(job, timeout=60)
    assert ended.status is not None
    assert ended.status.state == "Cancelled"
    with pytest.raises(RefusedError, match="already ended Cancelled"):
        sdk.extend(job, 60)
    states = [h.state for h in sdk.timeline(job)]
    assert "Suspended" in states
    assert states[-1] == "Cancelled"
    # The operator posts an Event after its status write: it may come a moment after wait().
    deadline = time.monotonic() + 10
    while "Cancelled" not in {e.reason for e in sdk.events(job)} and time.monotonic() < deadline:
        time.sleep(0.3)
    reasons = {e.reason for e in sdk.events(job)}
    assert {"Cancelled", "Suspended", "Scheduled"} <= reasons
    assert all(e.object in ("job/long-1", "pod/long-1-1", "pod/long-1-2",
                            "persistentvolumeclaim/long-1-1", "persistentvolumeclaim/long-1-2")
               for e in sdk.events(job))  # fmt: skip

    again = sdk.rerun(job)
    assert again.metadata["labels"][names.LABEL_RERUN_OF] == "long-1"
    assert again.spec.app_ref.name == "sim"
    assert again.spec.max_run_seconds == 900
    assert not again.spec.cancel
    sdk.cancel(again)


def test_sync_context_cancels_on_exception(sdk: Client) -> None:
    submitted: list[tuple[str, str]] = []

    def analysis() -> None:
        with sdk.sync_context() as inside:
            sdk.submit("sim", name="sync-1", annotations=sim(duration="120s"))
            sdk.submit("sim", name="sync-2", annotations=sim(duration="120s"))
            submitted.extend(inside)
            raise RuntimeError("analysis broke")

    with pytest.raises(RuntimeError, match="analysis broke"):
        analysis()
    assert [n for _, n in submitted] == ["sync-1", "sync-2"]
    for name in ("sync-1", "sync-2"):
        assert sdk.get(name).spec.cancel
        assert sdk.wait(name, timeout=60).status.state == "Cancelled"  # type: ignore[union-attr]
    with sdk.sync_context():
        kept = sdk.submit("sim", name="sync-3", annotations=sim(duration="1s"))
    assert not sdk.get(kept).spec.cancel


def test_sync_context_cancels_on_ctrl_c(sdk: Client) -> None:
    def interrupted() -> None:
        with sdk.sync_context():
            sdk.submit("sim", name="ctrlc-1", annotations=sim(duration="120s"))
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted()
    assert sdk.get("ctrlc-1").spec.cancel


# --------------------------------------------------------------------------- archives


def test_outputs_download_logs_from_the_archive(kube: Kube, sdk: Client, tmp_path: Path) -> None:
    job = sdk.submit("sim", name="arch-1", annotations=sim(duration="1s"))
    sdk.wait(job, timeout=60)
    raw = kube.get("fjob", "arch-1", sdk.namespace)
    big = bytes(range(256)) * 4096  # 1 MiB
    files = {"results/a.txt": b"alpha\n", "results/big.bin": big, "summary.json": b"{}\n"}
    uri = fake_archive(kube, raw, files, b"step 1\nstep 2\ndone\n")
    pod = ("get", "pod", "arch-1-1", "-n", sdk.namespace)
    kube.wait_for(lambda: kube.run(*pod, check=False).returncode != 0, what="run pod deleted")

    outs = sdk.outputs(job)
    assert outs.uri == uri
    assert [(f.path, f.bytes) for f in outs.files] == [
        ("results/a.txt", 6), ("results/big.bin", len(big)), ("summary.json", 3),
    ]  # fmt: skip
    assert outs.files[1].sha256 == hashlib.sha256(big).hexdigest()
    # The run pod is gone: the log comes from the archive.
    assert "".join(sdk.logs(job)) == "step 1\nstep 2\ndone\n"
    assert list(sdk.logs(job, follow=True)) == ["step 1\n", "step 2\n", "done\n"]

    got = sdk.download(job, tmp_path / "out", "results/**", progress=False)
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in got.files) == [
        "results/a.txt", "results/big.bin",
    ]  # fmt: skip
    assert (tmp_path / "out" / "results" / "big.bin").read_bytes() == big
    assert not (tmp_path / "out" / "summary.json").exists()
    again = sdk.download(job, tmp_path / "out", "results/**")
    assert again.already_present == 2
    assert again.downloaded_bytes == 0

    # A partial file resumes where it stopped.
    part = tmp_path / "resume" / "results" / "big.bin.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(big[:300_000])
    resumed = sdk.download(job, tmp_path / "resume", ["results/big.bin"])
    assert resumed.resumed == 1
    assert resumed.downloaded_bytes == len(big) - 300_000
    assert (tmp_path / "resume" / "results" / "big.bin").read_bytes() == big
    assert not part.exists()

    # An object changed in the store after archiving is refused, and nothing is kept.
    bucket, _, prefix = uri[len("s3://") :].partition("/")
    s = kube.state
    S3Client(s.minio_endpoint, s.minio_access_key, s.minio_secret_key).put_bytes(
        bucket, prefix + "outputs/results/a.txt", b"ALPHA\n"
    )
    with pytest.raises(IntegrityError, match=r"results/a\.txt: the store's copy does not match"):
        sdk.download(job, tmp_path / "bad", ["results/a.txt"])
    assert not (tmp_path / "bad" / "results" / "a.txt").exists()
    assert not (tmp_path / "bad" / "results" / "a.txt.part").exists()


def test_manifest_paths_that_escape_are_refused(kube: Kube, sdk: Client, tmp_path: Path) -> None:
    job = sdk.submit("sim", name="evil-1", annotations=sim(duration="1s"))
    sdk.wait(job, timeout=60)
    fake_archive(kube, kube.get("fjob", "evil-1", sdk.namespace), {"../escape.txt": b"x"}, b"")
    with pytest.raises(IntegrityError, match="escape"):
        sdk.download(job, tmp_path / "dest")
    assert not (tmp_path / "escape.txt").exists()
    assert not (tmp_path / "dest").exists() or not any((tmp_path / "dest").iterdir())


def test_a_job_without_outputs_says_so(sdk: Client) -> None:
    job = sdk.submit("sim", name="early-1", annotations=sim(duration="120s"))
    with pytest.raises(NotFoundError, match="has no archived outputs"):
        sdk.outputs(job)
    with pytest.raises(NotFoundError, match="early-1"):
        list(sdk.logs(job))
    sdk.cancel(job)


def test_local_file_and_directory_inputs_are_uploaded(
    kube: Kube, sdk: Client, tmp_path: Path
) -> None:
    (tmp_path / "model.tcl").write_text("node 1 0 0\n")
    data = tmp_path / "mesh"
    (data / "sub").mkdir(parents=True)
    (data / "a.txt").write_text("a\n")
    (data / "sub" / "b.txt").write_text("b\n")
    kube.apply(app_manifest(inputs=[{"name": "model"}, {"name": "mesh"}]), "-n", sdk.namespace)
    job = sdk.submit("sim", inputs={"model": tmp_path / "model.tcl", "mesh": str(data)},
                     name="up-1", annotations=sim(duration="1s"))  # fmt: skip
    by_name = {i.name: i.source.s3 for i in job.spec.inputs}
    model, mesh = by_name["model"], by_name["mesh"]
    assert model is not None
    assert mesh is not None
    assert model.bucket == BUCKET
    assert model.key
    assert model.key.endswith("/model/model.tcl")
    assert mesh.prefix
    assert mesh.prefix.endswith("/mesh/")
    s = kube.state
    store = S3Client(s.minio_endpoint, s.minio_access_key, s.minio_secret_key)
    assert store.get_bytes(BUCKET, model.key) == b"node 1 0 0\n"
    listed = sorted(o.key[len(mesh.prefix) :] for o in store.list_objects(BUCKET, mesh.prefix))
    assert listed == ["a.txt", "sub/b.txt"]
    assert sdk.wait(job, timeout=60).status.state == "Finished"  # type: ignore[union-attr]
    # A submit the apiserver refuses leaves no uploads behind.
    before = {o.key for o in store.list_objects(BUCKET, f"uploads/{sdk.namespace}/up-1/")}
    with pytest.raises(RefusedError, match="already exists"):
        sdk.submit("sim", inputs={"model": tmp_path / "model.tcl"}, name="up-1")
    after = {o.key for o in store.list_objects(BUCKET, f"uploads/{sdk.namespace}/up-1/")}
    assert after == before


def test_sweep_labels_counts_and_waits(sdk: Client, tmp_path: Path) -> None:
    sweep = sdk.sweep("sim", {"steps": [1, 2, 3]}, name="sw", annotations=sim(duration="1s"))
    jobs = sweep.jobs()
    assert sorted(j.metadata["name"] for j in jobs) == ["sw-001", "sw-002", "sw-003"]
    assert all(j.metadata["labels"][names.LABEL_SWEEP] == "sw" for j in jobs)
    assert sorted(j.spec.parameters["steps"] for j in jobs) == [1, 2, 3]
    seen: list[str] = []
    done = sweep.wait(timeout=90, on_change=lambda s: seen.append(str(s)))
    assert len(done) == 3
    summary = sweep.summary()
    assert summary.done
    assert summary.ok
    assert summary.counts == {"Finished": 3}
    assert str(summary) == "sweep sw: 3 Jobs: 3 Finished"
    assert seen
    assert seen[-1] == str(summary)


# --------------------------------------------------------------------------- the CLI


def test_cli_verbs_and_exit_codes(
    kube: Kube, sdk: Client, cli_env: None, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    ns = sdk.namespace
    code, out, err = ferry(capsys, "submit", "sim", "-n", ns, "--name", "c-1", "-p", "steps=4",
                           "-l", "team=a")  # fmt: skip
    assert (code, out) == (0, "job.ferry.dev/c-1 created\n"), err
    code, out, _ = ferry(capsys, "wait", "c-1", "-n", ns, "--timeout", "60")
    assert code == 0
    assert "Finished" in out
    code, out, _ = ferry(capsys, "list", "-n", ns, "-o", "json")
    assert [j["metadata"]["name"] for j in json.loads(out)["items"]] == ["c-1"]
    code, out, _ = ferry(capsys, "list", "-A", "--state", "Finished", "-l", "team=a")
    assert code == 0
    assert ns in out
    assert "c-1" in out
    code, out, _ = ferry(capsys, "get", "c-1", "-n", ns, "-o", "yaml")
    assert "state: Finished" in out
    code, out, _ = ferry(capsys, "timeline", "c-1", "-n", ns)
    assert code == 0
    assert "Finished" in out
    assert "Queued" in out
    code, out, _ = ferry(capsys, "apps", "-n", ns)
    assert code == 0
    assert "sim" in out
    assert "example.org/sim:1" in out

    kube.create({"apiVersion": "ferry.dev/v1alpha1", "kind": "Job",
                 "metadata": {"name": "c-bad", "annotations": sim(exit_code="3")},
                 "spec": {"appRef": {"name": "sim"}}}, "-n", ns)  # fmt: skip
    code, _, err = ferry(capsys, "wait", "c-bad", "-n", ns, "--timeout", "60")
    assert code == 6
    assert err.startswith("ferry: Job c-bad ended Failed (AppFailed)")
    assert err.count("\n") == 1
    code, _, err = ferry(capsys, "get", "nope", "-n", ns)
    assert (code, err) == (3, f"ferry: Job {ns}/nope not found\n")
    code, _, err = ferry(capsys, "submit", "sim", "-n", ns, "--name", "c-1")
    assert code == 4
    assert "already exists" in err
    code, _, err = ferry(capsys, "extend", "c-1", "10m", "-n", ns)
    assert code == 4
    assert "already ended Finished" in err
    code, out, _ = ferry(capsys, "rerun", "c-1", "-n", ns)
    assert code == 0
    assert "(rerun of c-1)" in out
    code, _, err = ferry(capsys, "outputs", "c-1", "-n", ns, "--attempt", "0")
    assert code == 2

    kube.create({"apiVersion": "ferry.dev/v1alpha1", "kind": "Job",
                 "metadata": {"name": "c-long", "annotations": sim(duration="120s")},
                 "spec": {"appRef": {"name": "sim"}, "maxRunSeconds": 600}}, "-n", ns)  # fmt: skip
    code, _, err = ferry(capsys, "wait", "c-long", "-n", ns, "--timeout", "1")
    assert code == 5
    assert "after 1s" in err
    code, out, _ = ferry(capsys, "extend", "c-long", "1h", "-n", ns)
    assert (code, out) == (0, "job.ferry.dev/c-long maxRunSeconds is now 4200\n")
    code, out, _ = ferry(capsys, "cancel", "c-long", "-n", ns)
    assert code == 0
    assert "cancel requested" in out
    code, _, _ = ferry(capsys, "wait", "c-long", "-n", ns, "--timeout", "60")
    assert code == 6
    for _ in range(30):  # the Cancelled Event follows the status write
        code, out, _ = ferry(capsys, "events", "c-long", "-n", ns)
        if "Cancelled" in out:
            break
        time.sleep(0.3)
    assert code == 0
    assert "Cancelled" in out

    code, out, err = ferry(capsys, "sweep", "sim", "-n", ns, "-p", "steps=1,2", "--name", "cs",
                           "--wait", "--timeout", "90")  # fmt: skip
    assert code == 0, err
    assert "job.ferry.dev/cs-001 created" in out
    assert "sweep cs: 2 Jobs: 2 Finished" in out


def test_cli_get_watch_stops_on_ctrl_c(
    sdk: Client, cli_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--watch` streams changes from a watch; Ctrl+C ends it with 130."""
    sdk.submit("sim", name="w-1", annotations=sim(duration="2s"))
    import signal

    # A real SIGINT to the main thread, as a terminal's Ctrl+C: it interrupts the blocked read
    # of the watch (`_thread.interrupt_main` only sets a flag, seen when the next event comes,
    # and the watch has none once the Job has ended). Python's own handler is put in place for
    # it: a run started in the background inherits SIGINT ignored.
    main = threading.main_thread().ident
    assert main is not None
    timer = threading.Timer(8, signal.pthread_kill, (main, signal.SIGINT))
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer.start()
    try:
        code, out, err = ferry(capsys, "get", "w-1", "-n", sdk.namespace, "--watch")
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    assert code == 130
    assert err.strip() == "ferry: interrupted"  # (after click's newline closing the ^C line)
    assert "Finished" in out
    assert out.count("w-1") >= 2
