"""Ferry's MPI runtime end to end on the real node: an MPI App (the OpenMPI image, an mpi4py
program given as an inline input) run by the Kubeflow MPI Operator (ferrydev.cluster.mpioperator)
as one MPIJob per attempt, its hostfile resolved through the cluster DNS (ferrydev.cluster.dns),
`mpirun` in the launcher reaching each worker's sshd.

Each test's namespace enforces the restricted Pod Security Standard: every pod of the MPIJob
(launcher with Ferry's staging, workers) and the archive pod is admitted under it.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Kube
from tests.e2e.conftest import RealNodeOperator
from tests.e2e.test_ferry_e2e import assert_admitted, fjob, verified_archive, wait_state

pytestmark = pytest.mark.e2e

#: Each rank: an allreduce across the ranks, a line on stdout and a file of its own in the
#: shared workspace, then (argv) a sleep and, for one rank, a non-zero exit.
RANKS_PY = """\
import socket, sys, time
from mpi4py import MPI
comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
total = comm.allreduce(rank + 1)
line = f"rank {rank} of {size} on {socket.gethostname()} sum {total}"
with open(f"rank-{rank}.txt", "w") as f:
    f.write(line + "\\n")
print(line, flush=True)
time.sleep(float(sys.argv[1]))
if rank == int(sys.argv[2]):
    sys.exit(int(sys.argv[3]))
