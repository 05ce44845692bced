"""Kubernetes API access for the operator: the only module that imports `kubernetes`.

Owns: loading credentials (kubeconfig or in-cluster), a client-side QPS limit shared by every
call, and `KubeClient`, the handful of reads and writes the reconciler needs (the
`clients.protocol.KubeAPI` it is typed against), each mapping "already done" answers
(AlreadyExists on create, NotFoundError on delete) to success. Must not: decide anything.
Calls are blocking; the reconciler runs them in worker threads. A pod's create, a status
write and an Event go through `clients.direct`.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from ferry.api import names
from ferry.api.common import GROUP, VERSION
from ferry.clients.direct import Direct, path

# The errors live beside the protocol (which must not import kubernetes); re-exported here.
from ferry.clients.kueue import KueueCalls
from ferry.clients.mpijobs import MPIJobCalls
from ferry.clients.protocol import ConflictError as ConflictError
from ferry.clients.protocol import NotFoundError as NotFoundError
from ferry.clients.protocol import Ownership
from ferry.clients.protocol import RefusedError as RefusedError

#: Answers to a create that say the apiserver will not make it as it is (not a conflict, not
#: an outage): bad request, forbidden (quota, Pod Security, a webhook), too large, invalid.
REFUSALS = frozenset({400, 403, 413, 422})

Obj = dict[str, Any]

#: Calls served first while calls wait for the rate limit: status writes (a Job's outcome,
#: what `kubectl wait` and the pipelines wait for) go before new pods, reads and Events.
URGENT_CALLS = frozenset({("update", "jobs/status")})


class RateLimiter:
    """A token bucket: at most `qps` calls per second on average, bursts up to `burst`; while
    calls wait, an urgent one takes the next token before any routine one (a Job's outcome is
    not queued behind a burst of new pods)."""

    def __init__(self, qps: float, burst: int) -> None:
        self.qps = qps
        self.burst = float(burst)
        self.tokens = float(burst)
        self.updated = time.monotonic()
        #: When a call last had to wait for a token (monotonic seconds).
        self.throttled_at = -1e9
        #: Urgent calls waiting for a token.
        self.urgent_waiting = 0
        self.ready = threading.Condition(threading.Lock())

    def acquire(self, urgent: bool = False) -> None:
        with self.ready:
            if urgent:
                self.urgent_waiting += 1
            try:
                while True:
                    now = time.monotonic()
                    self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.qps)
                    self.updated = now
                    if self.tokens >= 1 and (urgent or not self.urgent_waiting):
                        self.tokens -= 1
                        return
                    self.throttled_at = now
                    # Until a token is due (a routine call stepping aside for an urgent one
                    # looks again a token later, or when the urgent one has taken it).
                    self.ready.wait((1 - self.tokens if self.tokens < 1 else 1) / self.qps)
            finally:
                if urgent:
                    self.urgent_waiting -= 1
                    self.ready.notify_all()

    def throttled_within(self, seconds: float) -> bool:
        """Whether a call had to wait for a token within the last `seconds`."""
        return time.monotonic() - self.throttled_at <= seconds


@dataclass
class WriteCounter:
    """API calls made, by verb and resource (for the benchmark and the metrics)."""

    counts: dict[str, int]

    def add(self, verb: str, resource: str) -> None:
        key = f"{verb} {resource}"
        self.counts[key] = self.counts.get(key, 0) + 1


def load_config(kubeconfig: str | None = None) -> client.ApiClient:
    """An ApiClient from a kubeconfig file, else the in-cluster service account."""
    configuration = client.Configuration()
    if kubeconfig:
        config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    else:
        try:
            config.load_incluster_config(client_configuration=configuration)
        except config.ConfigException:
            config.load_kube_config(client_configuration=configuration)
    configuration.connection_pool_maxsize = 32
    return client.ApiClient(configuration)


@dataclass(frozen=True)
class Credentials:
    """How an ApiClient reaches the apiserver, for kopf's own watches (its login handler)."""

    server: str
    ca_path: str | None
    insecure: bool
    scheme: str | None
    token: str | None
    certificate_path: str | None
    private_key_path: str | None


def credentials(api: client.ApiClient) -> Credentials:
    """The server, TLS files and bearer token an ApiClient was configured with."""
    conf = api.configuration
    header = conf.get_api_key_with_prefix("BearerToken") or conf.get_api_key_with_prefix(
        "authorization"
    )
    parts = header.split(" ", 1) if header else []
    scheme, token = (
        (None, None) if not parts else (None, parts[0]) if len(parts) == 1 else (parts[0], parts[1])
    )
    return Credentials(
        server=conf.host,
        ca_path=conf.ssl_ca_cert,
        insecure=not conf.verify_ssl,
        scheme=scheme,
        token=token,
        certificate_path=conf.cert_file,
        private_key_path=conf.key_file,
    )


