"""Pure builders of the objects Ferry creates for a Job attempt.

Owns: the workspace PVC, the run pod (setup + staging init containers, the app container) and
the archive pod, as plain dictionaries ready to send; deterministic names, owner references,
labels, resources and the `restricted` security context. Must not: do I/O or read the clock.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ferry.api.app import AppSpec, Scalar
from ferry.api.common import API_VERSION, Resources, S3Location
from ferry.api.job import InputSource, JobInput, JobSpec, S3Source
from ferry.api.names import (
    ANNOTATION_ARCHIVE_TRY,
    APP_CONTAINER,
    APP_LOG,
    ARCHIVE_CONTAINER,
    BIN_DIR,
    BIN_VOLUME,
    INPUT_VOLUME_PREFIX,
    LABEL_ATTEMPT,
    LABEL_JOB,
    LABEL_MANAGED_BY,
    LABEL_ROLE,
    LAUNCHER,
    LOGS_DIR,
    MANAGED_BY,
    RESERVED_PREFIXES,
    ROLE_ARCHIVE,
    ROLE_RUN,
    ROLE_WORKSPACE,
    SETUP_CONTAINER,
    SOURCE_DIR,
    WORKSPACE_DIR,
    WORKSPACE_VOLUME,
    archive_key_prefix,
    archive_pod_name,
    run_pod_name,
    stage_container_name,
    workspace_name,
)
from ferry.config import OperatorConfig
from ferry.decisions import templating
from ferry.decisions.parameters import rendered_strings

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


def _user_metadata(values: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in values.items() if not k.startswith(RESERVED_PREFIXES)}


def labels(job: JobMeta, attempt: int, role: str) -> dict[str, str]:
    return {
        LABEL_JOB: job.name,
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


def _metadata(job: JobMeta, name: str, attempt: int, role: str) -> dict[str, Any]:
    """Children carry the Job's own labels and annotations, then Ferry's (which win)."""
    meta: dict[str, Any] = {
        "name": name,
        "namespace": job.namespace,
        "labels": {**_user_metadata(job.labels), **labels(job, attempt, role)},
        "ownerReferences": [owner_reference(job)],
    }
    annotations = _user_metadata(job.annotations)
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


def _pod_security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "runAsGroup": RUN_AS_USER,
        "fsGroup": RUN_AS_USER,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def workspace_pvc(job: JobMeta, spec: JobSpec, attempt: int, config: OperatorConfig) -> Manifest:
    ws = spec.workspace
    pvc_spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": ws.size if ws else "1Gi"}},
    }
    storage_class = (ws.storage_class_name if ws else None) or config.storage_class_name
    if storage_class:
        pvc_spec["storageClassName"] = storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _metadata(job, workspace_name(job.name, attempt), attempt, ROLE_WORKSPACE),
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


def _s3_env(
    location: S3Location | None, config: OperatorConfig, prefix: str
) -> list[dict[str, Any]]:
    """Endpoint, region and credentials (by secretKeyRef, never read by Ferry)."""
    endpoint = (location.endpoint if location else None) or config.default_s3_endpoint
    region = (location.region if location else None) or config.default_s3_region
    secret = location.secret_ref if location else None
    secret_name = secret.name if secret else config.default_s3_secret
    access_key = secret.access_key_key if secret else "accessKey"
    secret_key = secret.secret_key_key if secret else "secretKey"
    return [
        {"name": f"{prefix}_ENDPOINT", "value": endpoint},
        {"name": f"{prefix}_REGION", "value": region},
        {
            "name": f"{prefix}_ACCESS_KEY",
            "valueFrom": {"secretKeyRef": {"name": secret_name, "key": access_key}},
        },
        {
            "name": f"{prefix}_SECRET_KEY",
            "valueFrom": {"secretKeyRef": {"name": secret_name, "key": secret_key}},
        },
    ]


def _tools_container(name: str, args: list[str], config: OperatorConfig) -> dict[str, Any]:
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


def _stage_container(
    item: JobInput,
    config: OperatorConfig,
    volumes: list[dict[str, Any]],
    resolved: S3Source | None = None,
) -> dict[str, Any]:
    if item.source.job_output is not None:
        # Another Job's outputs: staged like any S3 input once resolved to a location.
        if resolved is None:
            raise ValueError(f"input {item.name!r}: jobOutput not resolved")
        item = JobInput(name=item.name, source=InputSource(s3=resolved))
    source = item.source
    container = _tools_container(stage_container_name(item.name), ["stage-in"], config)
    env: list[dict[str, Any]] = [
        {"name": "FERRY_INPUT", "value": json.dumps(item.wire(), sort_keys=True)},
    ]
    mounts: list[dict[str, Any]] = [
        {"name": WORKSPACE_VOLUME, "mountPath": templating.INPUTS_DIR, "subPath": "inputs"},
        {"name": WORKSPACE_VOLUME, "mountPath": LOGS_DIR, "subPath": "logs"},
    ]
    if source.s3 is not None:
        env += _s3_env(source.s3, config, "FERRY_S3")
    elif source.pvc is not None:
        vol = f"{INPUT_VOLUME_PREFIX}{item.name}"
        volumes.append(
            {
                "name": vol,
                "persistentVolumeClaim": {"claimName": source.pvc.claim_name, "readOnly": True},
            }
        )
        mounts.append({"name": vol, "mountPath": f"{SOURCE_DIR}/{item.name}", "readOnly": True})
    elif source.config_map is not None:
        vol = f"{INPUT_VOLUME_PREFIX}{item.name}"
        volumes.append(
            {
                "name": vol,
                "configMap": {
                    "name": source.config_map.name,
                    "items": [{"key": source.config_map.key, "path": "content"}],
                },
            }
        )
        mounts.append({"name": vol, "mountPath": f"{SOURCE_DIR}/{item.name}", "readOnly": True})
    container["env"] = env
    container["volumeMounts"] = mounts
    return container


def template_context(
    job: JobMeta, app: AppSpec, spec: JobSpec, params: Mapping[str, Scalar], attempt: int
) -> templating.Context:
    inputs = {i.name: f"{templating.INPUTS_DIR}/{i.name}" for i in app.inputs}
    return templating.Context(
        params=rendered_strings(app, params),
        inputs=inputs,
        job_name=job.name,
        job_namespace=job.namespace,
        attempt=attempt,
    )


def run_pod(
    job: JobMeta,
    app: AppSpec,
    spec: JobSpec,
    params: Mapping[str, Scalar],
    attempt: int,
    config: OperatorConfig,
    resolved: Mapping[str, S3Source] | None = None,
) -> Manifest:
    """The attempt's run pod. Raises templating.TemplateError on a bad template.

    `resolved` gives the S3 location of each jobOutput input (decisions.inputs)."""
    ctx = template_context(job, app, spec, params, attempt)
    workspace: dict[str, Any] = (
        {"persistentVolumeClaim": {"claimName": workspace_name(job.name, attempt)}}
        if spec.uses_workspace
        else {"emptyDir": {}}
    )
    volumes: list[dict[str, Any]] = [{"name": WORKSPACE_VOLUME, **workspace}]
    # The launcher captures the app's output for the archive; without an archive, or with
    # the image's own entrypoint (which Ferry cannot wrap), the app runs as it is.
    launch = bool(app.command) and spec.archiving
    inits: list[dict[str, Any]] = []
    if launch or spec.inputs:
        setup = _tools_container(SETUP_CONTAINER, ["setup", "--bin", BIN_DIR], config)
        setup["volumeMounts"] = [
            {"name": WORKSPACE_VOLUME, "mountPath": WORKSPACE_DIR},
            {"name": BIN_VOLUME, "mountPath": BIN_DIR},
        ]
        volumes.append({"name": BIN_VOLUME, "emptyDir": {"sizeLimit": "64Mi"}})
        inits.append(setup)
    resolved = resolved or {}
    inits += [_stage_container(i, config, volumes, resolved.get(i.name)) for i in spec.inputs]
    args = [templating.render(a, ctx) for a in app.args]
    app_container: dict[str, Any] = {
        "name": APP_CONTAINER,
        "image": app.image,
        "imagePullPolicy": config.image_pull_policy,
        "workingDir": templating.WORKDIR,
        "env": [{"name": e.name, "value": templating.render(e.value, ctx)} for e in app.env]
        + [
            {"name": "FERRY_JOB", "value": job.name},
            {"name": "FERRY_ATTEMPT", "value": str(attempt)},
            {"name": "FERRY_WORKDIR", "value": templating.WORKDIR},
        ],
        "securityContext": restricted_container_context(),
        "resources": effective_resources(app, spec),
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [
            {"name": WORKSPACE_VOLUME, "mountPath": templating.WORKDIR, "subPath": "work"},
            {
                "name": WORKSPACE_VOLUME,
                "mountPath": templating.INPUTS_DIR,
                "subPath": "inputs",
                "readOnly": True,
            },
            {"name": WORKSPACE_VOLUME, "mountPath": LOGS_DIR, "subPath": "logs"},
        ],
    }
    if inits:
        app_container["volumeMounts"].append(
            {"name": BIN_VOLUME, "mountPath": BIN_DIR, "readOnly": True}
        )
    if app.command:
        command = [templating.render(c, ctx) for c in app.command]
        if launch:
            # The launcher tees stdout/stderr to logs/app.log and passes the exit code through.
            command = [LAUNCHER, "--log", f"{LOGS_DIR}/{APP_LOG}", "--", *command]
        app_container["command"] = command
        app_container["args"] = args
    elif args:
        app_container["args"] = args
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": _metadata(job, run_pod_name(job.name, attempt), attempt, ROLE_RUN),
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "securityContext": _pod_security_context(),
            **({"initContainers": inits} if inits else {}),
            "containers": [app_container],
            "volumes": volumes,
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
    container = _tools_container(ARCHIVE_CONTAINER, ["archive"], config)
    container["env"] = [
        {"name": "FERRY_ARCHIVE", "value": json.dumps(plan, sort_keys=True)},
        *_s3_env(archive.s3 if archive else None, config, "FERRY_S3"),
    ]
    container["volumeMounts"] = [
        {"name": WORKSPACE_VOLUME, "mountPath": WORKSPACE_DIR, "readOnly": True}
    ]
    meta = _metadata(job, archive_pod_name(job.name, attempt, try_), attempt, ROLE_ARCHIVE)
    meta["annotations"] = {**meta.get("annotations", {}), ANNOTATION_ARCHIVE_TRY: str(try_)}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "securityContext": _pod_security_context(),
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
