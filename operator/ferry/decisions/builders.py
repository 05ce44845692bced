"""Pure builders of the objects Ferry creates for a Job attempt, and their shared parts.

Owns: the children's metadata (deterministic names, labels, the controller owner reference),
the `restricted` security contexts, resources, the tools container and its store settings,
the workspace PVC, and the archive pod with its destination, as plain dictionaries ready to
send. The run pod is `run_pod`'s. Must not: do I/O or read the clock.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ferry.api.app import AppSpec
from ferry.api.common import API_VERSION, Resources, S3Location
from ferry.api.job import JobSpec
from ferry.api.names import (
    ANNOTATION_ARCHIVE_TRY,
    ARCHIVE_CONTAINER,
    CREDENTIALS_KEYS,
    ENV_ALLOWED_STORES,
    LABEL_ATTEMPT,
    LABEL_JOB,
    LABEL_JOB_UID,
    LABEL_KUEUE_PRIORITY_CLASS,
    LABEL_KUEUE_QUEUE,
    LABEL_MANAGED_BY,
    LABEL_ROLE,
    MANAGED_BY,
    RESERVED_PREFIXES,
    ROLE_ARCHIVE,
    ROLE_WORKSPACE,
    WORKSPACE_DIR,
    WORKSPACE_VOLUME,
    archive_key_prefix,
    archive_pod_name,
    workspace_name,
)
from ferry.config import OperatorConfig

Manifest = dict[str, Any]

RUN_AS_USER = 1000
STAGER = ["python3", "-m", "ferry.stager"]


@dataclass(frozen=True)
class JobMeta:
    """The identity of the Job that owns what is built."""

    name: str
    namespace: str
    uid: str
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    #: The Kueue LocalQueue its run is queued in (`queue_name`); empty when not queued.
    queue: str = ""


def queue_name(spec: JobSpec | None, labels: Mapping[str, str]) -> str:
    """The Kueue LocalQueue a Job's run goes through: `spec.queueName`, else the Job's own
    label kueue.x-k8s.io/queue-name; empty when neither is set."""
    if spec is not None and spec.queue_name:
        return spec.queue_name
    return labels.get(LABEL_KUEUE_QUEUE, "")


def queue_labels(job: JobMeta) -> dict[str, str]:
    """The labels that put a run object (the run pod, the MPIJob) under Kueue: its queue, and
    the Job's own WorkloadPriorityClass label if it has one. Only those carry them, never a
    workspace, archive pod or MPI pod template."""
    if not job.queue:
        return {}
    out = {LABEL_KUEUE_QUEUE: job.queue}
    priority = job.labels.get(LABEL_KUEUE_PRIORITY_CLASS)
    if priority:
        out[LABEL_KUEUE_PRIORITY_CLASS] = priority
    return out


def _userchild_metadata(values: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in values.items() if not k.startswith(RESERVED_PREFIXES)}


def labels(job: JobMeta, attempt: int, role: str) -> dict[str, str]:
    return {
        LABEL_JOB: job.name,
        LABEL_JOB_UID: job.uid,
        LABEL_ATTEMPT: str(attempt),
        LABEL_ROLE: role,
        LABEL_MANAGED_BY: MANAGED_BY,
    }


def owner_reference(job: JobMeta) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Job",
        "name": job.name,
        "uid": job.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def child_metadata(job: JobMeta, name: str, attempt: int, role: str) -> dict[str, Any]:
    """Children carry the Job's own labels and annotations, then Ferry's (which win)."""
    meta: dict[str, Any] = {
        "name": name,
        "namespace": job.namespace,
        "labels": {**_userchild_metadata(job.labels), **labels(job, attempt, role)},
        "ownerReferences": [owner_reference(job)],
    }
    annotations = _userchild_metadata(job.annotations)
    if annotations:
        meta["annotations"] = annotations
    return meta


def restricted_container_context() -> dict[str, Any]:
    """A container security context meeting the Pod Security Standard `restricted`."""
    return {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "runAsNonRoot": True,
        "readOnlyRootFilesystem": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def pod_security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "runAsGroup": RUN_AS_USER,
        "fsGroup": RUN_AS_USER,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def workspace_pvc(
    job: JobMeta, spec: JobSpec, attempt: int, config: OperatorConfig, shared: bool = False
) -> Manifest:
    """The attempt's workspace. `shared`: mounted by an MPI launcher and its workers, whose
    access mode and class default to the operator's MPI settings."""
    ws = spec.workspace
    default_mode = config.mpi_workspace_access_mode if shared else "ReadWriteOnce"
    pvc_spec: dict[str, Any] = {
        "accessModes": [(ws.access_mode if ws else None) or default_mode],
        "resources": {"requests": {"storage": ws.size if ws else "1Gi"}},
    }
    storage_class = (
        (ws.storage_class_name if ws else None)
        or (config.mpi_storage_class_name if shared else None)
        or config.storage_class_name
    )
    if storage_class:
        pvc_spec["storageClassName"] = storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": child_metadata(job, workspace_name(job.name, attempt), attempt, ROLE_WORKSPACE),
        "spec": pvc_spec,
    }