"""


def mpi_app(image: str) -> dict[str, Any]:
    return {
        "apiVersion": "ferry.dev/v1alpha1",
        "kind": "App",
        "metadata": {"name": "ring"},
        "spec": {
            "version": "1.0",
            "image": image,
            "command": ["mpirun"],
            "args": [
                "-np", "2", "--bind-to", "none",
                "python3", "{{inputs.program}}",
                "{{params.sleep}}", "{{params.failRank}}", "{{params.exitCode}}",
            ],
            "parameters": [
                {"name": "sleep", "type": "integer", "default": 0},
                {"name": "failRank", "type": "integer", "default": -1},
                {"name": "exitCode", "type": "integer", "default": 0},
            ],
            "inputs": [{"name": "program", "required": True}],
            "outputs": {"include": ["rank-*.txt"]},
            "resources": {"cpu": "100m", "memory": "256Mi"},
            "runtime": {"type": "MPI", "mpi": {"workers": 2, "slotsPerWorker": 1}},
        },
    }  # fmt: skip


def mpi_job(name: str, **params: int) -> dict[str, Any]:
    return {
        "apiVersion": "ferry.dev/v1alpha1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "appRef": {"name": "ring"},
            "parameters": params,
            "inputs": [{"name": "program", "source": {"inline": RANKS_PY}}],
            "retry": {"appFailures": 0, "infraFailures": 2},
        },
    }


def transcript(kube: Kube, ns: str, title: str) -> None:
    """`kubectl get fjob -o wide` and `kubectl get mpijob,pods`, printed (pytest -rP shows it)."""
    print(f"\n== {title}")
    for args in (("get", "fjob", "-o", "wide"), ("get", "mpijob,pods", "-o", "wide")):
        out = kube.run(*args, "-n", ns, check=False)
        print(f"$ kubectl {' '.join(args)}\n{out.stdout}{out.stderr}", end="")


def pods(kube: Kube, ns: str) -> list[str]:
    return [p["metadata"]["name"] for p in kube.list("pods", ns)]


def running_on_attempt(kube: Kube, ns: str, name: str, op: RealNodeOperator) -> dict[str, Any]:
    """The Job Running, its app (mpirun) started on both workers: rank files in view."""
    return wait_state(kube, ns, name, {"Running"}, op, timeout=240)


@pytest.fixture
def ring(ferry_kube: Kube, ferry_namespace: str, openmpi_image: str) -> str:
    ferry_kube.create(mpi_app(openmpi_image), "-n", ferry_namespace)
    return ferry_namespace


def test_an_mpi_job_on_two_workers_finishes_with_every_ranks_output(
    ferry_kube: Kube, ring: str, real_operator: RealNodeOperator
) -> None:
    kube, ns = ferry_kube, ring
    kube.create(mpi_job("ring-ok", sleep=5), "-n", ns)
    running_on_attempt(kube, ns, "ring-ok", real_operator)
    transcript(kube, ns, "ring-ok running")
    job = wait_state(kube, ns, "ring-ok", {"Finished"}, real_operator, timeout=300)
    transcript(kube, ns, "ring-ok finished")
    st = job["status"]
    assert (st["reason"], st["exitCode"], st["attempt"]) == ("Succeeded", 0, 1)
    _manifest, content = verified_archive(kube, job)
    log = content["logs/app.log"].decode()
    workers = set()
    for rank in (0, 1):
        text = content[f"rank-{rank}.txt"].decode()
        assert text.startswith(f"rank {rank} of 2 on ring-ok-1-worker-"), text
        assert text.endswith(" sum 3\n"), text
        assert text.strip() in log, log
        workers.add(text.split()[5])
    assert workers == {"ring-ok-1-worker-0", "ring-ok-1-worker-1"}  # one rank per worker
    assert_admitted(kube, ns, real_operator)


def test_a_rank_exiting_non_zero_fails_the_job_with_its_exit_code(
    ferry_kube: Kube, ring: str, real_operator: RealNodeOperator
) -> None:
    kube, ns = ferry_kube, ring
    kube.create(mpi_job("ring-bad", failRank=1, exitCode=7), "-n", ns)
    job = wait_state(kube, ns, "ring-bad", {"Failed"}, real_operator, timeout=300)
    transcript(kube, ns, "ring-bad failed")
    st = job["status"]
    assert (st["reason"], st["exitCode"], st["attempt"]) == ("AppFailed", 7, 1), st
    assert_admitted(kube, ns, real_operator)


def test_cancel_mid_run_leaves_no_mpijob_or_pod(
    ferry_kube: Kube, ring: str, real_operator: RealNodeOperator
) -> None:
    kube, ns = ferry_kube, ring
    kube.create(mpi_job("ring-stop", sleep=600), "-n", ns)
    running_on_attempt(kube, ns, "ring-stop", real_operator)
    transcript(kube, ns, "ring-stop running, before cancel")
    kube.run(
        "patch", "fjob", "ring-stop", "-n", ns, "--type=merge", "-p", '{"spec":{"cancel":true}}'
    )
    job = wait_state(kube, ns, "ring-stop", {"Cancelled"}, real_operator, timeout=120)
    assert job["status"]["attempt"] == 1
    kube.wait_for(
        lambda: not kube.list("mpijobs.kubeflow.org", ns) and not pods(kube, ns),
        timeout=120,
        what="no MPIJob and no pod left",
    )
    transcript(kube, ns, "ring-stop cancelled")
    assert_admitted(kube, ns, real_operator)


def test_a_deleted_worker_pod_is_retried_as_attempt_2(
    ferry_kube: Kube, ring: str, real_operator: RealNodeOperator
) -> None:
    kube, ns = ferry_kube, ring
    kube.create(mpi_job("ring-lost", sleep=20), "-n", ns)
    running_on_attempt(kube, ns, "ring-lost", real_operator)
    transcript(kube, ns, "ring-lost running, before a worker is deleted")
    kube.run("delete", "pod", "ring-lost-1-worker-1", "-n", ns, "--wait=false")
    job = wait_state(kube, ns, "ring-lost", {"Finished"}, real_operator, timeout=420)
    transcript(kube, ns, "ring-lost finished")
    st = job["status"]
    assert (st["reason"], st["attempt"]) == ("Succeeded", 2), st
    retry = [h for h in st["history"] if h["state"] == "Retrying"]
    assert retry, st["history"]
    assert fjob(kube, ns, "ring-lost")["status"]["outputs"]["uri"].endswith("/attempt-2/")
    assert_admitted(kube, ns, real_operator)


def test_mpirun_waits_for_a_worker_whose_sshd_starts_late(
    ferry_kube: Kube, ferry_namespace: str, openmpi_image: str, real_operator: RealNodeOperator
) -> None:
    """A worker is Ready once its container starts, before sshd listens (and under Kueue the
    launcher starts with the workers): the launcher waits for every hostfile host first. Here
    sshd starts 20 s after the worker; without the wait mpirun exits 255 (AppFailed)."""
    kube, ns = ferry_kube, ferry_namespace
    app = mpi_app(openmpi_image)
    app["spec"]["runtime"]["mpi"]["workerCommand"] = [
        "sh", "-c", "sleep 20; exec /usr/sbin/sshd -De -f /home/mpiuser/.sshd_config",
    ]  # fmt: skip
    kube.create(app, "-n", ns)
    kube.create(mpi_job("ring-late"), "-n", ns)
    job = wait_state(kube, ns, "ring-late", {"Finished", "Failed"}, real_operator, timeout=300)
    transcript(kube, ns, "ring-late ended")
    st = job["status"]
    assert (st["state"], st["reason"], st["attempt"]) == ("Finished", "Succeeded", 1), st
    _manifest, content = verified_archive(kube, job)
    log = content["logs/app.log"].decode()
    assert "ferry-launch: waiting for ring-late-1-worker-" in log, log
    for rank in (0, 1):
        assert f"rank {rank} of 2 on ring-late-1-worker-" in log, log
