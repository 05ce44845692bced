"""JSON requests sent straight through an ApiClient's connection pool, for the hottest calls.

Owns: one request of the operator's hot path (a pod's create, a Job's status write, an Event):
its URL under the ApiClient's host, its headers (the client's defaults and user agent, and its
auth settings, read per request so a rotated service-account token is used), its body written
by `pydantic_core.to_json`, sent on the ApiClient's own urllib3 pool (its TLS, client
certificate and proxy), and an answer that is not 2xx raised as the generated client raises it
(`ApiException`), so `kube.KubeClient` handles both alike. Must not: decide anything, or be
used but through `KubeClient`.

Why not the generated client: for these calls it walks the whole body to sanitize it, builds
the request through several layers and parses the answer with the json module; the direct path
does the same request in a fraction of the CPU (docs/benchmarks.md, the stream profile).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.client.rest import RESTResponse
from pydantic_core import from_json, to_json

Obj = dict[str, Any]


def path(*segments: str) -> str:
    """`/a/b/c` from segments, each quoted (names are DNS labels, but never trusted)."""
    return "".join("/" + quote(s, safe="") for s in segments)


class Direct:
    """`send(method, path, body)` on an ApiClient's pool; the answer's JSON or nothing."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self.host = str(api.configuration.host).rstrip("/")

    def headers(self) -> dict[str, str]:
        headers = {
            **self.api.default_headers,
            "Accept": "application/json",
            "Content-Type": "application/json",
        }
        # The token is read per request: the in-cluster one is refreshed by the configuration.
        self.api.update_params_for_auth(headers, [], ["BearerToken"])
        return headers

    def send(self, method: str, where: str, body: Obj, read: bool = True) -> Any:
        """The answer's JSON (None without `read`); ApiException for an answer not 2xx."""
        resp = self.api.rest_client.pool_manager.request(
            method,
            self.host + where,
            body=to_json(body),
            headers=self.headers(),
            preload_content=True,
        )
        if not 200 <= resp.status <= 299:
            raise ApiException(http_resp=RESTResponse(resp))
        return from_json(resp.data) if read else None
