"""The MPIJob of an MPI attempt: a `kubeflow.org/v2beta1` MPIJob for the Kubeflow MPI Operator.

Owns: the MPIJob an MPI App's attempt runs as (MPI Operator v0.8.x's API): the launcher is the
run pod template (`run_pod`: setup and staging init containers, Ferry's launcher wrapper
around the App's command, the workspace, the restricted security context), the workers are
`mpi.workers` replicas of the App's image running `mpi.workerCommand` (sshd by default) with
the same workspace mounted, and the run policy leaves every retry to Ferry (`backoffLimit:
0`); a Job queued in Kueue (`spec.queueName`) gets an MPIJob labelled with its queue and
created suspended, for Kueue's MPIJob integration to resume on admission (its pod templates
carry no Kueue label). Also the check that the MPIJob's hostnames are valid DNS labels.
Must not: do I/O or read the clock.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from ferry.api import names
from ferry.api.app import AppSpec, MPISpec, Scalar
from ferry.api.job import JobSpec, S3Source
from ferry.config import OperatorConfig
from ferry.decisions import run_pod, templating
from ferry.decisions.builders import (
    JobMeta,
    Manifest,
    child_metadata,
    effective_resources,
    labels,
    queue_labels,
    restricted_container_context,
    tools_container,
)
from ferry.decisions.runner import InvalidRunError

#: The MPI Operator refuses (with only a Warning Event) an MPIJob whose last worker's hostname
#: `<name>-worker-<n>` is not a DNS-1035 label.
_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
DNS1035_MAX = 63
#: The launcher runs `mpirun` (the ranks run on the workers): small requests, no limits.
LAUNCHER_RESOURCES: dict[str, Any] = {"requests": {"cpu": "100m", "memory": "128Mi"}}
#: Worker pods are deleted by the MPI Operator when the launcher ends if still running
#: (failed ones stay for `kubectl logs` until the Job releases its children).
CLEAN_POD_POLICY = "Running"
#: The launcher (with its staging) starts once every worker is Ready, so `mpirun` seldom
#: waits for a worker (`launcher_template` waits for the rest: sshd still starting, Kueue).
LAUNCHER_CREATION_POLICY = "WaitForWorkersReady"


class InvalidNameError(InvalidRunError):
    """The Job's name cannot name an MPIJob's pods (their hostnames are DNS labels)."""


def check_name(job: str, attempt: int, workers: int) -> None:
    """Raise InvalidNameError when the MPIJob of this attempt would name a worker with an invalid
    hostname (the MPI Operator would never start it)."""
    host = names.mpi_worker_name(names.mpijob_name(job, attempt), workers - 1)
    if len(host) > DNS1035_MAX or not _DNS1035.match(host):
        raise InvalidNameError(
            f"an MPI Job's worker hostnames ({host!r}) must be DNS labels: at most "
            f"{DNS1035_MAX} characters, lowercase letters, digits and '-', starting with a "
            "letter; give the Job a shorter name"
        )


def _template(pod: Manifest) -> dict[str, Any]:
    """A pod template from a pod: its labels and annotations, its spec without the restart
    policy (the MPI Operator takes it from the replica spec and warns otherwise)."""
    meta = pod["metadata"]
    spec = {k: v for k, v in pod["spec"].items() if k != "restartPolicy"}
    template_meta: dict[str, Any] = {"labels": dict(meta["labels"])}
    if meta.get("annotations"):
        template_meta["annotations"] = dict(meta["annotations"])
    return {"metadata": template_meta, "spec": spec}


def launcher_template(pod: Manifest) -> dict[str, Any]:
    """The launcher's pod template: the run pod, the app container first (the MPI Operator
    adds its hostfile and SSH keys to the first container) with launcher-sized resources.
    Ferry's launcher wrapper waits for every host of the hostfile before it runs the app: a
    worker is Ready before its sshd listens, and Kueue resumes launcher and workers together."""
    template = _template(copy.deepcopy(pod))
    for container in template["spec"]["containers"]:
        if container["name"] == names.APP_CONTAINER:
            container["resources"] = copy.deepcopy(LAUNCHER_RESOURCES)
            command = container.get("command", [])
            if command[:1] == [names.LAUNCHER]:
                container["command"] = [
                    names.LAUNCHER, "--wait-hosts", names.MPI_HOSTFILE, *command[1:]
                ]  # fmt: skip
    return template


def worker_template(
    job: JobMeta,
    app: AppSpec,
    spec: JobSpec,
    mpi: MPISpec,
    ctx: templating.Context,
    attempt: int,
    pod: Manifest,
    config: OperatorConfig,
) -> dict[str, Any]:
    """A worker's pod template: the App's image running the worker command, the run pod's
    workspace volume (working directory and inputs, read-only, laid out by its own setup init
    container) and restricted context."""
    run = pod["spec"]
    workspace = next(v for v in run["volumes"] if v["name"] == names.WORKSPACE_VOLUME)
    app_container = next(c for c in run["containers"] if c["name"] == names.APP_CONTAINER)
    container: dict[str, Any] = {
        "name": names.WORKER_CONTAINER,
        "image": app.image,
        "imagePullPolicy": config.image_pull_policy,
        "command": [templating.render(word, ctx) for word in mpi.worker_command],
        "workingDir": templating.WORKDIR,
        "env": copy.deepcopy(app_container["env"]),
        "securityContext": restricted_container_context(),
        "resources": effective_resources(app, spec),
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [
            {"name": names.WORKSPACE_VOLUME, "mountPath": templating.WORKDIR, "subPath": "work"},
            {
                "name": names.WORKSPACE_VOLUME,
                "mountPath": templating.INPUTS_DIR,
                "subPath": "inputs",
                "readOnly": True,
            },
        ],
    }
    volumes = [copy.deepcopy(workspace)]
    inits = []
    if "persistentVolumeClaim" in workspace:
        # The worker mounts folders of the workspace (subPaths) that the launcher's setup
        # makes, and starts before it: its own setup makes them first, as the pod's user.
        setup = tools_container(names.SETUP_CONTAINER, ["setup", "--bin", names.BIN_DIR], config)
        setup["volumeMounts"] = [
            {"name": names.WORKSPACE_VOLUME, "mountPath": names.WORKSPACE_DIR},
            {"name": names.BIN_VOLUME, "mountPath": names.BIN_DIR},
        ]
        inits.append(setup)
        volumes.append({"name": names.BIN_VOLUME, "emptyDir": {"sizeLimit": "64Mi"}})
    meta = pod["metadata"]
    worker_labels = {**meta["labels"], **labels(job, attempt, names.ROLE_WORKER)}
    template_meta: dict[str, Any] = {"labels": worker_labels}
    if meta.get("annotations"):
        template_meta["annotations"] = dict(meta["annotations"])
    return {
        "metadata": template_meta,
        "spec": {
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "securityContext": copy.deepcopy(run["securityContext"]),
            **({"initContainers": inits} if inits else {}),
            "containers": [container],
            "volumes": volumes,
        },
    }


def mpijob(
    job: JobMeta,
    app: AppSpec,
    spec: JobSpec,
    params: Mapping[str, Scalar],
    attempt: int,
    config: OperatorConfig,
    resolved: Mapping[str, S3Source] | None = None,
) -> Manifest:
    """The attempt's MPIJob. Raises templating.TemplateError on a bad template and
    InvalidNameError when the Job's name cannot name its workers."""
    mpi = app.runtime.mpi or MPISpec()
    name = names.mpijob_name(job.name, attempt)
    check_name(job.name, attempt, mpi.workers)
    # Queued through Kueue's MPIJob integration: the MPIJob carries the queue label and is
    # created suspended (Kueue resumes it on admission); its pod templates never do.
    unqueued = dataclasses.replace(job, queue="")
    pod = run_pod.run_pod(unqueued, app, spec, params, attempt, config, resolved)
    ctx = run_pod.template_context(unqueued, app, spec, params, attempt)
    meta = child_metadata(job, name, attempt, names.ROLE_RUN)
    meta["labels"].update(queue_labels(job))
    return {
        "apiVersion": names.MPI_API_VERSION,
        "kind": "MPIJob",
        "metadata": meta,
        "spec": {
            "slotsPerWorker": mpi.slots_per_worker,
            "runLauncherAsWorker": False,
            "mpiImplementation": mpi.implementation.value,
            "sshAuthMountPath": mpi.ssh_auth_mount_path,
            "launcherCreationPolicy": LAUNCHER_CREATION_POLICY,
            "runPolicy": {
                # Ferry owns the retry budgets: a failed launcher is not started again.
                "backoffLimit": 0,
                "cleanPodPolicy": CLEAN_POD_POLICY,
                "suspend": bool(job.queue),
            },
            "mpiReplicaSpecs": {
                "Launcher": {
                    "replicas": 1,
                    "restartPolicy": "Never",
                    "template": launcher_template(pod),
                },
                "Worker": {
                    "replicas": mpi.workers,
                    "restartPolicy": "Never",
                    "template": worker_template(job, app, spec, mpi, ctx, attempt, pod, config),
                },
            },
        },
    }
