"""The SDK and the `ferry` CLI on the real node (kubelet + containerd + runc): a local
directory uploaded as an input reaches the app and its output is archived; logs live while the
app runs and from the archive after its pod is gone; a sweep of 6 Jobs (examples/sdk_sweep.py);
the Python blocks of docs/sdk.md and the tour of docs/cli.md run as written.

Set FERRY_CLI_TRANSCRIPT=<path> to keep what the docs/cli.md tour printed (docs/cli-transcript.txt
is such a file)."""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from ferry.api import names
from ferry.sdk import Client
from tests.conftest import ROOT, Kube
from tests.e2e.conftest import DEFAULT_BUCKET, RealNodeOperator
from tests.e2e.test_ferry_e2e import assert_admitted, pod_gone, scheduled_on_real_node

pytestmark = pytest.mark.e2e

DATA = ROOT / "examples" / "sdk" / "data"
TICKER = {
    "apiVersion": "ferry.dev/v1alpha1",
    "kind": "App",
    "metadata": {"name": "ticker"},
    "spec": {
        "version": "1.0",
        "image": "localhost/ferry/busybox:1.36",
        "command": ["sh", "-c"],
        "args": [
            "for i in 1 2 3 4 5 6 7 8; do echo tick $i; sleep 1; done; "
            "cat {{inputs.data}}/settings.txt; mkdir -p results; "
            "cp -r {{inputs.data}} results/copy; echo copied"
        ],
        "inputs": [{"name": "data", "required": True}],
        "outputs": {"include": ["results/**"]},
        "resources": {"cpu": "100m", "memory": "64Mi"},
        "maxRunSeconds": 300,
    },
}


def series_total(n: int, scale: int, offset: int = 100) -> int:
    return offset + scale * n * (n + 1) // 2


