"""The Job kind: one execution of an App, and its spec.

Owns: Job spec fields, bounds and admission (CEL) rules, and the Job object itself; the status
and the state vocabulary live in ferry.api.job_status and are re-exported here. Must not:
decide transitions (ferry.decisions does) or do I/O.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, model_validator

from ferry.api.app import Scalar
from ferry.api.common import (
    API_VERSION,
    IDENTIFIER,
    MAX_RUN_SECONDS,
    SHA256_HEX,
    Glob,
    LabelName,
    ObjectName,
    Quantity,
    Resources,
    S3Location,
    WireModel,
    list_map,
)
from ferry.api.job_status import (
    MAX_HISTORY,
    TERMINAL_STATES,
    AppSnapshot,
    ConditionType,
    HistoryEntry,
    JobStatus,
    Outputs,
    RetryCounts,
    RunOutcome,
    State,
)

__all__ = [
    "MAX_HISTORY",
    "MAX_INLINE_BYTES",
    "MAX_JOB_NAME",
    "TERMINAL_STATES",
    "AppRef",
    "AppSnapshot",
    "Archive",
    "ArchiveLocation",
    "ConditionType",
    "ConfigMapSource",
    "HistoryEntry",
    "HttpSource",
    "InputSource",
    "Job",
    "JobInput",
    "JobOutputSource",
    "JobSpec",
    "JobStatus",
    "Outputs",
    "PvcSource",
    "Retry",
    "RetryCounts",
    "RunOutcome",
    "S3Source",
    "State",
    "Workspace",
]

#: Job names end up in pod names "<job>-<attempt>-archive" and in label values.
MAX_JOB_NAME = 52
MAX_INLINE_BYTES = 65536
#: All inline inputs of a Job together, in bytes: they travel in the pod's spec, which must stay
#: well under the apiserver's object size limit.
MAX_INLINE_TOTAL_BYTES = 262144


def _immutable(what: str) -> dict[str, Any]:
    return {
        "x-kubernetes-validations": [
            {"rule": "self == oldSelf", "message": f"{what} is immutable after creation"}
        ]
    }


class AppRef(WireModel):
    """The App to run, in the Job's namespace."""

    name: ObjectName = Field(description="Name of the App (kubectl get fapp) to run.")
    version: Annotated[str, Field(max_length=64)] | None = Field(
        default=None,
        description="When set, the Job runs only an App of this spec.version; any other is "
        "Blocked with AppVersionMismatch until the App has it.",
    )


class S3Source(S3Location):
    """An object (key) or every object under a prefix (prefix) in an S3-compatible store."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.key) != has(self.prefix)",
                    "message": "exactly one of key or prefix must be set",
                }
            ]
        }
    )

    key: Annotated[str, Field(min_length=1, max_length=1024)] | None = Field(
        default=None, description="Key of one object, staged as the input file."
    )
    prefix: Annotated[str, Field(min_length=1, max_length=1024)] | None = Field(
        default=None,
        description="Key prefix, read as a directory: every object under it is staged into "
        "the input directory, keys relative to the prefix.",
    )

    @model_validator(mode="after")
    def _key_or_prefix(self) -> S3Source:
        if (self.key is None) == (self.prefix is None):
            raise ValueError("exactly one of key or prefix must be set")
        return self


class HttpSource(WireModel):
    """A file fetched over HTTP(S); loopback, link-local and metadata addresses are refused."""

    url: Annotated[str, Field(min_length=1, max_length=2048, pattern=r"^https?://[^\s]+$")] = Field(
        description="http:// or https:// address of the file to download."
    )
    sha256: Annotated[str, Field(max_length=64, pattern=SHA256_HEX)] | None = Field(
        default=None, description="Expected SHA-256 (hex); staging fails on a mismatch."
    )


class PvcSource(WireModel):
    """A file or directory in a PersistentVolumeClaim of the Job's namespace, read-only."""

    claim_name: ObjectName = Field(
        description="Name of the PersistentVolumeClaim, in the Job's namespace."
    )
    path: Annotated[str, Field(min_length=1, max_length=1024)] = Field(
        description="File or directory inside the claim, relative to its root, e.g. "
        "models/frame.tcl.",
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!self.startsWith('/') && !self.split('/').exists(p, p == '..')",
                    "message": "path must be relative and must not contain '..'",
                }
            ]
        },
    )


