"""Every verb the chart grants is used, and the operator needs no other: the operator runs as
the chart's ServiceAccount with exactly the chart's RBAC (rendered and applied), through every
path that calls the API — a Job archived and Finished, one cancelled, one deleted by its TTL,
a pod that does not start (its Warning Events read), an MPI Job (the CRD check, its MPIJob made
and cancelled; a foreign MPIJob holding another's name), a Job naming a missing App, a run
pod's name held by a foreign pod, an MPI Job queued in Kueue (its Workload looked for), a stray
pod of a Job at rest (the Job read afresh), leader election — and the apiserver's audit log
says which (group, resource, verb) it used. A grant nobody used fails the test, as does any
403."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ferry.decisions.kueue import KUEUE_MISSING, NO_WORKLOAD
from tests.conftest import Kube
from tests.integration.lifecycle_support import (
    Watcher,
    app_manifest,
    job_manifest,
    patch,
    pods,
    sim,
    status,
)
from tests.integration.mpi_support import foreign_mpijob
from tests.integration.rbac_support import (
    ChartIdentity,
    Pair,
    SAOperator,
    audit_entries,
    audited,
    forbidden,
    granted,
    install_identity,
)
from tests.integration.test_lifecycle import _kubelet_warning

pytestmark = pytest.mark.integration


@pytest.fixture
def identity(kube: Kube, namespace: str, tmp_path: Path) -> Iterator[ChartIdentity]:
    ident = install_identity(kube, namespace, tmp_path)
    yield ident
    kube.run("delete", "namespace", ident.release_ns, "--wait=false", check=False)
    kube.run("delete", "clusterrole,clusterrolebinding", f"{ident.sa}-discovery", check=False)


#: Used by a listing read in pages (the fallback for an apiserver that does not stream
#: listings); otherwise only pods are listed, when a run pod looks lost (not exercised here).
PAGED_ONLY = frozenset({("ferry.dev", "jobs", "list"), ("", "pods", "list")})


def _wait_until_used(
    kube: Kube, identity: ChartIdentity, want: set[Pair] | frozenset[Pair]
) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if want <= audited(audit_entries(kube.state, identity.username)):
            return
        time.sleep(1)


def _create(kube: Kube, namespace: str, *objs: dict[str, Any]) -> None:
    for obj in objs:
        kube.create(obj, "-n", namespace)


@pytest.mark.usefixtures("alone", "mpijob_crd")
def test_every_granted_verb_is_used_and_none_is_missing(
    kube: Kube, namespace: str, identity: ChartIdentity, tmp_path: Path
) -> None:
    ns = namespace
    op = SAOperator(kube.state, tmp_path, identity, ns)
    op.start()
    try:
        _exercise(kube, ns)
        want = granted(identity.rendered, identity.sa)
        # Some calls come late (the stray pod's Job read, the TTL's delete): wait for them.
        _wait_until_used(kube, identity, want - PAGED_ONLY)
        # Listings are streamed (a watch); an apiserver that does not stream them is listed
        # in pages, which needs `list`: a start with streaming off, as against one.
        op.stop()
        op.settings = {"FERRY_STREAM_LISTS": "false"}
        op.start()
        _wait_until_used(kube, identity, want)
        entries = audit_entries(kube.state, identity.username)
        used = audited(entries)
        log = op.log_text()
    finally:
        op.stop()
    print("granted:", *sorted(want), sep="\n  ")
    print("used:", *sorted(used), sep="\n  ")
    assert not forbidden(entries), f"refused: {forbidden(entries)}"
    # A 403 answer, not the milliseconds of a log line's time ("16:25:36,403") or a hex name.
    assert not re.findall(r"(?<![\w,.])403(?!\w)", log)
    assert "Forbidden" not in log
    assert not used - want, f"used but not granted: {sorted(used - want)}"
    assert not want - used, f"granted but never used: {sorted(want - used)}"


def _exercise(kube: Kube, ns: str) -> None:
    """Every path of the operator that calls the API, each to its expected state."""
    _create(kube, ns, app_manifest())
    # A run pod's name held by a pod that is not the Job's: NameTaken (pods get).
    foreign = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "taken-1"},
        "spec": {"containers": [{"name": "c", "image": "example.org/x:1"}]},
    }
    _create(
        kube,
        ns,
        foreign,
        job_manifest(
            "done",
            annotations=sim(duration="1s"),
            inputs=[{"name": "model", "source": {"inline": "node 1"}}],
        ),
        job_manifest("cancel", annotations=sim(duration="600s")),
        job_manifest("ttl", annotations=sim(duration="1s"), ttlSecondsAfterFinished=1),
        job_manifest(
            "nostart",
            annotations=sim(start_delay="600s"),
            inputs=[{"name": "model", "source": {"configMap": {"name": "frames", "key": "m"}}}],
        ),
        job_manifest("orphan", app="missing"),
        job_manifest("taken", annotations=sim(duration="1s")),
        app_manifest("mpi", runtime={"type": "MPI", "mpi": {"workers": 2}}),
        job_manifest("mpi-1", app="mpi"),
        # Queued in Kueue (its Workload CRD absent, or Kueue not managing this namespace):
        # its MPIJob made suspended, its Workload looked for (workloads list).
        job_manifest("queued", app="mpi", queueName="small"),
        foreign_mpijob("mpitaken-1", "mpitaken"),
        job_manifest("mpitaken", app="mpi"),
    )
    done = Watcher(kube, ns, "done").state("Finished", timeout=90)
    assert "Archiving" in [h["state"] for h in status(done)["history"]]
    Watcher(kube, ns, "cancel").state("Running", timeout=60)
    patch(kube, ns, "cancel", {"cancel": True})
    assert status(Watcher(kube, ns, "cancel").terminal())["state"] == "Cancelled"
    kube.wait_for(
        lambda: kube.run("get", "fjob", "ttl", "-n", ns, check=False).returncode != 0,
        timeout=60,
        what="the ttl Job deleted",
    )
    nostart = Watcher(kube, ns, "nostart")
    nostart.state("StagingInputs", timeout=60)
    (pod,) = pods(kube, ns, "nostart")
    mount = 'MountVolume.SetUp failed for volume "in-model" : configmap "frames" not found'
    kube.create(_kubelet_warning(pod, "FailedMount", mount), "-n", ns)
    assert status(nostart.state("Blocked", timeout=60))["reason"] == "PodNotStarting"
    for name, reasons in (
        ("orphan", {"AppNotFound"}),
        ("taken", {"NameTaken"}),
        # An MPIJob's name held by a foreign MPIJob (mpijobs get).
        ("mpitaken", {"NameTaken"}),
    ):
        job = Watcher(kube, ns, name).state("Blocked", timeout=60)
        assert status(job)["reason"] in reasons, status(job)
    # An MPI Job: its MPIJob made (mpijobs create; list; its launcher Job looked up: jobs.batch
    # get), then cancelled (mpijobs delete). No MPI controller runs here.
    mpi = Watcher(kube, ns, "mpi-1")
    mpi.until(lambda j: status(j).get("reason") == "PodPending", timeout=60, what="MPIJob made")
    patch(kube, ns, "mpi-1", {"cancel": True})
    assert status(mpi.terminal())["state"] == "Cancelled"
    queued = Watcher(kube, ns, "queued")
    held = queued.until(
        lambda j: status(j).get("reason") == "AwaitingAdmission", timeout=60, what="held by Kueue"
    )
    # Kueue's Workload CRD may be installed by an earlier test of the session (fixture
    # `kueue`); this namespace is not one Kueue manages, so either way no Workload comes.
    assert status(held)["message"].startswith(
        "MPIJob queued-1 waits for Kueue to admit it (queue small): "
    ), status(held)
    assert status(held)["message"].endswith((KUEUE_MISSING, NO_WORKLOAD)), status(held)
    patch(kube, ns, "queued", {"cancel": True})
    assert status(queued.terminal())["state"] == "Cancelled"
    # A stray pod of a Job at rest: the Job is read afresh (jobs get); the pod is not its own,
    # so it is left alone.
    time.sleep(3)
    stray = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "stray",
            "labels": {"ferry.dev/job": "done", "app.kubernetes.io/managed-by": "ferry"},
        },
        "spec": {"containers": [{"name": "c", "image": "example.org/x:1"}]},
    }
    _create(kube, ns, stray)
