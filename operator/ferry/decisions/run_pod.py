"""The run pod template: staging init containers, the launcher, and the app's container.

Owns: the pod an attempt's app runs in — the setup container (workspace layout, launcher), one
staging init container per input (S3, HTTP, PVC, ConfigMap, inline, another Job's outputs),
and the app's container with its rendered command, args and env, mounts and restricted
security context. The Pod runner creates it as is; an MPI launcher is built on it. Must not:
do I/O or read the clock.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ferry.api.app import AppSpec, Scalar
from ferry.api.job import InputSource, JobInput, JobSpec, S3Source
from ferry.api.names import (
    APP_CONTAINER,
    APP_LOG,
    BIN_DIR,
    BIN_VOLUME,
    INPUT_VOLUME_PREFIX,
    LAUNCHER,
    LOGS_DIR,
    RECORDS_DIR,
    ROLE_RUN,
    SETUP_CONTAINER,
    SOURCE_DIR,
    WORKSPACE_DIR,
    WORKSPACE_RECORDS,
    WORKSPACE_VOLUME,
    run_pod_name,
    stage_container_name,
    workspace_name,
)
from ferry.config import OperatorConfig
from ferry.decisions import templating
from ferry.decisions.builders import (
    JobMeta,
    Manifest,
    child_metadata,
    effective_resources,
    pod_security_context,
    queue_labels,
    restricted_container_context,
    s3_env,
    tools_container,
)
from ferry.decisions.parameters import rendered_strings


def stage_container(
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
    container = tools_container(stage_container_name(item.name), ["stage-in"], config)
    env: list[dict[str, Any]] = [
        # UTF-8 as it is (not \u escapes, up to 6 bytes a character): an inline input within
        # its byte limit stays within the kernel's 128 KiB limit of one environment string.
        {
            "name": "FERRY_INPUT",
            "value": json.dumps(item.wire(), sort_keys=True, ensure_ascii=False),
        },
    ]
    mounts: list[dict[str, Any]] = [
        {"name": WORKSPACE_VOLUME, "mountPath": templating.INPUTS_DIR, "subPath": "inputs"},
        {"name": WORKSPACE_VOLUME, "mountPath": RECORDS_DIR, "subPath": WORKSPACE_RECORDS},
    ]
    if source.s3 is not None:
        env += s3_env(source.s3, config, "FERRY_S3")
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
        setup = tools_container(SETUP_CONTAINER, ["setup", "--bin", BIN_DIR], config)
        setup["volumeMounts"] = [
            {"name": WORKSPACE_VOLUME, "mountPath": WORKSPACE_DIR},
            {"name": BIN_VOLUME, "mountPath": BIN_DIR},
        ]
        volumes.append({"name": BIN_VOLUME, "emptyDir": {"sizeLimit": "64Mi"}})
        inits.append(setup)
    resolved = resolved or {}
    inits += [stage_container(i, config, volumes, resolved.get(i.name)) for i in spec.inputs]
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
    meta = child_metadata(job, run_pod_name(job.name, attempt), attempt, ROLE_RUN)
    # Queued through Kueue's pod integration: its webhook gates the pod until admission.
    meta["labels"].update(queue_labels(job))
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "securityContext": pod_security_context(),
            **({"initContainers": inits} if inits else {}),
            "containers": [app_container],
            "volumes": volumes,
        },
    }
