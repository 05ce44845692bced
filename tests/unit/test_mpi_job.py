"""The MPIJob an MPI attempt is made of (`ferry.decisions.mpi_job`), field by field: the launcher
is the run pod template, the workers the App's image, every container Pod Security
`restricted`, the shared workspace's mode and class, worker hostnames that are DNS labels."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from ferry.api import names
from ferry.api.job import State
from ferry.config import OperatorConfig
from ferry.decisions import builders, mpi_job
from ferry.decisions.plan import CreateObject

from .factories import (
    CONFIG,
    JOB,
    NOW,
    UID,
    app_spec,
    app_view,
    decide,
    job_spec,
    job_view,
    observe,
)

pytestmark = pytest.mark.unit

MPI_UID = "mpijob-uid-1"
LAUNCHER_UID = "launcher-job-uid-1"
MPI_APP = {"type": "MPI", "mpi": {"workers": 2, "slotsPerWorker": 4}}
META = builders.JobMeta(JOB, "bridge", UID)
#: When the MPI Operator made the launcher (after the workers, made at NOW).
LAUNCHED = NOW + timedelta(seconds=5)


def build(config: OperatorConfig = CONFIG, **app: Any) -> dict[str, Any]:
    spec = app_spec(**{"runtime": MPI_APP, **app})
    return mpi_job.mpijob(META, spec, job_spec(), {"steps": 5}, 1, config)


def dig(obj: Any, path: str) -> Any:
    for part in path.split("."):
        obj = obj[int(part)] if isinstance(obj, list) else obj[part]
    return obj


# --------------------------------------------------------------------------- the MPIJob


@pytest.mark.parametrize(
    ("path", "want"),
    [
        ("apiVersion", "kubeflow.org/v2beta1"),
        ("kind", "MPIJob"),
        ("metadata.name", f"{JOB}-1"),
        ("metadata.labels.ferry.dev/job-uid", UID),
        ("metadata.ownerReferences.0.uid", UID),
        ("metadata.ownerReferences.0.controller", True),
        ("spec.slotsPerWorker", 4),
        ("spec.mpiImplementation", "OpenMPI"),
        ("spec.sshAuthMountPath", "/home/mpiuser/.ssh"),
        ("spec.launcherCreationPolicy", "WaitForWorkersReady"),
        ("spec.runLauncherAsWorker", False),
        ("spec.runPolicy.backoffLimit", 0),
        ("spec.runPolicy.cleanPodPolicy", "Running"),
        ("spec.mpiReplicaSpecs.Launcher.replicas", 1),
        ("spec.mpiReplicaSpecs.Launcher.restartPolicy", "Never"),
        ("spec.mpiReplicaSpecs.Worker.replicas", 2),
        ("spec.mpiReplicaSpecs.Worker.restartPolicy", "Never"),
        # The launcher is the run pod template: staging, the launcher wrapper, the workspace.
        ("spec.mpiReplicaSpecs.Launcher.template.metadata.labels.ferry.dev/role", "run"),
        ("spec.mpiReplicaSpecs.Launcher.template.metadata.labels.ferry.dev/job-uid", UID),
        ("spec.mpiReplicaSpecs.Launcher.template.spec.containers.0.name", "app"),
        # ... which waits for every host of the MPI hostfile before it runs the app.
        (
            "spec.mpiReplicaSpecs.Launcher.template.spec.containers.0.command",
            [
                names.LAUNCHER,
                "--wait-hosts",
                "/etc/mpi/hostfile",
                "--log",
                "/ferry/logs/app.log",
                "--",
                "solve",
            ],
        ),
        (
            "spec.mpiReplicaSpecs.Launcher.template.spec.containers.0.resources",
            mpi_job.LAUNCHER_RESOURCES,
        ),
        ("spec.mpiReplicaSpecs.Launcher.template.spec.initContainers.0.name", "ferry-setup"),
        ("spec.mpiReplicaSpecs.Launcher.template.spec.initContainers.1.name", "stage-model"),
        (
            "spec.mpiReplicaSpecs.Launcher.template.spec.volumes.0.persistentVolumeClaim",
            {"claimName": f"{JOB}-1"},
        ),
        # Workers: the App's image running sshd on the same workspace.
        ("spec.mpiReplicaSpecs.Worker.template.metadata.labels.ferry.dev/role", "worker"),
        ("spec.mpiReplicaSpecs.Worker.template.metadata.labels.ferry.dev/attempt", "1"),
        ("spec.mpiReplicaSpecs.Worker.template.spec.containers.0.name", "worker"),
        (
            "spec.mpiReplicaSpecs.Worker.template.spec.containers.0.image",
            "registry.example.org/solver:1.0",
        ),
        (
            "spec.mpiReplicaSpecs.Worker.template.spec.containers.0.command",
            ["/usr/sbin/sshd", "-De", "-f", "/home/mpiuser/.sshd_config"],
        ),
        (
            "spec.mpiReplicaSpecs.Worker.template.spec.containers.0.resources",
            {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "1Gi"}},
        ),
        ("spec.mpiReplicaSpecs.Worker.template.spec.containers.0.workingDir", "/ferry/work"),
        (
            "spec.mpiReplicaSpecs.Worker.template.spec.containers.0.volumeMounts",
            [
                {"name": "workspace", "mountPath": "/ferry/work", "subPath": "work"},
                {
                    "name": "workspace",
                    "mountPath": "/ferry/inputs",
                    "subPath": "inputs",
                    "readOnly": True,
                },
            ],
        ),
        (
            "spec.mpiReplicaSpecs.Worker.template.spec.volumes",
            [
                {"name": "workspace", "persistentVolumeClaim": {"claimName": f"{JOB}-1"}},
                {"name": "ferry-bin", "emptyDir": {"sizeLimit": "64Mi"}},
            ],
        ),
        # The worker's own setup lays out the workspace's folders before it mounts them.
        ("spec.mpiReplicaSpecs.Worker.template.spec.initContainers.0.name", "ferry-setup"),
        (
            "spec.mpiReplicaSpecs.Worker.template.spec.initContainers.0.volumeMounts.0",
            {"name": "workspace", "mountPath": "/ferry/workspace"},
        ),
    ],
)
def test_the_mpijob_of_an_attempt(path: str, want: Any) -> None:
    # Label keys hold dots and slashes: look them up whole.
    head, sep, label = path.partition(".labels.")
    got = dig(build(), head + ".labels")[label] if sep else dig(build(), path)
    assert got == want


def test_the_pod_templates_carry_no_restart_policy_and_no_owner() -> None:
    """The MPI Operator takes the restart policy from the replica spec (and warns when a
    template sets one) and sets the pods' owners itself."""
    for role in ("Launcher", "Worker"):
        template = build()["spec"]["mpiReplicaSpecs"][role]["template"]
        assert "restartPolicy" not in template["spec"]
        assert set(template["metadata"]) <= {"labels", "annotations"}


