"""Operator configuration: every setting explicit, with its default and its environment name.

Owns: the settings the operator and its builders need (default object store, tools image,
watched namespaces, client QPS, timeouts, archive retry budget). Read from FERRY_* environment
variables by `from_env`; everything else takes an `OperatorConfig` as a value. Must not: do I/O
beyond reading the environment mapping it is given.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

ENV_PREFIX = "FERRY_"


class OperatorConfig(BaseModel):
    """Settings of one operator process. Each field maps to FERRY_<UPPER_SNAKE_NAME>."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    default_s3_endpoint: str = Field(
        default="http://minio.ferry-system.svc:9000",
        description="Endpoint of the default object store, as seen from pods.",
    )
    default_s3_bucket: str = Field(
        default="ferry", description="Bucket used when a Job names none."
    )
    default_s3_region: str = Field(default="us-east-1")
    default_s3_secret: str = Field(
        default="ferry-s3",
        description="Secret (in each Job's namespace) with accessKey/secretKey for the default "
        "store. Ferry never reads it; containers get it by secretKeyRef.",
    )
    tools_image: str = Field(
        default="localhost/ferry/tools:0.1.0",
        description="Image carrying the stager, used by staging and archive containers.",
    )
    image_pull_policy: str = Field(default="IfNotPresent")
    namespaces: tuple[str, ...] = Field(
        default=(), description="Namespaces to watch; empty means the whole cluster."
    )
    qps: Annotated[float, Field(gt=0)] = Field(default=50.0, description="Client-side API QPS.")
    burst: Annotated[int, Field(ge=1)] = Field(
        default=100, description="Client-side API burst above the QPS."
    )
    workers: Annotated[int, Field(ge=1, le=64)] = Field(
        default=8, description="Jobs reconciled concurrently."
    )
    watch_timeout_seconds: Annotated[int, Field(ge=10)] = Field(
        default=300, description="Server-side timeout of each watch request."
    )
    watch_client_timeout_seconds: Annotated[int, Field(ge=10)] = Field(default=330)
    list_chunk_size: Annotated[int, Field(ge=10, le=10_000)] = Field(
        default=500, description="Objects per page of a watch's initial listing."
    )
    resync_seconds: Annotated[float, Field(gt=0)] = Field(
        default=60.0, description="Every non-terminal Job is reconciled at least this often."
    )
    pod_start_grace_seconds: Annotated[float, Field(gt=0)] = Field(
        default=60.0,
        description="A scheduled pod none of whose containers has run after this long is "
        "looked into: its newest Warning Event (a volume that cannot be mounted, ...) blocks "
        "the Job with that reason until the pod starts.",
    )
    archive_tries: Annotated[int, Field(ge=1, le=20)] = Field(
        default=3, description="Archive pods tried per attempt before ArchiveFailed."
    )
    finalizer: str = Field(default="ferry.dev/finalizer")
    storage_class_name: str | None = Field(default=None)
    metrics_port: Annotated[int, Field(ge=0, le=65535)] = Field(
        default=8080, description="Port of the Prometheus /metrics endpoint; 0 turns it off."
    )
    health_port: Annotated[int, Field(ge=0, le=65535)] = Field(
        default=8081, description="Port of the /healthz liveness endpoint; 0 turns it off."
    )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> OperatorConfig:
        """Build the config from FERRY_* variables; unknown FERRY_ variables are errors."""
        values: dict[str, object] = {}
        fields = cls.model_fields
        for key, raw in env.items():
            if not key.startswith(ENV_PREFIX):
                continue
            name = key[len(ENV_PREFIX) :].lower()
            if name not in fields:
                if name in _NOT_SETTINGS:
                    continue
                raise ValueError(f"{key}: not a Ferry setting (known: {', '.join(sorted(fields))})")
            if name == "namespaces":
                values[name] = tuple(n.strip() for n in raw.split(",") if n.strip())
            elif raw == "" and fields[name].default is None:
                values[name] = None
            else:
                values[name] = raw
        return cls.model_validate(values)


#: FERRY_* variables that configure tooling rather than the operator (the S3_* ones are the
#: SDK's and CLI's store, ferry.sdk.settings).
_NOT_SETTINGS = frozenset(
    {
        "cache",
        "kubeconfig",
        "e2e",
        "log_level",
        "s3_endpoint",
        "s3_access_key",
        "s3_secret_key",
        "s3_region",
        "s3_bucket",
        "s3_upload_prefix",
        "s3_input_endpoint",
        "s3_input_secret",
    }
)
