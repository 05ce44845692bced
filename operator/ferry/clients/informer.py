"""List-then-watch of one resource, informer-style: the operator's Job and pod feeds.

Owns: `Informer`, one thread per (resource, namespace) that lists the objects (one consistent
snapshot at the list's resourceVersion), then watches from that resourceVersion with
bookmarks, resuming from the last version seen after a disconnect. A listing is streamed when
the apiserver can (a watch with `sendInitialEvents`, Kubernetes 1.32+ by default: the objects
come from its watch cache one by one, ended by a bookmark at the listing's version, and the
same request goes on as the watch), else read in pages from etcd (`limit`/`continue`); an
apiserver that refuses the streamed form is asked in pages from then on. When the watch says
the version has expired (410 Gone, or any ERROR event) or `relist()` asks, it lists again and
ends the listing with a `Relisted` marker naming every object listed, so that the consumer
can drop what vanished in the gap (tombstones). Listed objects are handed on without a kind
(as items of a list), everything in the order the apiserver sent it, to `deliver`, from this
thread: a listing's objects `chunk_size` at a time, changes as they arrive. Must not: decide
anything, or keep the objects (the handlers' caches do).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pydantic_core
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
#: The annotation of the bookmark that ends a streamed listing's objects.
INITIAL_EVENTS_END = "k8s.io/initial-events-end"
#: Answers that mean the apiserver does not stream listings (sendInitialEvents unknown,
#: disabled, or refused): list in pages instead.
NO_STREAMING = frozenset({400, 403, 405, 422, 501})
#: Streamed listings in a row whose watch ended before their end bookmark after which
#: listings are read in pages.
UNFINISHED_LIMIT = 2


class ExpiredError(Exception):
    """The watch's resourceVersion is gone (410), or the watch reported an error: list again."""


class _Closed(Exception):  # noqa: N818 - internal signal, never leaves the informer
    """The watch was closed on purpose (relist or stop) before it began."""