def _containers(template: dict[str, Any]) -> Iterator[dict[str, Any]]:
    spec = template["spec"]
    yield from spec.get("initContainers", [])
    yield from spec["containers"]


@pytest.mark.parametrize("role", ["Launcher", "Worker"])
def test_every_container_meets_pod_security_restricted(role: str) -> None:
    template = build()["spec"]["mpiReplicaSpecs"][role]["template"]
    pod = template["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 1000
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    assert not pod.get("hostNetwork")
    assert not pod.get("hostPID")
    assert not pod.get("hostIPC")
    assert all("hostPath" not in v for v in pod["volumes"])
    for c in _containers(template):
        ctx = c["securityContext"]
        assert ctx["allowPrivilegeEscalation"] is False, c["name"]
        assert ctx["privileged"] is False
        assert ctx["runAsNonRoot"] is True
        assert ctx["capabilities"] == {"drop": ["ALL"]}
        assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}


@pytest.mark.parametrize(
    ("mpi_spec", "path", "want"),
    [
        (
            {"workerCommand": ["/opt/worker", "--job", "{{job.name}}"]},
            "spec.mpiReplicaSpecs.Worker.template.spec.containers.0.command",
            ["/opt/worker", "--job", JOB],
        ),
        ({"implementation": "MPICH"}, "spec.mpiImplementation", "MPICH"),
        ({"sshAuthMountPath": "/home/app/.ssh"}, "spec.sshAuthMountPath", "/home/app/.ssh"),
        ({"workers": 5}, "spec.mpiReplicaSpecs.Worker.replicas", 5),
        ({}, "spec.slotsPerWorker", 1),
    ],
)
def test_the_mpi_settings_of_the_app(mpi_spec: dict[str, Any], path: str, want: Any) -> None:
    spec = app_spec(runtime={"type": "MPI", "mpi": mpi_spec})
    job = mpi_job.mpijob(META, spec, job_spec(), {"steps": 5}, 1, CONFIG)
    assert dig(job, path) == want


@pytest.mark.parametrize(
    ("workspace", "config", "mode", "storage_class"),
    [
        (None, CONFIG, "ReadWriteOnce", None),
        (None, OperatorConfig(mpi_workspace_access_mode="ReadWriteMany"), "ReadWriteMany", None),
        (
            {"accessMode": "ReadWriteMany", "storageClassName": "nfs"},
            CONFIG,
            "ReadWriteMany",
            "nfs",
        ),
        (None, OperatorConfig(mpi_storage_class_name="nfs", storage_class_name="x"), None, "nfs"),
        (None, OperatorConfig(storage_class_name="x"), None, "x"),
    ],
)
def test_the_shared_workspace_mode_and_class(
    workspace: dict[str, Any] | None,
    config: OperatorConfig,
    mode: str | None,
    storage_class: str | None,
) -> None:
    spec = job_spec(**({"workspace": workspace} if workspace else {}))
    pvc = builders.workspace_pvc(META, spec, 1, config, shared=True)
    if mode is not None:
        assert pvc["spec"]["accessModes"] == [mode]
    assert pvc["spec"].get("storageClassName") == storage_class


def test_a_pod_apps_workspace_ignores_the_mpi_settings() -> None:
    config = OperatorConfig(mpi_workspace_access_mode="ReadWriteMany", mpi_storage_class_name="nfs")
    pvc = builders.workspace_pvc(META, job_spec(), 1, config)
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert "storageClassName" not in pvc["spec"]


@pytest.mark.parametrize(
    ("name", "workers", "valid"),
    [
        ("ring", 2, True),
        ("a" * 52, 10, True),  # a…a-1-worker-9: 63 characters
        ("a" * 53, 10, False),
        ("1ring", 2, False),  # a DNS-1035 label starts with a letter
        ("ring.v2", 2, False),
    ],
)
def test_worker_hostnames_must_be_dns_labels(name: str, workers: int, valid: bool) -> None:
    if valid:
        mpi_job.check_name(name, 1, workers)
    else:
        with pytest.raises(mpi_job.InvalidNameError):
            mpi_job.check_name(name, 1, workers)


def test_a_job_whose_name_cannot_name_its_workers_fails_as_invalid() -> None:
    obs = observe(job_view(name="r" * 60), app=app_view(app_spec(runtime=MPI_APP)))
    plan = decide(obs)
    assert (plan.state, plan.status.reason) == (State.FAILED, "InvalidSpec")
    assert "DNS labels" in (plan.status.message or "")
    assert not [a for a in plan.actions if isinstance(a, CreateObject)]
