"""Shared building blocks of Ferry's API: the wire model base, bounded types, conditions.

Owns: the camelCase wire convention, the bounds every string and list carries, and the
metav1.Condition shape. Must not: import anything outside pydantic and the standard library.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

GROUP = "ferry.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*$"
ENV_NAME = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"
# A Kubernetes resource quantity, without a sign: "500m", "2", "4Gi", "1.5", "1e3".
QUANTITY = (
    r"^(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE][+-]?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
SHA256_HEX = r"^[a-fA-F0-9]{64}$"
#: An S3 endpoint: http or https, a host (no user info) and an optional port, no path or query.
ENDPOINT = r"^https?://[^\s/@?#]+/?$"

#: A reference to an object in the same namespace (DNS-1123 subdomain).
ObjectName = Annotated[str, Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN)]
#: A name that ends up in a label value or a container name (DNS-1123 label).
LabelName = Annotated[str, Field(min_length=1, max_length=63, pattern=DNS_LABEL)]
Quantity = Annotated[str, Field(max_length=64, pattern=QUANTITY)]
ShortText = Annotated[str, Field(max_length=256)]
LongText = Annotated[str, Field(max_length=4096)]
Glob = Annotated[
    str,
    Field(
        min_length=1,
        max_length=512,
        description="A glob relative to the working directory, e.g. results/** or *.out.",
    ),
]

MAX_RUN_SECONDS = 30 * 24 * 3600
MAX_CONDITION_MESSAGE = 1024


def parse_time(value: Any) -> datetime | None:
    """A timestamp as the apiserver writes it (RFC 3339, `Z` for UTC); None when absent."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def list_map(key: str = "name") -> dict[str, Any]:
    """Schema markers of a list keyed by `key`: entries are unique and merged by key."""
    return {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": [key]}


class WireModel(BaseModel):
    """Base of every API object part: camelCase on the wire, unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        validate_assignment=False,
        frozen=True,
    )

    def wire(self) -> dict[str, Any]:
        """The object as it is written to the apiserver: camelCase, unset fields omitted."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class ConditionStatus(StrEnum):
    """True, False or Unknown."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(WireModel):
    """A metav1.Condition: one observed aspect of an object's state."""

    type: Annotated[str, Field(min_length=1, max_length=316, pattern=r"^[A-Za-z][A-Za-z0-9]*$")] = (
        Field(description="Which aspect this condition is about, e.g. Ready or Stalled.")
    )
    status: ConditionStatus = Field(
        description="True, False, or Unknown (not determined yet, or does not apply yet)."
    )
    observed_generation: Annotated[int, Field(ge=0)] | None = Field(
        default=None,
        description="The metadata.generation (spec version) this condition was decided for.",
    )
    last_transition_time: datetime = Field(
        description="When status last changed (a new reason or message alone keeps it)."
    )
    reason: Annotated[
        str,
        Field(min_length=1, max_length=1024, pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"),
    ] = Field(description="One CamelCase word saying why; docs/api.md lists every reason.")
    message: Annotated[str, Field(max_length=32768)] = Field(
        default="", description="Details for humans."
    )


class SecretKeyRef(WireModel):
    """Names a Secret in the Job's namespace holding S3 credentials.

    The Secret must carry the keys `accessKey` and `secretKey`. Ferry never reads it: the keys
    reach the staging and archive containers through secretKeyRef environment variables, and
    only when the endpoint is a trusted store (the default store or one the operator
    allow-lists); any other endpoint gets anonymous requests. docs/security.md says why.
    """

    name: ObjectName = Field(description="Name of the Secret, in the Job's namespace.")
    access_key_key: Literal["accessKey"] = Field(
        default="accessKey",
        description="Fixed: the key holding the access key ID is always accessKey (any other "
        "value is refused, so that no other key of a Secret can become a request header).",
    )
    secret_key_key: Literal["secretKey"] = Field(
        default="secretKey",
        description="Fixed: the key holding the secret access key is always secretKey.",
    )


class S3Location(WireModel):
    """Where objects live in an S3-compatible store. Endpoint and credentials default to
    the operator's default store."""

    bucket: Annotated[
        str, Field(min_length=3, max_length=63, pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    ] = Field(description="Bucket name, e.g. models (3-63 lowercase letters, digits, . or -).")
    endpoint: Annotated[str, Field(max_length=512, pattern=ENDPOINT)] | None = Field(
        default=None,
        description="S3 endpoint URL, http(s)://host[:port] without user info or path, e.g. "
        "https://s3.example.org:9000. Only the default store and the operator's trusted stores "
        "receive credentials; other endpoints get anonymous requests and may not resolve to "
        "loopback, link-local or metadata addresses.",
    )
    region: Annotated[str, Field(max_length=64)] | None = Field(
        default=None, description="Region of the store, e.g. us-east-1, if the store needs one."
    )
    secret_ref: SecretKeyRef | None = Field(
        default=None, description="Secret with the credentials; the default store's otherwise."
    )


class Resources(WireModel):
    """Compute requests of the app container (also used as its limits)."""

    cpu: Quantity | None = Field(default=None, description='CPU cores, e.g. "2" or "500m".')
    memory: Quantity | None = Field(default=None, description='Memory, e.g. "4Gi".')
    gpu: Annotated[int, Field(ge=0, le=64)] | None = Field(
        default=None, description="Whole GPUs, requested as nvidia.com/gpu."
    )


RuntimeType = Literal["Pod", "MPI"]