def effective_resources(app: AppSpec, spec: JobSpec) -> dict[str, Any]:
    """Requests (and equal limits) of the app container: the Job's values over the App's."""
    merged = Resources(
        cpu=(spec.resources.cpu if spec.resources and spec.resources.cpu else app.resources.cpu),
        memory=(
            spec.resources.memory
            if spec.resources and spec.resources.memory
            else app.resources.memory
        ),
        gpu=(
            spec.resources.gpu
            if spec.resources and spec.resources.gpu is not None
            else app.resources.gpu
        ),
    )
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    if merged.cpu:
        requests["cpu"] = merged.cpu
    if merged.memory:
        requests["memory"] = limits["memory"] = merged.memory
    if merged.gpu:
        requests["nvidia.com/gpu"] = limits["nvidia.com/gpu"] = str(merged.gpu)
    out: dict[str, Any] = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


def s3_env(
    location: S3Location | None, config: OperatorConfig, prefix: str
) -> list[dict[str, Any]]:
    """Endpoint, region, the trusted stores and, for a trusted store's endpoint only, the
    credentials (by secretKeyRef, never read by Ferry; fixed keys accessKey / secretKey).
    Any other endpoint gets no credentials: its requests are anonymous."""
    endpoint = (location.endpoint if location else None) or config.default_s3_endpoint
    region = (location.region if location else None) or config.default_s3_region
    env: list[dict[str, Any]] = [
        {"name": f"{prefix}_ENDPOINT", "value": endpoint},
        {"name": f"{prefix}_REGION", "value": region},
        {"name": ENV_ALLOWED_STORES, "value": ",".join(config.trusted_store_endpoints)},
    ]
    if not config.is_trusted_store(endpoint):
        return env
    secret = location.secret_ref if location else None
    secret_name = secret.name if secret else config.default_s3_secret
    access_key, secret_key = CREDENTIALS_KEYS
    return [
        *env,
        {
            "name": f"{prefix}_ACCESS_KEY",
            "valueFrom": {"secretKeyRef": {"name": secret_name, "key": access_key}},
        },
        {
            "name": f"{prefix}_SECRET_KEY",
            "valueFrom": {"secretKeyRef": {"name": secret_name, "key": secret_key}},
        },
    ]


def tools_container(name: str, args: list[str], config: OperatorConfig) -> dict[str, Any]:
    return {
        "name": name,
        "image": config.tools_image,
        "imagePullPolicy": config.image_pull_policy,
        "command": [*STAGER, *args],
        "securityContext": restricted_container_context(),
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"memory": "512Mi"},
        },
    }


def archive_destination(job: JobMeta, spec: JobSpec, attempt: int, config: OperatorConfig) -> str:
    """s3://bucket/<prefix><namespace>/<job>/<job-uid>/attempt-<n>/"""
    archive = spec.archive
    bucket = archive.s3.bucket if archive and archive.s3 else config.default_s3_bucket
    prefix = (
        (archive.s3.prefix if archive and archive.s3 else None)
        or (archive.prefix if archive else None)
        or ""
    )
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return f"s3://{bucket}/{prefix}{archive_key_prefix(job.namespace, job.name, job.uid, attempt)}"


def archive_pod(
    job: JobMeta,
    app: AppSpec,
    spec: JobSpec,
    attempt: int,
    try_: int,
    manifest_extra: Mapping[str, Any],
    config: OperatorConfig,
) -> Manifest:
    """The pod that uploads an attempt's outputs, log and manifest from its workspace."""
    archive = spec.archive
    include = (archive.include if archive and archive.include else None) or app.outputs.include
    exclude = (archive.exclude if archive and archive.exclude else None) or app.outputs.exclude
    plan = {
        "destination": archive_destination(job, spec, attempt, config),
        "include": list(include),
        "exclude": list(exclude),
        "extra": dict(manifest_extra),
    }
    container = tools_container(ARCHIVE_CONTAINER, ["archive"], config)
    container["env"] = [
        {"name": "FERRY_ARCHIVE", "value": json.dumps(plan, sort_keys=True)},
        *s3_env(archive.s3 if archive else None, config, "FERRY_S3"),
    ]
    container["volumeMounts"] = [
        {"name": WORKSPACE_VOLUME, "mountPath": WORKSPACE_DIR, "readOnly": True}
    ]
    meta = child_metadata(job, archive_pod_name(job.name, attempt, try_), attempt, ROLE_ARCHIVE)
    meta["annotations"] = {**meta.get("annotations", {}), ANNOTATION_ARCHIVE_TRY: str(try_)}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {
            "restartPolicy": "Never",
            # A hung store or a huge upload never holds the Job in Archiving for ever: the
            # kubelet stops the pod (reason DeadlineExceeded), a failed archive try.
            "activeDeadlineSeconds": config.archive_pod_deadline_seconds,
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "securityContext": pod_security_context(),
            "containers": [container],
            "volumes": [
                {
                    "name": WORKSPACE_VOLUME,
                    "persistentVolumeClaim": {
                        "claimName": workspace_name(job.name, attempt),
                        "readOnly": True,
                    },
                }
            ],
        },
    }