def _discard(resp: Any) -> None:
    """Read and drop a raw response (its connection goes back to the pool)."""
    resp.read()
    resp.release_conn()


def _status(exc: ApiException) -> int:
    return int(exc.status or 0)


def _words(exc: ApiException) -> str:
    """The apiserver's message in an error answer (its Status body), else the reason."""
    try:
        body = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        body = {}
    message = body.get("message") if isinstance(body, dict) else None
    return str(message or exc.reason or f"HTTP {exc.status}")


class KubeClient(MPIJobCalls, KueueCalls):
    """The operator's reads and writes, rate limited and counted."""

    def __init__(self, api: client.ApiClient, qps: float, burst: int) -> None:
        self.api = api
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.ext = client.ApiextensionsV1Api(api)
        self.batch = client.BatchV1Api(api)
        self.direct = Direct(api)
        self.limiter = RateLimiter(qps, burst)
        self.calls = WriteCounter({})

    def busy(self) -> bool:
        """The rate limit held a call back within the last second."""
        return self.limiter.throttled_within(1.0)

    def _call(self, verb: str, resource: str) -> None:
        self.limiter.acquire(urgent=(verb, resource) in URGENT_CALLS)
        self.calls.add(verb, resource)

    # ---------------------------------------------------------------- reads

    def get_job(self, namespace: str, name: str) -> Obj:
        self._call("get", "jobs")
        try:
            obj: Obj = self.custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, "jobs", name
            )
        except ApiException as exc:
            if _status(exc) == 404:
                raise NotFoundError(f"Job {namespace}/{name}") from exc
            raise
        return obj

    def get_app(self, namespace: str, name: str) -> Obj | None:
        """The App, or None when it does not exist."""
        self._call("get", "apps")
        try:
            obj: Obj = self.custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, "apps", name
            )
        except ApiException as exc:
            if _status(exc) == 404:
                return None
            raise
        return obj

    def list_job_pods(self, namespace: str, job: str) -> list[Obj]:
        """The Job's pods, read from the apiserver (never a stale cache)."""
        self._call("list", "pods")
        pods = self.core.list_namespaced_pod(namespace, label_selector=f"{names.LABEL_JOB}={job}")
        return [self.api.sanitize_for_serialization(p) for p in pods.items]

    def pod_warnings(self, namespace: str, name: str, uid: str) -> list[Obj]:
        """The Warning Events about the pod (this uid), as the apiserver gives them (unsorted;
        `observation.pod_warnings` orders them); none when they cannot be read (best effort:
        they only explain a pod slow to start)."""
        selector = f"involvedObject.kind=Pod,involvedObject.name={name},type=Warning"
        self._call("list", "events")
        try:
            found = self.core.list_namespaced_event(namespace, field_selector=selector, limit=100)
        except ApiException:
            return []
        events: list[Obj] = [
            e
            for e in self.api.sanitize_for_serialization(found.items)
            if not uid or (e.get("involvedObject") or {}).get("uid") in (None, uid)
        ]
        return events

    def crd_exists(self, name: str) -> bool:
        self._call("get", "customresourcedefinitions")
        try:
            self.ext.read_custom_resource_definition(name)
        except ApiException as exc:
            if _status(exc) == 404:
                return False
            raise
        return True

    # ---------------------------------------------------------------- writes

    def create(self, manifest: Obj) -> bool:
        """Create a Pod, PVC or MPIJob; False when it already existed."""
        kind = manifest["kind"]
        namespace = manifest["metadata"]["namespace"]
        try:
            # The created object is not read: a pod (the hot path) goes the direct way
            # (clients.direct), the rest with _preload_content=False, which skips building
            # the client's model classes from the response (most of a create's CPU time).
            if kind == "Pod":
                self._call("create", "pods")
                where = path("api", "v1", "namespaces", namespace, "pods")
                self.direct.send("POST", where, manifest, read=False)
                return True
            if kind == "PersistentVolumeClaim":
                self._call("create", "persistentvolumeclaims")
                resp = self.core.create_namespaced_persistent_volume_claim(
                    namespace, manifest, _preload_content=False
                )
            elif kind == "MPIJob":
                resp = self._create_mpijob(namespace, manifest)
            else:
                raise ValueError(f"cannot create {kind}")
            _discard(resp)
        except ApiException as exc:
            if _status(exc) == 409:
                return False
            if _status(exc) in REFUSALS:
                raise RefusedError(_words(exc)) from None
            raise
        return True

    def ownership(self, kind: str, namespace: str, name: str) -> Ownership | None:
        """The object's UID and its controller's (metadata only is read)."""
        try:
            if kind == "MPIJob":
                return self._mpijob_ownership(namespace, name)
            if kind == "Pod":
                self._call("get", "pods")
                obj = self.core.read_namespaced_pod(name, namespace)
            elif kind == "PersistentVolumeClaim":
                self._call("get", "persistentvolumeclaims")
                obj = self.core.read_namespaced_persistent_volume_claim(name, namespace)
            elif kind == "batch/Job":
                self._call("get", "jobs.batch")
                obj = self.batch.read_namespaced_job(name, namespace)
            else:
                raise ValueError(f"cannot read {kind}")
        except ApiException as exc:
            if _status(exc) == 404:
                return None
            raise
        meta = obj.metadata
        controller = next((r.uid for r in meta.owner_references or [] if r.controller), "")
        return Ownership(uid=str(meta.uid or ""), controller_uid=str(controller or ""))

    def delete(self, kind: str, namespace: str, name: str, uid: str) -> bool:
        """Delete the Pod, PVC or MPIJob of this `uid` only; False when it is gone or the
        name now belongs to another object (the precondition failed)."""
        body = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=uid))
        try:
            if kind == "Pod":
                self._call("delete", "pods")
                body.grace_period_seconds = 30
                self.core.delete_namespaced_pod(name, namespace, body=body)
            elif kind == "PersistentVolumeClaim":
                self._call("delete", "persistentvolumeclaims")
                self.core.delete_namespaced_persistent_volume_claim(name, namespace, body=body)
            elif kind == "MPIJob":
                self._delete_mpijob(namespace, name, body)
            else:
                raise ValueError(f"cannot delete {kind}")
        except ApiException as exc:
            if _status(exc) in (404, 409):
                return False
            raise
        return True

    def delete_job(self, namespace: str, name: str, uid: str) -> None:
        self._call("delete", "jobs")
        body = client.V1DeleteOptions(
            propagation_policy="Background", preconditions=client.V1Preconditions(uid=uid)
        )
        try:
            self.custom.delete_namespaced_custom_object(
                GROUP, VERSION, namespace, "jobs", name, body=body
            )
        except ApiException as exc:
            if _status(exc) not in (404, 409):
                raise

    def replace_status(self, kind_plural: str, obj: Obj, status: Obj) -> Obj:
        """Write `status` onto `obj` with its resourceVersion: ConflictError if it moved on."""
        meta = obj["metadata"]
        body = {
            "apiVersion": obj["apiVersion"],
            "kind": obj["kind"],
            "metadata": {
                "name": meta["name"],
                "namespace": meta["namespace"],
                "resourceVersion": meta["resourceVersion"],
            },
            "spec": obj.get("spec", {}),
            "status": status,
        }
        self._call("update", f"{kind_plural}/status")
        ns, name = meta["namespace"], meta["name"]
        where = path("apis", GROUP, VERSION, "namespaces", ns, kind_plural, name, "status")
        try:
            result: Obj = self.direct.send("PUT", where, body)
        except ApiException as exc:
            if _status(exc) == 409:
                raise ConflictError(f"{kind_plural} {meta['namespace']}/{meta['name']}") from exc
            if _status(exc) == 404:
                raise NotFoundError(f"{kind_plural} {meta['namespace']}/{meta['name']}") from exc
            raise
        return result

    def post_event(self, obj: Obj, type_: str, reason: str, message: str, component: str) -> None:
        """A core/v1 Event about `obj` (best effort: a lost Event never fails a reconcile)."""
        meta = obj["metadata"]
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": obj["apiVersion"],
                "kind": obj["kind"],
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta["uid"],
                "resourceVersion": meta.get("resourceVersion"),
            },
            "reason": reason,
            "message": message[:1024],
            "type": type_,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "source": {"component": component},
            "reportingComponent": component,
            "reportingInstance": component,
        }
        self._call("create", "events")
        try:
            where = path("api", "v1", "namespaces", meta["namespace"], "events")
            self.direct.send("POST", where, event, read=False)
        except ApiException:
            return
