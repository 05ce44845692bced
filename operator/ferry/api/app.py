"""The App kind: a registered, versioned application that Jobs run.

Owns: App spec and status fields, their bounds and admission rules (as CEL in the schema).
Must not: know about Jobs' lifecycle or talk to any server.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import ConfigDict, Field, model_validator

from ferry.api.common import (
    API_VERSION,
    ENV_NAME,
    IDENTIFIER,
    MAX_RUN_SECONDS,
    Condition,
    Glob,
    LabelName,
    LongText,
    Resources,
    RuntimeType,
    ShortText,
    WireModel,
    list_map,
)
from ferry.api.names import MPI_SSH_AUTH_MOUNT_PATH, MPI_WORKER_COMMAND

Scalar = str | int | float | bool
#: One word of an App's command or args; templates such as {{params.X}} are substituted.
Word = Annotated[
    LongText, Field(description="One word; templates such as {{params.X}} are substituted.")
]


class ParameterType(StrEnum):
    """The type a parameter's value must have."""

    STRING = "string"
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"


class Parameter(WireModel):
    """One typed parameter a Job may set; referenced in templates as `{{params.NAME}}`."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.minimum) || !has(self.maximum)"
                    " || self.minimum <= self.maximum",
                    "message": "minimum must not exceed maximum",
                },
                {
                    "rule": "!(has(self.minimum) || has(self.maximum))"
                    " || self.type in ['integer', 'number']",
                    "message": "minimum/maximum apply only to integer and number parameters",
                },
                {
                    "rule": "!has(self.pattern) || self.type == 'string'",
                    "message": "pattern applies only to string parameters",
                },
            ]
        }
    )

    name: Annotated[str, Field(min_length=1, max_length=63, pattern=IDENTIFIER)] = Field(
        description="Identifier used as {{params.NAME}} and as the key in Job.spec.parameters."
    )
    type: ParameterType = Field(
        default=ParameterType.STRING, description="string, integer, number or boolean."
    )
    default: Scalar | None = Field(
        default=None, description="Value used when the Job does not set the parameter."
    )
    required: bool = Field(default=False, description="A Job must set it (or a default exists).")
    enum: (
        Annotated[
            list[Annotated[Scalar, Field(description="An allowed value.")]], Field(max_length=64)
        ]
        | None
    ) = Field(default=None, description="The only values allowed.")
    minimum: float | None = Field(default=None, description="Smallest allowed number.")
    maximum: float | None = Field(default=None, description="Largest allowed number.")
    pattern: Annotated[str, Field(max_length=256)] | None = Field(
        default=None, description="Regular expression a string value must match in full."
    )
    description: ShortText | None = Field(
        default=None, description="What the parameter means, for people submitting Jobs."
    )


class AppInput(WireModel):
    """A named input an App consumes; staged to /ferry/inputs/NAME, `{{inputs.NAME}}`."""

    name: LabelName = Field(description="DNS label; the staged path is /ferry/inputs/NAME.")
    required: bool = Field(default=True, description="A Job must provide it.")
    description: ShortText | None = Field(
        default=None, description="What the input is, e.g. Tcl model file."
    )


class Outputs(WireModel):
    """Which files under the working directory are archived, as globs relative to it."""

    include: Annotated[list[Glob], Field(max_length=64)] = Field(
        default_factory=lambda: ["**"], description='Globs to archive; "**" is everything.'
    )
    exclude: Annotated[list[Glob], Field(max_length=64)] = Field(
        default_factory=list, description="Globs left out even when included."
    )


class EnvVar(WireModel):
    """An environment variable of the app container; the value may hold templates."""

    name: Annotated[str, Field(min_length=1, max_length=253, pattern=ENV_NAME)] = Field(
        description="Variable name, e.g. OMP_NUM_THREADS."
    )
    value: LongText = Field(
        default="", description="Value; templates such as {{params.threads}} are substituted."
    )


class MPIImplementation(StrEnum):
    """The MPI library the image is built with."""

    OPENMPI = "OpenMPI"
    INTEL = "Intel"
    MPICH = "MPICH"


class MPISpec(WireModel):
    """Shape of an MPI run (a Kubeflow MPIJob): a launcher and this many workers."""

    workers: Annotated[int, Field(ge=1, le=1024)] = Field(
        default=1, description="Number of worker pods (the launcher is one more)."
    )
    slots_per_worker: Annotated[int, Field(ge=1, le=256)] = Field(
        default=1, description="MPI processes (ranks) per worker, usually its CPU cores."
    )
    implementation: MPIImplementation = Field(
        default=MPIImplementation.OPENMPI,
        description="MPI library in the image: OpenMPI, Intel or MPICH.",
    )
    worker_command: Annotated[list[Word], Field(min_length=1, max_length=64)] = Field(
        default_factory=lambda: list(MPI_WORKER_COMMAND),
        description="Command of each worker pod (the App's command and args are the "
        "launcher's, e.g. mpirun ...); by default sshd as uid 1000 with the image's "
        "/home/mpiuser/.sshd_config, as in the MPI Operator's images. May hold templates.",
    )
    ssh_auth_mount_path: Annotated[
        str, Field(min_length=2, max_length=256, pattern=r"^/[^\s]*$")
    ] = Field(
        default=MPI_SSH_AUTH_MOUNT_PATH,
        description="Where the MPI Operator mounts the MPIJob's SSH keys in the launcher and "
        "workers: the .ssh directory of the image's uid 1000 user.",
    )


class Runtime(WireModel):
    """How the app runs: a single Pod, or an MPI job through the Kubeflow MPI Operator."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.type == 'MPI' || !has(self.mpi)",
                    "message": "mpi is set only when type is MPI",
                }
            ]
        }
    )

    type: RuntimeType = Field(default="Pod", description="Pod or MPI.")
    mpi: MPISpec | None = None


