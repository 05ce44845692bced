"""Operator configuration: every setting explicit, with its default and its environment name.

Owns: the settings the operator and its builders need (default object store, tools image,
watched namespaces, client QPS, timeouts, archive retry budget, how long outages are waited
out and the phases' deadlines, the leader-election Lease).
Read from FERRY_* environment variables by `from_env`; everything else takes an
`OperatorConfig` as a value. Must not: do I/O beyond reading the environment mapping it is
given.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ferry.api import names
from ferry.api.endpoints import endpoint_key

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
    allowed_store_endpoints: tuple[str, ...] = Field(
        default=(),
        description="Trusted S3 endpoints besides the default store (comma-separated in "
        "FERRY_ALLOWED_STORE_ENDPOINTS), e.g. http://minio.data.svc:9000. Only trusted stores "
        "receive credentials (a Job's secretRef or the default Secret) and may be at loopback "
        "or link-local addresses; any other endpoint a Job names gets anonymous requests and "
        "the address checks of HTTP inputs. Metadata addresses are refused for every store.",
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
        default=500,
        description="Objects per page of a listing read in pages, and per hand-off to the "
        "caches of a streamed one.",
    )
    stream_lists: bool = Field(
        default=True,
        description="List Jobs and pods as a stream from the apiserver's watch cache (a watch "
        "with sendInitialEvents, Kubernetes 1.32+) when it can; in pages when off or refused.",
    )
    resync_seconds: Annotated[float, Field(gt=0)] = Field(
        default=60.0, description="Every non-terminal Job is reconciled at least this often."
    )
    status_hold_seconds: Annotated[float, Field(ge=0, le=30)] = Field(
        default=2.0,
        description="A status that only records routine progress (Queued, StagingInputs, "
        "Running) is written this long after the first such change at the latest, together "
        "with what the Job has come to by then (status.history keeps every step at its "
        "time); terminal states, failures and anything with an Event are written at once. "
        "0 writes every change at once (docs/benchmarks.md, Performance II).",
    )
    status_hold_busy_seconds: Annotated[float, Field(ge=0, le=60)] = Field(
        default=10.0,
        description="While the client's rate limit holds calls back (a burst: every write "
        "waits its turn), routine progress may wait up to this long instead of "
        "status_hold_seconds, so that the client's rate goes to pods and outcomes.",
    )
    pod_start_grace_seconds: Annotated[float, Field(gt=0)] = Field(
        default=60.0,
        description="A scheduled pod none of whose containers has run after this long is "
        "looked into: its newest Warning Event (a volume that cannot be mounted, ...) blocks "
        "the Job with that reason until the pod starts.",
    )
    retry_backoff_base_seconds: Annotated[float, Field(gt=0)] = Field(
        default=10.0,
        description="Wait before the attempt after the first failed one; each further failure "
        "counted against a retry budget doubles it (the Job controller's 10 s, 20 s, 40 s, ...).",
    )
    retry_backoff_max_seconds: Annotated[float, Field(gt=0)] = Field(
        default=360.0,
        description="The longest wait between a failed attempt and the next one (6 min, as the "
        "Job controller's).",
    )
    parent_grace_seconds: Annotated[float, Field(ge=0)] = Field(
        default=300.0,
        description="How long after a Job is created a parent named in spec.parents may still "
        "not exist (children may be submitted before their parents); past it, a parent that "
        "does not exist, or was deleted before it finished, fails the Job (ParentNotFound).",
    )
    archive_tries: Annotated[int, Field(ge=1, le=20)] = Field(
        default=3,
        description="Archive pods tried per attempt before ArchiveFailed (a store outage is "
        "not counted: it is waited out until outageDeadlineSeconds).",
    )
    outage_deadline_seconds: Annotated[float, Field(gt=0)] = Field(
        default=6 * 3600.0,
        description="How long a store or input server that is down (unreachable, timing out, "
        "answering 5xx) is waited out, from when it was first found down: the Job stays in "
        "its state with reason StoreUnavailable (or InputUnavailable), the workspace kept, and "
        "is tried again with a backoff; past this it fails (ArchiveFailed, StageInFailed).",
    )
    outage_backoff_seconds: Annotated[float, Field(gt=0)] = Field(
        default=10.0,
        description="The first wait before trying an unavailable store or input server again; "
        "it doubles with each try, up to outageBackoffMaxSeconds.",
    )
    outage_backoff_max_seconds: Annotated[float, Field(gt=0)] = Field(
        default=300.0, description="The longest wait between tries of an unavailable store."
    )
    staging_deadline_seconds: Annotated[float, Field(gt=0)] = Field(
        default=3600.0,
        description="How long the inputs of one attempt may take to stage, from when its first "
        "staging container started; past it the Job fails with StageInFailed (a slow or hung "
        "input server).",
    )
    archive_pod_deadline_seconds: Annotated[int, Field(ge=1)] = Field(
        default=3600,
        description="How long one archive pod may run (its activeDeadlineSeconds); one that "
        "runs longer is stopped by the kubelet and counts as a failed archive try.",
    )
    pod_terminating_grace_seconds: Annotated[float, Field(gt=0)] = Field(
        default=300.0,
        description="How long past its deletion's grace period a pod may stay Terminating (its "
        "node lost) before Ferry stops waiting for it and goes on (the next attempt or archive "
        "try, Cancelled), saying so in an Event; Ferry never force-deletes it.",
    )
    finalizer: str = Field(default="ferry.dev/finalizer")
    storage_class_name: str | None = Field(default=None)
    mpi_storage_class_name: str | None = Field(
        default=None,
        description="StorageClass of the workspaces of MPI Jobs (shared by the launcher and "
        "the workers) when the Job names none; storage_class_name when unset.",
    )
    mpi_workspace_access_mode: Literal["ReadWriteOnce", "ReadWriteMany"] = Field(
        default="ReadWriteOnce",
        description="Access mode of the workspaces of MPI Jobs when the Job sets none: "
        "ReadWriteOnce suffices when launcher and workers share one node; across nodes the "
        "class must offer ReadWriteMany.",
    )
    metrics_port: Annotated[int, Field(ge=0, le=65535)] = Field(
        default=8080, description="Port of the Prometheus /metrics endpoint; 0 turns it off."
    )
    health_port: Annotated[int, Field(ge=0, le=65535)] = Field(
        default=8081, description="Port of the /healthz liveness endpoint; 0 turns it off."
    )

    lease_namespace: str = Field(
        default="",
        description="Namespace of the leader-election Lease (the operator's own). Set, the "
        "operator acts only while it holds the Lease, so that several replicas never both act; "
        "empty, it acts at once (one process only).",
    )
    lease_name: str = Field(
        default=names.LEASE_NAME, description="Name of the leader-election Lease."
    )
    lease_identity: str = Field(
        default="",
        description="This process's holder identity in the Lease (the chart gives the pod's "
        "name); empty: the host name and a random suffix.",
    )
    lease_duration_seconds: Annotated[int, Field(ge=2, le=300)] = Field(
        default=15,
        description="How long a standby waits, after the Lease was last renewed, before it "
        "takes over.",
    )
    lease_renew_deadline_seconds: Annotated[float, Field(gt=0)] = Field(
        default=10.0,
        description="A leader that has not renewed the Lease for this long stops acting and "
        "exits; shorter than the Lease duration.",
    )
    lease_retry_seconds: Annotated[float, Field(gt=0)] = Field(
        default=2.0,
        description="How often the Lease is renewed by the leader and tried by a standby; "
        "shorter than the renew deadline.",
    )

    @model_validator(mode="after")
    def _lease_timing(self) -> OperatorConfig:
        if not (
            self.lease_retry_seconds < self.lease_renew_deadline_seconds
            and self.lease_renew_deadline_seconds < self.lease_duration_seconds
        ):
            raise ValueError(
                "lease timing: retry < renew deadline < duration is required (a leader must "
                "stop acting before a standby may take over)"
            )
        return self

    @model_validator(mode="after")
    def _backoff(self) -> OperatorConfig:
        if self.retry_backoff_max_seconds < self.retry_backoff_base_seconds:
            raise ValueError("retry backoff: the maximum must not be below the base")
        return self

    @field_validator("default_s3_endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        endpoint_key(value)
        return value

    @field_validator("allowed_store_endpoints")
    @classmethod
    def _endpoints(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for endpoint in value:
            endpoint_key(endpoint)
        return value

    @property
    def trusted_store_endpoints(self) -> tuple[str, ...]:
        """The default store, then the allow-list."""
        return (self.default_s3_endpoint, *self.allowed_store_endpoints)

    def is_trusted_store(self, endpoint: str) -> bool:
        try:
            key = endpoint_key(endpoint)
        except ValueError:
            return False
        return any(endpoint_key(e) == key for e in self.trusted_store_endpoints)

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
            elif name == "allowed_store_endpoints":
                values[name] = tuple(e.strip() for e in raw.split(",") if e.strip())
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