class ConfigMapSource(WireModel):
    """One key of a ConfigMap in the Job's namespace."""

    name: ObjectName = Field(description="Name of the ConfigMap, in the Job's namespace.")
    key: Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")] = Field(
        description="Key of the ConfigMap whose value is the input file's content."
    )


_RELATIVE_PATH_RULE: dict[str, Any] = {
    "rule": "!self.startsWith('/') && !self.split('/').exists(p, p == '..')",
    "message": "path must be relative and must not contain '..'",
}


class JobOutputSource(WireModel):
    """A file (or, with a trailing slash, a directory) archived by a parent Job, relative to
    its last attempt's archive. The Job must list it in spec.parents; Ferry resolves the
    location from the parent's status.outputs when it starts the attempt."""

    job: ObjectName = Field(description="A Job named in spec.parents.")
    path: Annotated[str, Field(min_length=1, max_length=1024)] = Field(
        description="e.g. results/mesh.h5, or results/ for a directory.",
        json_schema_extra={"x-kubernetes-validations": [_RELATIVE_PATH_RULE]},
    )

    @model_validator(mode="after")
    def _relative(self) -> JobOutputSource:
        if self.path.startswith("/") or ".." in self.path.split("/"):
            raise ValueError("path must be relative and must not contain '..'")
        return self