@pytest.fixture
def user_env(ferry_kube: Kube, ferry_namespace: str, tmp_path: Path) -> dict[str, str]:
    """A user's environment: a kubeconfig whose context names the test namespace, the store
    as this machine reaches it, and the `series` App registered."""
    config = yaml.safe_load(Path(ferry_kube.kubeconfig).read_text())
    current = config["current-context"]
    for ctx in config["contexts"]:
        if ctx["name"] == current:
            ctx["context"]["namespace"] = ferry_namespace
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config))
    state = ferry_kube.state
    ferry_kube.run("apply", "-n", ferry_namespace, "-f", str(ROOT / "examples/sdk/app.yaml"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FERRY_", "AWS_"))}
    env.update(
        KUBECONFIG=str(kubeconfig),
        FERRY_S3_ENDPOINT=state.minio_endpoint,
        FERRY_S3_ACCESS_KEY=state.minio_access_key,
        FERRY_S3_SECRET_KEY=state.minio_secret_key,
        FERRY_S3_BUCKET=DEFAULT_BUCKET,
        PYTHONPATH=os.pathsep.join([str(ROOT / "operator"), env.get("PYTHONPATH", "")]),
        COLUMNS="120",
    )
    return env


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A directory to run in, with examples/ reachable as in the repository."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "examples").symlink_to(ROOT / "examples")
    return work


def test_local_directory_input_logs_live_then_archived_and_download(
    ferry_kube: Kube,
    ferry_namespace: str,
    real_operator: RealNodeOperator,
    user_env: dict[str, str],
    tmp_path: Path,
) -> None:
    kube, ns = ferry_kube, ferry_namespace
    kube.apply(TICKER, "-n", ns)
    sdk = Client(kubeconfig=user_env["KUBECONFIG"], env=user_env)
    assert sdk.namespace == ns  # the context's namespace
    job = sdk.submit("ticker", inputs={"data": DATA}, name="tick-1", progress=True)
    source = job.spec.inputs[0].source.s3
    assert source is not None
    assert source.prefix is not None
    assert source.prefix.startswith(f"uploads/{ns}/tick-1/")

    # Follow the live log: lines arrive while the Job still runs.
    arrivals: list[tuple[str, str]] = []
    for line in sdk.logs(job, follow=True):
        state = sdk.get(job).status.state  # type: ignore[union-attr]
        arrivals.append((line, str(state)))
    live = "".join(line for line, _ in arrivals)
    assert [ln for ln in live.splitlines() if ln.startswith("tick")] == [
        f"tick {i}" for i in range(1, 9)
    ]
    assert "offset=100" in live
    # (the operator may not have recorded Running yet when the first line comes)
    assert arrivals[0][1] in ("StagingInputs", "Running"), arrivals[:3]

    done = sdk.wait(job, timeout=180, raise_on_failure=True)
    assert done.status is not None
    assert done.status.state == "Finished"
    kube.wait_for(lambda: pod_gone(kube, ns, "tick-1-1"), timeout=60, what="run pod gone")
    archived = "".join(sdk.logs(job))
    assert archived == live

    # The uploaded directory reached the app, which archived a copy of it.
    outs = sdk.outputs(job)
    listed = {f.path: f for f in outs.files}
    assert set(listed) == {"results/copy/settings.txt", "results/copy/notes/readme.txt"}
    settings = (DATA / "settings.txt").read_bytes()
    assert listed["results/copy/settings.txt"].sha256 == hashlib.sha256(settings).hexdigest()
    got = sdk.download(job, tmp_path / "out", progress=True)
    assert len(got.files) == 2
    for rel in ("settings.txt", "notes/readme.txt"):
        assert (tmp_path / "out/results/copy" / rel).read_bytes() == (DATA / rel).read_bytes()
    assert {"tick-1-1", "tick-1-1-archive-1"} <= scheduled_on_real_node(kube, ns)
    assert_admitted(kube, ns, real_operator)


def test_sdk_sweep_example_runs_six_jobs_on_the_real_node(
    ferry_kube: Kube,
    ferry_namespace: str,
    real_operator: RealNodeOperator,
    user_env: dict[str, str],
    workdir: Path,
) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples/sdk_sweep.py"), "--name", "ex", "--dest", "out"],
        cwd=workdir, env=user_env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    print(proc.stdout, proc.stderr, sep="\n")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "submitted sweep ex: 6 Jobs: 6 Pending" or lines[0].startswith(
        "submitted sweep ex: 6 Jobs"
    )
    assert lines[1] == "ended sweep ex: 6 Jobs: 6 Finished"
    totals = {}
    for line in lines[2:]:
        m = re.fullmatch(r"(ex-\d{3}): terms=(\d+) scale=(\d+) total=(\d+)", line)
        assert m, line
        totals[m.group(1)] = (int(m.group(2)), int(m.group(3)), int(m.group(4)))
    assert len(totals) == 6
    for n, scale, total in totals.values():
        assert total == series_total(n, scale)
    assert sorted((n, s) for n, s, _ in totals.values()) == [
        (n, s) for n in (10, 20, 30) for s in (1, 2)
    ]
    for name in totals:
        assert (workdir / "out" / name / "results/total.txt").is_file()
    pods = scheduled_on_real_node(ferry_kube, ferry_namespace)
    assert {f"ex-{i:03d}-1" for i in range(1, 7)} <= pods
    sweep_jobs = ferry_kube.list("fjob", ferry_namespace, "-l", f"{names.LABEL_SWEEP}=ex")
    assert len(sweep_jobs) == 6


def _python_blocks(path: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", path.read_text(), re.S | re.M)


def test_docs_sdk_md_runs(
    real_operator: RealNodeOperator,
    user_env: dict[str, str],
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for key in [k for k in os.environ if k.startswith(("FERRY_", "AWS_"))]:
        monkeypatch.delenv(key)
    for key, value in user_env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(workdir)
    blocks = _python_blocks(ROOT / "docs" / "sdk.md")
    assert len(blocks) >= 8
    scope: dict[str, Any] = {}
    for i, block in enumerate(blocks):
        try:
            exec(compile(block, f"docs/sdk.md[python block {i}]", "exec"), scope)  # noqa: S102
        except Exception as exc:
            raise AssertionError(f"docs/sdk.md python block {i} failed: {exc}\n{block}") from exc
    out = capsys.readouterr().out
    assert "sweep doc-sweep: 4 Jobs: 4 Finished" in out
    assert f"{series_total(10, 3)}\n" in out  # results/total.txt of series-doc
    assert (workdir / "doc-results/results/total.txt").read_text() == f"{series_total(10, 3)}\n"
    assert "series-doc" in out


def _tour_commands() -> list[str]:
    text = (ROOT / "docs" / "cli.md").read_text()
    block = re.search(r"<!-- tour -->\n```console\n(.*?)^```", text, re.S | re.M)
    assert block, "docs/cli.md has no <!-- tour --> block"
    return [ln[2:] for ln in block.group(1).splitlines() if ln.startswith("$ ferry ")]


def test_docs_cli_md_tour(
    ferry_kube: Kube,
    ferry_namespace: str,
    real_operator: RealNodeOperator,
    user_env: dict[str, str],
    workdir: Path,
) -> None:
    commands = _tour_commands()
    assert len(commands) >= 12
    transcript: list[str] = []
    outputs: dict[str, str] = {}
    for command in commands:
        argv = shlex.split(command)
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "ferry", *argv[1:]],
            cwd=workdir, env=user_env, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        took = time.monotonic() - started
        shown = (proc.stdout + proc.stderr).replace(str(workdir), ".")
        transcript.append(f"$ {command}\n{shown}" + ("" if shown.endswith("\n") else "\n"))
        if proc.returncode != 0:
            transcript.append(f"(exit {proc.returncode})\n")
        transcript.append(f"# exit {proc.returncode}, {took:.1f}s\n\n")
        assert proc.returncode == 0, f"{command}: exit {proc.returncode}\n{shown}"
        outputs[command.split()[1]] = outputs.get(command.split()[1], "") + proc.stdout
        if command.startswith("ferry wait series-1 "):
            # Logs after the Job ended: the run pod is gone, the log comes from the archive.
            ferry_kube.wait_for(lambda: pod_gone(ferry_kube, ferry_namespace, "series-1-1"),
                                timeout=60, what="series-1's run pod gone")  # fmt: skip
            transcript.append("# (series-1-1, the run pod, is gone now)\n\n")
    text = "".join(transcript)
    keep = os.environ.get("FERRY_CLI_TRANSCRIPT")
    if keep:
        header = (
            "# The docs/cli.md tour, as run by tests/e2e/test_sdk_e2e.py::test_docs_cli_md_tour\n"
            f"# on the local cluster's real node (namespace {ferry_namespace}), "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.\n\n"
        )
        Path(keep).write_text(header + text)
    assert f"total {series_total(10, 3)}" in outputs["logs"]
    assert "sweep grid: 6 Jobs: 6 Finished" in outputs["sweep"]
    assert (workdir / "results-1/results/total.txt").read_text() == f"{series_total(10, 3)}\n"
    for i in range(1, 7):
        assert (workdir / f"grid-results/grid-{i:03d}/results/total.txt").is_file()
    assert "series-1-again" in outputs["list"]


def test_cli_logs_follow_streams_the_live_container(
    ferry_kube: Kube,
    ferry_namespace: str,
    real_operator: RealNodeOperator,
    user_env: dict[str, str],
    workdir: Path,
) -> None:
    """`ferry logs -f` prints lines as the app writes them, then ends with the container."""
    ferry_kube.apply(TICKER, "-n", ferry_namespace)
    sdk = Client(kubeconfig=user_env["KUBECONFIG"], env=user_env)
    sdk.submit("ticker", inputs={"data": DATA}, name="tick-cli")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ferry", "logs", "-f", "tick-cli"],
        cwd=workdir, env=user_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    seen: list[tuple[float, str]] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            seen.append((time.monotonic(), line))

    reader = threading.Thread(target=read)
    reader.start()
    assert proc.wait(timeout=240) == 0, proc.stderr.read() if proc.stderr else ""
    reader.join(timeout=10)
    ticks = [t for t, line in seen if line.startswith("tick")]
    assert len(ticks) == 8
    assert ticks[-1] - ticks[0] > 4  # streamed as written (8 lines a second apart), not at once
