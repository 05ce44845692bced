"""Kubernetes API access for the user's side (the SDK and the CLI), on the user's kubeconfig.

Owns: loading the user's kubeconfig and context (never in-cluster credentials, never the
operator's), the namespace the context names, raw JSON requests for Ferry's Jobs and Apps,
Events and pod logs (followed as a stream of lines), watches (one JSON event per line), and
mapping every apiserver answer to one of the exceptions below with a one-line message.
Must not: decide anything (filters, waiting, what a state means live in ferry.sdk), retry,
or read Secrets.
"""

from __future__ import annotations

import builtins
import json
import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from ferry.api.common import GROUP, VERSION

Obj = dict[str, Any]


class UserKubeError(Exception):
    """A request failed; the message says what and why, on one line."""


class KubeConfigMissingError(UserKubeError):
    """No usable kubeconfig (or the named context does not exist)."""


class KubeNotFoundError(UserKubeError):
    """The object does not exist."""


class KubeRefusedError(UserKubeError):
    """The apiserver refused the request: forbidden, invalid, conflicting or already there."""


class KubeUnavailableError(UserKubeError):
    """The apiserver could not be reached, or a stream broke."""


class WatchExpiredError(UserKubeError):
    """The watch's resourceVersion is too old (HTTP 410): list again, then watch."""


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _api_message(exc: ApiException) -> str:
    try:
        body = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        body = {}
    message = body.get("message") if isinstance(body, dict) else None
    return _one_line(str(message or exc.reason or f"HTTP {exc.status}"))


