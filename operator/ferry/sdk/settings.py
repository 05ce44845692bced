"""Where the SDK's object store is and how to log in: from the user's environment, never
from the operator.

Owns: reading FERRY_S3_* (or the AWS_* equivalents) into StoreSettings, and the error that
names every missing variable. Must not: read files, Secrets or the cluster.

| variable | fallback | meaning |
|---|---|---|
| FERRY_S3_ENDPOINT | AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL | the store as this machine reaches it |
| FERRY_S3_ACCESS_KEY | AWS_ACCESS_KEY_ID | |
| FERRY_S3_SECRET_KEY | AWS_SECRET_ACCESS_KEY | |
| FERRY_S3_REGION | AWS_REGION, AWS_DEFAULT_REGION | optional |
| FERRY_S3_BUCKET | `ferry` | where local inputs are uploaded |
| FERRY_S3_UPLOAD_PREFIX | `uploads/` | key prefix of uploaded inputs |
| FERRY_S3_INPUT_ENDPOINT | (none) | the store as pods reach it, when not the operator's default |
| FERRY_S3_INPUT_SECRET | (none) | Secret with the pods' credentials for that store |
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ferry.sdk.errors import ConfigError

_SOURCES: dict[str, tuple[str, ...]] = {
    "endpoint": ("FERRY_S3_ENDPOINT", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
    "access_key": ("FERRY_S3_ACCESS_KEY", "AWS_ACCESS_KEY_ID"),
    "secret_key": ("FERRY_S3_SECRET_KEY", "AWS_SECRET_ACCESS_KEY"),
}


@dataclass(frozen=True)
class StoreSettings:
    endpoint: str
    access_key: str
    secret_key: str
    region: str | None = None
    bucket: str = "ferry"
    upload_prefix: str = "uploads/"
    input_endpoint: str | None = None
    input_secret: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> StoreSettings:
        found: dict[str, str] = {}
        missing: list[str] = []
        for field, names in _SOURCES.items():
            value = next((env[n] for n in names if env.get(n)), None)
            if value is None:
                missing.append(" or ".join(names[:2]))
            else:
                found[field] = value
        if missing:
            raise ConfigError(
                "no object store configured for the client: set " + ", ".join(missing)
            )
        prefix = env.get("FERRY_S3_UPLOAD_PREFIX", "uploads/")
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        return cls(
            endpoint=found["endpoint"],
            access_key=found["access_key"],
            secret_key=found["secret_key"],
            region=env.get("FERRY_S3_REGION") or env.get("AWS_REGION")
            or env.get("AWS_DEFAULT_REGION") or None,
            bucket=env.get("FERRY_S3_BUCKET") or "ferry",
            upload_prefix=prefix,
            input_endpoint=env.get("FERRY_S3_INPUT_ENDPOINT") or None,
            input_secret=env.get("FERRY_S3_INPUT_SECRET") or None,
        )  # fmt: skip
