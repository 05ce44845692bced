"""List-then-watch of one resource, informer-style: the operator's Job and pod feeds.

Owns: `Informer`, one thread per (resource, namespace) that lists the objects in pages (one
consistent snapshot at the list's resourceVersion), then watches from that resourceVersion with
bookmarks, resuming from the last version seen after a disconnect. When the watch says the
version has expired (410 Gone, or any ERROR event) or `relist()` asks, it lists again and ends
the listing with a `Relisted` marker naming every object listed, so that the consumer can drop
what vanished in the gap (tombstones). Everything is handed to `deliver` in the order the
apiserver sent it, from this thread. Must not: decide anything, or keep the objects (the
handlers' caches do).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from ferry.api import names
from ferry.api.common import GROUP, VERSION
from ferry.clients.kube import KubeClient
from ferry.clients.protocol import Deliver, Relisted, WatchEvent

log = logging.getLogger("ferry.informer")

#: How long to wait before trying again after a failed list or watch: doubling up to the max.
BACKOFF_FIRST_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 5.0
#: What each resource is listed and watched with.
RESOURCES = ("pods", "jobs")


class ExpiredError(Exception):
    """The watch's resourceVersion is gone (410), or the watch reported an error: list again."""


class Informer:
    """List, then watch from the list's resourceVersion; list again when it expires."""

    def __init__(
        self,
        kube: KubeClient,
        resource: str,
        namespace: str | None,
        deliver: Deliver,
        *,
        chunk_size: int = 500,
        timeout_seconds: int = 300,
        client_timeout_seconds: int = 330,
    ) -> None:
        if resource not in RESOURCES:
            raise ValueError(f"no informer for {resource}")
        self.kube = kube
        self.resource = resource
        self.namespace = namespace
        self.deliver = deliver
        self.chunk_size = chunk_size
        self.timeout_seconds = timeout_seconds
        self.client_timeout_seconds = client_timeout_seconds
        self._stopped = threading.Event()
        self._relist = threading.Event()
        self._response: Any = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------- control

    def start(self) -> None:
        where = self.namespace or "all"
        self._thread = threading.Thread(
            target=self._run, name=f"ferry-informer-{self.resource}-{where}", daemon=True
        )
        self._thread.start()

    def relist(self) -> None:
        """List again now (as after an expired watch), with tombstones for what vanished."""
        self._relist.set()
        self._close()

    def stop(self) -> None:
        self._stopped.set()
        self._close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _close(self) -> None:
        with self._lock:
            resp = self._response
        if resp is not None:
            try:
                resp.shutdown()
            except Exception:  # best effort: the thread notices the end anyway
                log.debug("closing the %s watch failed", self.resource, exc_info=True)

    # ---------------------------------------------------------------- the loop

    def _run(self) -> None:
        rv: str | None = None
        cause = "start"
        backoff = BACKOFF_FIRST_SECONDS
        while not self._stopped.is_set():
            try:
                if rv is None or self._relist.is_set():
                    if self._relist.is_set():
                        cause = "asked"
                    self._relist.clear()
                    rv = self._list(cause)
                    cause = "expired"
                rv = self._watch(rv)
                backoff = BACKOFF_FIRST_SECONDS
            except ExpiredError as exc:
                log.info("%s watch expired (%s): listing again", self.resource, exc)
                rv = None
            except Exception as exc:  # an outage: wait, then resume
                if self._stopped.is_set():
                    return
                if isinstance(exc, ApiException) and exc.status == 410:
                    rv = None  # a list's continue token expired
                    continue
                log.warning(
                    "%s watch failed (%s: %s); again in %.1fs",
                    self.resource,
                    type(exc).__name__,
                    str(exc).splitlines()[0] if str(exc) else "",
                    backoff,
                )
                self._stopped.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_SECONDS)

    def _list(self, cause: str) -> str:
        """Every object, page by page, handed on as they come; then the `Relisted` marker.
        Returns the list's resourceVersion (all pages are one snapshot at it)."""
        token: str | None = None
        listed: set[tuple[str, str]] = set()
        rv = ""
        while True:
            self.kube.limiter.acquire()
            self.kube.calls.add("list", self.resource)
            kwargs: dict[str, Any] = {"limit": self.chunk_size}
            if token:
                kwargs["_continue"] = token
            page = self._read(self._call(**kwargs))
            meta = page.get("metadata") or {}
            rv = rv or str(meta.get("resourceVersion", ""))
            items: list[dict[str, Any]] = page.get("items") or []
            events = []
            for obj in items:
                # Items of a list carry no kind; the consumers read it from the events.
                m = obj.get("metadata") or {}
                listed.add((m.get("namespace", ""), m.get("name", "")))
                events.append(WatchEvent(None, obj))
            del page, items
            if events:
                self.deliver(events)
            token = meta.get("continue")
            if not token:
                break
        self.deliver([Relisted(int(rv or 0), frozenset(listed), self.namespace, cause)])
        return rv

    def _watch(self, rv: str) -> str:
        """Watch from `rv` until the server ends the watch: the last version seen. Raises
        `ExpiredError` when the version is gone."""
        self.kube.calls.add("watch", self.resource)
        resp = self._call(
            watch=True,
            resource_version=rv,
            allow_watch_bookmarks=True,
            timeout_seconds=self.timeout_seconds,
        )
        with self._lock:
            self._response = resp
        try:
            if self._relist.is_set() or self._stopped.is_set():
                return rv
            # The events that arrived together are handed on together, in order.
            for lines in _batches(resp):
                events: list[WatchEvent | Relisted] = []
                for line in lines:
                    event = json.loads(line)
                    kind = event.get("type")
                    obj = event.get("object") or {}
                    if kind == "ERROR":
                        if events:
                            self.deliver(events)
                        raise ExpiredError(
                            f"{obj.get('code')} {obj.get('reason')}: {obj.get('message')}"
                        )
                    version = (obj.get("metadata") or {}).get("resourceVersion")
                    if version:
                        rv = str(version)
                    if kind in ("ADDED", "MODIFIED", "DELETED"):
                        events.append(WatchEvent(kind, obj))
                if events:
                    self.deliver(events)
        except ApiException as exc:
            if exc.status == 410:
                raise ExpiredError(f"410 {exc.reason}") from None
            raise
        except Exception:
            if self._relist.is_set() or self._stopped.is_set():
                return rv  # closed on purpose
            raise
        finally:
            with self._lock:
                self._response = None
            resp.release_conn()
        return rv

    def _call(self, **kwargs: Any) -> Any:
        """The list or watch request, its raw response (never the client's model classes)."""
        kwargs.update(
            _preload_content=False,
            _request_timeout=(30, self.client_timeout_seconds),
        )
        if self.resource == "pods":
            kwargs["label_selector"] = f"{names.LABEL_MANAGED_BY}={names.MANAGED_BY}"
            core = client.CoreV1Api(self.kube.api)
            if self.namespace is None:
                return core.list_pod_for_all_namespaces(**kwargs)
            return core.list_namespaced_pod(self.namespace, **kwargs)
        custom = client.CustomObjectsApi(self.kube.api)
        if self.namespace is None:
            return custom.list_cluster_custom_object(GROUP, VERSION, "jobs", **kwargs)
        return custom.list_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "jobs", **kwargs
        )

    @staticmethod
    def _read(resp: Any) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(resp.data)
        finally:
            resp.release_conn()
        return data


def _batches(resp: Any) -> Iterator[list[str]]:
    """The response's complete lines as they arrive, those of one read together (a watch
    sends one JSON event per line)."""
    buffer = b""
    for segment in resp.stream(amt=None, decode_content=False):
        buffer += segment
        *lines, buffer = buffer.split(b"\n")
        complete = [line.decode("utf-8", errors="replace") for line in lines if line.strip()]
        if complete:
            yield complete


def informers(
    kube: KubeClient,
    namespaces: tuple[str, ...],
    deliver: Callable[[str], Deliver],
    **settings: Any,
) -> list[Informer]:
    """One informer per resource and watched namespace (one cluster-wide when none are
    given), each handing its items to `deliver(resource)`."""
    return [
        Informer(kube, resource, ns, deliver(resource), **settings)
        for resource in RESOURCES
        for ns in (namespaces or (None,))
    ]