def _kubeconfig_path(explicit: str | None) -> str:
    """The kubeconfig file(s) to read: --kubeconfig, else every existing file that KUBECONFIG
    lists (merged, as kubectl does), else ~/.kube/config; KubeConfigMissingError if none."""
    if explicit:
        if not os.path.exists(explicit):
            raise KubeConfigMissingError(f"kubeconfig {explicit} does not exist")
        return explicit
    listed = [p for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    if listed:
        existing = [p for p in listed if os.path.exists(p)]
        if not existing:
            raise KubeConfigMissingError(
                f"kubeconfig {os.pathsep.join(listed)} does not exist (from KUBECONFIG)"
            )
        return os.pathsep.join(existing)
    default = os.path.expanduser("~/.kube/config")
    if not os.path.exists(default):
        raise KubeConfigMissingError(
            "no kubeconfig: set KUBECONFIG or pass --kubeconfig (~/.kube/config does not exist)"
        )
    return default


def _resources(kind: str) -> str:
    return {"Job": "jobs", "App": "apps", "Pod": "pods"}[kind]


class UserKube:
    """The user's view of the cluster: what their kubeconfig lets them read and change."""

    def __init__(self, kubeconfig: str | None = None, context: str | None = None) -> None:
        path = _kubeconfig_path(kubeconfig)
        shown = path
        configuration = client.Configuration()
        try:
            config.load_kube_config(
                config_file=path, context=context, client_configuration=configuration
            )
            contexts, active = config.list_kube_config_contexts(config_file=path)
        except ConfigException as exc:
            raise KubeConfigMissingError(f"kubeconfig {shown}: {_one_line(str(exc))}") from None
        chosen = next((c for c in contexts if c.get("name") == context), None) if context else None
        ctx = (chosen or active or {}).get("context") or {}
        #: The namespace the kubeconfig's context names ("default" when it names none).
        self.namespace: str = str(ctx.get("namespace") or "default")
        self.server: str = configuration.host
        self.api = client.ApiClient(configuration)

    # ---------------------------------------------------------------- transport

    def _request(
        self,
        method: str,
        path: str,
        query: list[tuple[str, Any]] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        stream: bool = False,
        timeout: float | tuple[float, float] | None = 30,
        what: str = "",
    ) -> Any:
        try:
            resp = self.api.call_api(
                path,
                method,
                query_params=query or [],
                header_params={"Accept": "application/json", "Content-Type": content_type},
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=timeout,
            )[0]
        except ApiException as exc:
            raise self._map(exc, what or path) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise KubeUnavailableError(
                f"cannot reach the apiserver at {self.server}: {_one_line(str(exc))[:200]}"
            ) from None
        if stream:
            return resp
        try:
            data = resp.data
        finally:
            resp.release_conn()
        return json.loads(data) if data else None

    @staticmethod
    def _map(exc: ApiException, what: str) -> UserKubeError:
        status = int(exc.status or 0)
        message = _api_message(exc)
        if status == 404:
            return KubeNotFoundError(f"{what} not found")
        if status == 410:
            return WatchExpiredError(message)
        if status in (401, 403):
            return KubeRefusedError(f"{what}: forbidden: {message}")
        if status in (400, 409, 422):
            return KubeRefusedError(message)
        return KubeUnavailableError(f"{what}: the apiserver answered {status}: {message}")

    @staticmethod
    def _path(kind: str, namespace: str | None, name: str = "") -> str:
        base = "/api/v1" if kind == "Pod" else f"/apis/{GROUP}/{VERSION}"
        ns = f"/namespaces/{quote(namespace)}" if namespace else ""
        tail = f"/{quote(name)}" if name else ""
        return f"{base}{ns}/{_resources(kind)}{tail}"

    # ---------------------------------------------------------------- Ferry objects

    def get(self, kind: str, namespace: str, name: str) -> Obj:
        obj: Obj = self._request(
            "GET", self._path(kind, namespace, name), what=f"{kind} {namespace}/{name}"
        )
        return obj

    def list_objects(self, kind: str, namespace: str | None, label_selector: str = "") -> Obj:
        """The list object (items and metadata.resourceVersion); namespace None: all."""
        query = [("labelSelector", label_selector)] if label_selector else []
        obj: Obj = self._request(
            "GET", self._path(kind, namespace), query, what=f"{kind}s in {namespace or 'all'}"
        )
        return obj

    def create(self, kind: str, namespace: str, obj: Obj) -> Obj:
        name = obj.get("metadata", {}).get("name", "")
        created: Obj = self._request(
            "POST", self._path(kind, namespace), body=obj, what=f"{kind} {namespace}/{name}"
        )
        return created

    def merge_patch(self, kind: str, namespace: str, name: str, patch: Obj) -> Obj:
        patched: Obj = self._request(
            "PATCH",
            self._path(kind, namespace, name),
            body=patch,
            content_type="application/merge-patch+json",
            what=f"{kind} {namespace}/{name}",
        )
        return patched

    def watch(
        self,
        kind: str,
        namespace: str | None,
        resource_version: str,
        *,
        name: str = "",
        label_selector: str = "",
        timeout_seconds: int = 300,
    ) -> Iterator[tuple[str, Obj]]:
        """(type, object) for each change after `resource_version` until the server ends the
        watch (at most timeout_seconds). Raises WatchExpiredError when the version is too old."""
        query: list[tuple[str, Any]] = [
            ("watch", "true"),
            ("resourceVersion", resource_version),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", max(1, int(timeout_seconds))),
        ]
        if name:
            query.append(("fieldSelector", f"metadata.name={name}"))
        if label_selector:
            query.append(("labelSelector", label_selector))
        resp = self._request(
            "GET",
            self._path(kind, namespace),
            query,
            stream=True,
            timeout=(10, timeout_seconds + 30),
            what=f"watch of {kind}s",
        )
        try:
            for line in _lines(resp):
                event = json.loads(line)
                kind_ = event.get("type", "")
                obj = event.get("object") or {}
                if kind_ == "ERROR":
                    if obj.get("code") == 410:
                        raise WatchExpiredError(str(obj.get("message", "expired")))
                    raise KubeUnavailableError(f"watch failed: {obj.get('message', obj)}")
                yield kind_, obj
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise KubeUnavailableError(f"watch broke: {_one_line(str(exc))[:200]}") from None
        finally:
            resp.release_conn()

    # ---------------------------------------------------------------- core objects

    def events(self, namespace: str) -> builtins.list[Obj]:
        obj = self._request(
            "GET", f"/api/v1/namespaces/{quote(namespace)}/events", what=f"Events in {namespace}"
        )
        items: builtins.list[Obj] = obj.get("items") or []
        return items

    def pod_exists(self, namespace: str, name: str) -> Obj | None:
        try:
            pod: Obj = self._request(
                "GET", f"/api/v1/namespaces/{quote(namespace)}/pods/{quote(name)}"
            )
        except KubeNotFoundError:
            return None
        return pod

    def pod_log(
        self, namespace: str, pod: str, container: str, *, follow: bool = False
    ) -> Iterator[str]:
        """The container's log line by line (with their newlines); with follow, until the
        container ends."""
        query: list[tuple[str, Any]] = [("container", container)]
        if follow:
            query.append(("follow", "true"))
        resp = self._request(
            "GET",
            f"/api/v1/namespaces/{quote(namespace)}/pods/{quote(pod)}/log",
            query,
            stream=True,
            timeout=None if follow else 60,
            what=f"pod {namespace}/{pod}",
        )
        try:
            for raw in _lines(resp, keep_ends=True):
                yield raw.decode("utf-8", "replace")
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise KubeUnavailableError(f"log stream broke: {_one_line(str(exc))[:200]}") from None
        finally:
            resp.release_conn()


def _lines(resp: Any, keep_ends: bool = False) -> Iterator[bytes]:
    """Lines of a streamed response as they arrive (a last line without newline included)."""
    buffer = b""
    for chunk in resp.stream(amt=None, decode_content=True):
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            yield line + b"\n" if keep_ends else line
    if buffer:
        yield buffer
