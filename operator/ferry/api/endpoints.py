"""The identity of an S3 endpoint, as the allow-list of trusted stores compares it.

Owns: `endpoint_key` (an endpoint URL → (scheme, host, port), the form the operator's builders
and the stager both compare) and parsing the comma-separated allow-list. Must not: resolve
names or do any other I/O.
"""

from __future__ import annotations

from urllib.parse import urlsplit

EndpointKey = tuple[str, str, int]


def endpoint_key(endpoint: str) -> EndpointKey:
    """`HTTP://MinIO.Example.:9000/` → ("http", "minio.example", 9000); no scheme means https,
    no port the scheme's. ValueError when it is not an http(s)://host[:port] URL without user
    info, path or query."""
    text = endpoint.strip()
    if "://" not in text:
        text = "https://" + text
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError(f"{endpoint!r}: the scheme must be http or https")
    if "@" in parts.netloc:
        raise ValueError(f"{endpoint!r}: user info is not allowed in an endpoint")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"{endpoint!r}: an endpoint has no path or query")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise ValueError(f"{endpoint!r} has no host")
    port = parts.port  # ValueError on a bad port
    return scheme, host, port or (443 if scheme == "https" else 80)


def parse_endpoints(raw: str) -> tuple[str, ...]:
    """A comma-separated list of endpoints, each checked by `endpoint_key`."""
    out = tuple(part.strip() for part in raw.split(",") if part.strip())
    for endpoint in out:
        endpoint_key(endpoint)
    return out