class InputSource(WireModel):
    """Where an input comes from: exactly one of s3, http, pvc, configMap, inline, jobOutput."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "[has(self.s3), has(self.http), has(self.pvc), has(self.configMap),"
                    " has(self.inline), has(self.jobOutput)].filter(x, x).size() == 1",
                    "message": "exactly one of s3, http, pvc, configMap, inline, jobOutput "
                    "must be set",
                },
                {
                    "rule": f"!has(self.inline) || size(bytes(self.inline)) <= {MAX_INLINE_BYTES}",
                    "message": f"inline is at most {MAX_INLINE_BYTES} bytes of UTF-8",
                },
            ]
        }
    )

    s3: S3Source | None = None
    http: HttpSource | None = None
    pvc: PvcSource | None = None
    config_map: ConfigMapSource | None = None
    inline: Annotated[str, Field(max_length=MAX_INLINE_BYTES)] | None = Field(
        default=None, description="The input file's content as text (up to 64 KiB)."
    )
    job_output: JobOutputSource | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> InputSource:
        fields = ("s3", "http", "pvc", "config_map", "inline", "job_output")
        kinds = [k for k in fields if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(
                "exactly one of s3, http, pvc, configMap, inline, jobOutput must be set"
            )
        if self.inline is not None and len(self.inline.encode()) > MAX_INLINE_BYTES:
            raise ValueError(f"inline is at most {MAX_INLINE_BYTES} bytes of UTF-8")
        return self

    @property
    def kind(self) -> str:
        for name, value in (
            ("s3", self.s3),
            ("http", self.http),
            ("pvc", self.pvc),
            ("configMap", self.config_map),
            ("jobOutput", self.job_output),
        ):
            if value is not None:
                return name
        return "inline"


class JobInput(WireModel):
    """An input of the App, bound to a source."""

    name: LabelName = Field(
        description="An input the App declares (its spec.inputs[].name); staged to "
        "/ferry/inputs/NAME."
    )
    source: InputSource


class Retry(WireModel):
    """Retry budgets, counted separately for the app's own failures and the platform's."""

    app_failures: Annotated[int, Field(ge=0, le=20)] = Field(
        default=0, description="Retries after the app exits non-zero."
    )
    infra_failures: Annotated[int, Field(ge=0, le=20)] = Field(
        default=3,
        description="Retries after eviction, node loss, preemption or a deleted pod.",
    )


class ArchiveLocation(S3Location):
    """The store outputs are archived to, and the key prefix inside its bucket."""

    prefix: Annotated[str, Field(max_length=512)] | None = Field(
        default=None, description="Key prefix inside the bucket, e.g. bridge/."
    )


class Archive(WireModel):
    """Where and what to archive after each attempt."""

    enabled: bool = Field(
        default=True,
        description="false: nothing is archived (no logs, no manifest); a Job without inputs "
        "then needs no workspace volume either.",
    )
    s3: ArchiveLocation | None = Field(
        default=None, description="The operator's default store when unset."
    )
    prefix: Annotated[str, Field(max_length=512)] | None = Field(
        default=None, description="Key prefix inside the bucket (s3.prefix takes precedence)."
    )
    include: Annotated[list[Glob], Field(max_length=64)] | None = Field(
        default=None, description="Globs relative to the workdir; the App's outputs when unset."
    )
    exclude: Annotated[list[Glob], Field(max_length=64)] | None = Field(
        default=None,
        description="Globs left out even when included; the App's outputs' exclude when unset.",
    )
    on_failure: bool = Field(default=True, description="Archive logs and outputs on failure too.")


WorkspaceAccessMode = Literal["ReadWriteOnce", "ReadWriteMany", "ReadWriteOncePod"]


class Workspace(WireModel):
    """The per-attempt PersistentVolumeClaim that holds inputs and the working directory."""

    size: Quantity = Field(
        default="1Gi",
        description="Size of each attempt's volume: inputs plus everything the app writes, "
        'e.g. "10Gi".',
    )
    storage_class_name: ObjectName | None = Field(
        default=None,
        description="StorageClass of the volume; the operator's setting when unset (for MPI "
        "Apps FERRY_MPI_STORAGE_CLASS_NAME first), else the cluster's default (an MPI run "
        "across nodes needs a ReadWriteMany class).",
    )
    access_mode: WorkspaceAccessMode | None = Field(
        default=None,
        description="Access mode of the volume. Unset: ReadWriteOnce for Pod Apps; for MPI "
        "Apps the operator's FERRY_MPI_WORKSPACE_ACCESS_MODE (ReadWriteOnce by default, "
        "enough when launcher and workers share one node; ReadWriteMany across nodes).",
    )


#: Spec-level admission rules: optional immutable fields cannot appear or vanish after
#: creation (per-field rules only see changes), and jobOutput inputs name declared parents.
_SPEC_RULES: list[Any] = [
    {
        "rule": f"has(self.{f}) == has(oldSelf.{f})",
        "message": f"{f} cannot be added or removed after creation",
    }
    for f in (
        "resources",
        "archive",
        "workspace",
        "retry",
        "parameters",
        "inputs",
        "parents",
        "queueName",
    )
] + [
    {
        "rule": "!has(self.inputs) || self.inputs.all(i, !has(i.source.jobOutput)"
        " || (has(self.parents) && i.source.jobOutput.job in self.parents))",
        "message": "an input's jobOutput.job must be listed in spec.parents",
    },
    {
        "rule": "!has(self.inputs) || self.inputs.map(i, has(i.source.inline) ? "
        f"size(bytes(i.source.inline)) : 0).sum() <= {MAX_INLINE_TOTAL_BYTES}",
        "message": f"inline inputs are at most {MAX_INLINE_TOTAL_BYTES} bytes of UTF-8 together",
    },
]


class JobSpec(WireModel):
    """What to run: the App, its parameters and inputs, and the policies around the run."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": _SPEC_RULES})

    app_ref: AppRef = Field(json_schema_extra=_immutable("appRef"))
    parameters: Annotated[
        dict[Annotated[str, Field(pattern=IDENTIFIER)], Scalar], Field(max_length=64)
    ] = Field(
        default_factory=dict,
        description="Values of the App's parameters, by name.",
        json_schema_extra=_immutable("parameters"),
    )
    inputs: Annotated[list[JobInput], Field(max_length=32)] = Field(
        default_factory=list,
        description="Where each of the App's inputs comes from, one entry per input name.",
        json_schema_extra={**list_map(), **_immutable("inputs")},
    )
    resources: Resources | None = Field(
        default=None,
        description="Overrides the App's resources.",
        json_schema_extra=_immutable("resources"),
    )
    parents: Annotated[
        list[Annotated[ObjectName, Field(description="Name of a Job in this namespace.")]],
        Field(max_length=32),
    ] = Field(
        default_factory=list,
        description="Jobs in this namespace that must be Finished before this one starts.",
        json_schema_extra={"x-kubernetes-list-type": "set", **_immutable("parents")},
    )
    max_run_seconds: Annotated[int, Field(ge=1, le=MAX_RUN_SECONDS)] | None = Field(
        default=None, description="Time limit of the app's run; may be raised while running."
    )
    retry: Retry | None = Field(default=None, json_schema_extra=_immutable("retry"))
    archive: Archive | None = Field(default=None, json_schema_extra=_immutable("archive"))
    workspace: Workspace | None = Field(default=None, json_schema_extra=_immutable("workspace"))
    suspend: bool = Field(default=False, description="Hold before start; stop and resume later.")
    queue_name: LabelName | None = Field(
        default=None,
        description="The Kueue LocalQueue (in the Job's namespace) the run is queued in: only "
        "the run pod (or the MPIJob) carries the label kueue.x-k8s.io/queue-name; the Job "
        "waits as Queued/AwaitingAdmission until Kueue admits it. Wins over that label on "
        "the Job itself.",
        json_schema_extra=_immutable("queueName"),
    )
    cancel: bool = Field(default=False, description="true ends the Job as Cancelled.")
    ttl_seconds_after_finished: Annotated[int, Field(ge=0, le=MAX_RUN_SECONDS)] | None = Field(
        default=None, description="Delete the Job this long after it reaches a terminal state."
    )

    @model_validator(mode="after")
    def _unique(self) -> JobSpec:
        names = [i.name for i in self.inputs]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"spec.inputs: duplicate name(s) {', '.join(dupes)}")
        if len(set(self.parents)) != len(self.parents):
            raise ValueError("spec.parents: duplicate names")
        inline = sum(len(i.source.inline.encode()) for i in self.inputs if i.source.inline)
        if inline > MAX_INLINE_TOTAL_BYTES:
            raise ValueError(
                f"spec.inputs: inline inputs are {inline} bytes together; at most "
                f"{MAX_INLINE_TOTAL_BYTES} (put larger data in a ConfigMap, a PVC or a store)"
            )
        for i, item in enumerate(self.inputs):
            output = item.source.job_output
            if output is not None and output.job not in self.parents:
                raise ValueError(
                    f"spec.inputs[{i}].source.jobOutput.job: {output.job!r} is not in spec.parents"
                )
        return self

    @property
    def effective_retry(self) -> Retry:
        return self.retry or Retry()

    @property
    def archiving(self) -> bool:
        """Whether attempts are archived (the default)."""
        return self.archive is None or self.archive.enabled

    @property
    def uses_workspace(self) -> bool:
        """Whether attempts need a workspace PVC: data staged in or archived out outlives the
        run pod; otherwise the working directory is an emptyDir of the pod."""
        return bool(self.inputs) or self.archiving


class Job(WireModel):
    """One execution of an App."""

    api_version: str = API_VERSION
    kind: str = "Job"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: JobSpec
    status: JobStatus | None = None