class AppSpec(WireModel):
    """What to run and how: image, command templates, typed parameters, inputs, outputs."""

    version: Annotated[str, Field(max_length=64)] = Field(
        default="", description="The App's version, recorded in every Job's status.app."
    )
    description: Annotated[str, Field(max_length=2048)] | None = Field(
        default=None, description="What the App does, for people choosing one."
    )
    image: Annotated[str, Field(min_length=1, max_length=512, pattern=r"^\S+$")] = Field(
        description="Container image of the app."
    )
    command: Annotated[list[Word], Field(max_length=64)] | None = Field(
        default=None, description="Entrypoint; the image's own when unset. May hold templates."
    )
    args: Annotated[list[Word], Field(max_length=256)] = Field(
        default_factory=list,
        description="Arguments; templates {{params.X}}, {{inputs.X}}, {{job.name}}, "
        "{{job.namespace}}, {{job.attempt}}, {{workdir}} are substituted.",
    )
    env: Annotated[list[EnvVar], Field(max_length=64)] = Field(
        default_factory=list,
        description="Environment variables of the app container, unique by name.",
        json_schema_extra=list_map(),
    )
    parameters: Annotated[list[Parameter], Field(max_length=64)] = Field(
        default_factory=list,
        description="Typed parameters a Job sets in its spec.parameters, unique by name.",
        json_schema_extra=list_map(),
    )
    inputs: Annotated[list[AppInput], Field(max_length=32)] = Field(
        default_factory=list,
        description="Named input files a Job binds to sources in its spec.inputs.",
        json_schema_extra=list_map(),
    )
    outputs: Outputs = Field(default_factory=Outputs)
    resources: Resources = Field(default_factory=Resources)
    runtime: Runtime = Field(default_factory=Runtime)
    max_run_seconds: Annotated[int, Field(ge=1, le=MAX_RUN_SECONDS)] | None = Field(
        default=None, description="Default time limit of this App's Jobs, in seconds."
    )

    @model_validator(mode="after")
    def _unique_names(self) -> AppSpec:
        for field in ("env", "parameters", "inputs"):
            names = [item.name for item in getattr(self, field)]
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"spec.{field}: duplicate name(s) {', '.join(dupes)}")
        return self


class AppStatus(WireModel):
    """Whether the App is usable by Jobs, and which spec that verdict is about."""

    observed_generation: int | None = Field(
        default=None,
        description="The metadata.generation (spec version) Ferry last judged; while older "
        "than metadata.generation, the conditions describe an earlier spec.",
    )
    spec_hash: Annotated[str, Field(max_length=64)] | None = Field(
        default=None,
        description="Hash of the judged spec; a Job records the one it ran in status.app.",
    )
    conditions: Annotated[list[Condition], Field(max_length=16)] = Field(
        default_factory=list,
        description="Ready (Jobs can use the App), Stalled (the App is invalid: see the "
        "message) and Reconciling (Ferry has not judged the latest spec yet).",
        json_schema_extra=list_map("type"),
    )


class App(WireModel):
    """A registered, versioned application."""

    api_version: str = API_VERSION
    kind: str = "App"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: AppSpec
    status: AppStatus | None = None