class UnfinishedListingError(Exception):
    """A streamed listing ended before its last object: list again. `ended`: the server ended
    it (not a close of this process's)."""

    def __init__(self, message: str, *, ended: bool = False) -> None:
        super().__init__(message)
        self.ended = ended


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
        stream_lists: bool = True,
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
        #: Whether listings are streamed (cleared when the apiserver refuses it).
        self.stream_lists = stream_lists
        self._unfinished = 0  # streamed listings in a row that ended before their end
        self._cause = "start"  # why the next listing is made ("start", "expired", "asked")
        self._listed_rv: str | None = None  # the version the last streamed listing ended at
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
        self._cause = "start"
        backoff = BACKOFF_FIRST_SECONDS
        while not self._stopped.is_set():
            try:
                if rv is None or self._relist.is_set():
                    if self._relist.is_set():
                        self._cause = "asked"
                    self._relist.clear()
                    if self.stream_lists:
                        self._listed_rv = None
                        rv = self._watch(None)
                        backoff = BACKOFF_FIRST_SECONDS
                        continue
                    rv = self._list(self._cause)
                    self._cause = "expired"
                rv = self._watch(rv)
                backoff = BACKOFF_FIRST_SECONDS
            except ExpiredError as exc:
                log.info("%s watch expired (%s): listing again", self.resource, exc)
                rv = None
            except UnfinishedListingError as exc:
                if self._stopped.is_set():
                    return
                rv = None
                self._unfinished += exc.ended
                if self._unfinished >= UNFINISHED_LIMIT:
                    # Its objects came and never their end: an apiserver that ignores
                    # sendInitialEvents (a plain watch). Pages from now on.
                    self.stream_lists = False
                log.info("%s listing unfinished (%s): listing again", self.resource, exc)
            except Exception as exc:  # an outage: wait, then resume
                if self._stopped.is_set():
                    return
                if rv is None and self._listed_rv is not None:
                    rv = self._listed_rv  # a streamed listing was over: watch on from it
                if isinstance(exc, ApiException) and exc.status == 410:
                    rv = None  # a list's continue token expired
                    continue
                if (
                    isinstance(exc, ApiException)
                    and rv is None
                    and self.stream_lists
                    and exc.status in NO_STREAMING
                ):
                    log.info(
                        "%s: the apiserver does not stream listings (%s %s): listing in pages",
                        self.resource,
                        exc.status,
                        exc.reason,
                    )
                    self.stream_lists = False
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
            query: dict[str, Any] = {"limit": self.chunk_size}
            if token:
                query["continue"] = token
            page = self._read(self._call(query))
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

    def _watch(self, rv: str | None) -> str:
        """Watch until the server ends the watch: the last version seen. From `rv`; or, with
        None, a streamed listing first: its first events are every object (handed on as
        listed, without a kind), then the bookmark at the listing's version (the `Relisted`
        marker), then changes as any watch. Raises `ExpiredError` when the version is gone,
        `UnfinishedListingError` when a streamed listing ends before its bookmark."""
        query: dict[str, Any] = {
            "watch": "true",
            "allowWatchBookmarks": "true",
            "timeoutSeconds": self.timeout_seconds,
        }
        if rv is None:
            self.kube.limiter.acquire()
            query.update(sendInitialEvents="true", resourceVersionMatch="NotOlderThan")
        else:
            query["resourceVersion"] = rv
        self.kube.calls.add("watch", self.resource)
        resp = self._call(query)
        listed: set[tuple[str, str]] | None = set() if rv is None else None
        last = rv or ""
        with self._lock:
            self._response = resp
        try:
            if self._relist.is_set() or self._stopped.is_set():
                raise _Closed
            # The events that arrived together are handed on together, in order; a streamed
            # listing's objects (which arrive one per read) in batches of `chunk_size`, as
            # pages would bring them: nothing acts on them before the listing ends.
            events: list[WatchEvent | Relisted] = []
            for lines in _batches(resp):
                for line in lines:
                    event = _decode(line)
                    kind = event.get("type")
                    obj = event.get("object") or {}
                    meta = obj.get("metadata") or {}
                    if kind == "ERROR":
                        if events:
                            self.deliver(events)
                        raise ExpiredError(
                            f"{obj.get('code')} {obj.get('reason')}: {obj.get('message')}"
                        )
                    if listed is not None:
                        if kind == "ADDED":
                            listed.add((meta.get("namespace", ""), meta.get("name", "")))
                            events.append(WatchEvent(None, obj))
                        elif kind == "BOOKMARK" and (
                            (meta.get("annotations") or {}).get(INITIAL_EVENTS_END) == "true"
                        ):
                            last = str(meta.get("resourceVersion", ""))
                            events.append(
                                Relisted(
                                    int(last or 0), frozenset(listed), self.namespace, self._cause
                                )
                            )
                            listed = None
                            self._listed_rv = last
                            self._cause = "expired"
                            self._unfinished = 0
                        continue
                    version = meta.get("resourceVersion")
                    if version:
                        last = str(version)
                    if kind in ("ADDED", "MODIFIED", "DELETED"):
                        events.append(WatchEvent(kind, obj))
                if events and (listed is None or len(events) >= self.chunk_size):
                    self.deliver(events)
                    events = []
        except ApiException as exc:
            if exc.status == 410:
                raise ExpiredError(f"410 {exc.reason}") from None
            raise
        except (ExpiredError, UnfinishedListingError):
            raise
        except Exception:
            if not (self._relist.is_set() or self._stopped.is_set()):
                raise
            # Closed on purpose: a listing cut short is listed again.
            if listed is not None:
                raise UnfinishedListingError("closed") from None
            return last
        finally:
            with self._lock:
                self._response = None
            resp.release_conn()
        if listed is not None:
            raise UnfinishedListingError(f"{len(listed)} objects, no end bookmark", ended=True)
        return last

    def _call(self, query: dict[str, Any]) -> Any:
        """The list or watch request (query parameters as the API spells them), its raw
        response (never the client's model classes)."""
        if self.resource == "pods":
            query["labelSelector"] = f"{names.LABEL_MANAGED_BY}={names.MANAGED_BY}"
            base = "/api/v1"
        else:
            base = f"/apis/{GROUP}/{VERSION}"
        where = f"/namespaces/{self.namespace}" if self.namespace else ""
        return self.kube.api.call_api(
            f"{base}{where}/{self.resource}",
            "GET",
            query_params=list(query.items()),
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
            _preload_content=False,
            _request_timeout=(30, self.client_timeout_seconds),
        )[0]

    @staticmethod
    def _read(resp: Any) -> dict[str, Any]:
        try:
            data: dict[str, Any] = _decode(resp.data)
        finally:
            resp.release_conn()
        return data


def _batches(resp: Any) -> Iterator[list[bytes]]:
    """The response's complete lines as they arrive, those of one read together (a watch
    sends one JSON event per line)."""
    buffer = b""
    for segment in resp.stream(amt=None, decode_content=False):
        buffer += segment
        *lines, buffer = buffer.split(b"\n")
        complete = [line for line in lines if line.strip()]
        if complete:
            yield complete


def _decode(data: bytes) -> Any:
    """One JSON document: parsed by pydantic's parser (two thirds of the json module's CPU
    per Job, 36 against 55 µs); text that is not valid UTF-8 by the json module, with the bad
    bytes replaced."""
    try:
        return pydantic_core.from_json(data)
    except ValueError:
        return json.loads(data.decode("utf-8", errors="replace"))


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
