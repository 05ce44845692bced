"""kopf wiring: settings at start-up, watch events into the reconciler. Nothing else.

Owns: the explicit kopf settings (finalizer name, progress and diff-base storage, posting of
handler chatter off, watch timeouts, namespaces), starting the Job and pod informers
(`clients.informer`, outside kopf: kopf's watch hides where a listing begins and ends, so it
cannot tell which objects vanished while its watch had expired) and the reconciler at once or
through leader election (`leader.Elector`, when FERRY_LEASE_NAMESPACE is set), SIGUSR1 as a
request to list again, and kopf's App handler, a line that hands the event to the
`Reconciler`. Must not: decide or talk to the API itself.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import signal
import socket
import uuid
from typing import Any

import kopf

from ferry.api.common import GROUP, VERSION
from ferry.clients.informer import informers
from ferry.clients.kube import KubeClient, credentials, load_config
from ferry.clients.lease import LeaseClient
from ferry.clients.protocol import KubeAPI, LeaseAPI
from ferry.config import OperatorConfig
from ferry.handlers.leader import Elector
from ferry.handlers.metrics import Metrics
from ferry.handlers.reconciler import Reconciler

log = logging.getLogger("ferry.operator")

#: On a clean shutdown, how long the Events still owed may take to be posted.
EVENTS_DRAIN_SECONDS = 5.0


class EventsOnlyDiffBase(kopf.AnnotationsDiffBaseStorage):
    """kopf builds a diff base (a deep copy of the object) on every event, for on.create /
    on.update handlers. Ferry has only on.event handlers, which never read it: an empty
    essence spares the copy (8% of the operator's CPU in the 20 Jobs/s benchmark)."""

    def build(self, *, body: Any, extra_fields: Any = None) -> kopf.BodyEssence:
        return kopf.BodyEssence()


def configure(settings: kopf.OperatorSettings, config: OperatorConfig) -> None:
    """Every kopf setting Ferry relies on, set explicitly."""
    settings.persistence.finalizer = config.finalizer
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = EventsOnlyDiffBase(
        prefix=GROUP, key="last-handled-configuration"
    )
    # kopf's per-handler chatter ("Handler ... succeeded") would be one Event write per
    # handler call; Ferry posts its own Events on state transitions only.
    settings.posting.enabled = False
    settings.watching.server_timeout = config.watch_timeout_seconds
    settings.watching.client_timeout = config.watch_client_timeout_seconds
    settings.watching.connect_timeout = 30
    # The initial listing in pages: unpaged, 10,000 Jobs arrive as one response that is
    # held (parsed, ~15 kB per Job with its managedFields) until the last Job is handed on,
    # and the process keeps that peak as its resident size afterwards.
    settings.watching.chunk_size = config.list_chunk_size
    settings.networking.request_timeout = 60
    # kopf runs one worker task per object that has events, and a worker waits
    # `idle_timeout` for more before it exits. With kopf's 5 s, 10,000 Jobs listed at a
    # start took 10,000 / (worker_limit / 5 s) = 50 s to get through; Ferry's handlers only
    # hand the event over, so a worker may as well leave at once and free its slot.
    settings.queueing.worker_limit = 1000
    settings.queueing.idle_timeout = 0.2
    settings.scanning.disabled = True  # the CRDs are installed with the operator


@kopf.on.login()
def login(settings: kopf.OperatorSettings, **kwargs: Any) -> kopf.ConnectionInfo | None:
    """kopf's watches use the same credentials as Ferry's client: FERRY_KUBECONFIG when set
    (kopf alone would only look at KUBECONFIG and in-cluster), else kopf's usual login."""
    path = os.environ.get("FERRY_KUBECONFIG")
    if not path:
        info: kopf.ConnectionInfo | None = kopf.login_via_client(settings=settings, **kwargs)
        return info
    creds = credentials(load_config(path))
    return kopf.ConnectionInfo(
        server=creds.server,
        ca_path=creds.ca_path,
        insecure=creds.insecure,
        scheme=creds.scheme,
        token=creds.token,
        certificate_path=creds.certificate_path,
        private_key_path=creds.private_key_path,
        trust_env=settings.networking.trust_env,
    )


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    config = OperatorConfig.from_env(os.environ)
    configure(settings, config)
    api = load_config(os.environ.get("FERRY_KUBECONFIG"))
    client = KubeClient(api, config.qps, config.burst)
    # Typed as the protocol the handlers use: mypy checks here that KubeClient satisfies it.
    kube: KubeAPI = client
    metrics = Metrics()
    reconciler = Reconciler(kube, config, metrics=metrics)
    metrics.serve(config.metrics_port)
    memo["reconciler"] = reconciler
    # Jobs and Ferry's pods: listed, then watched from the listing's version; listed again
    # (what vanished dropped as deleted) when the watch expires. A standby runs them too.
    reconciler.watch(
        informers(
            client,
            config.namespaces,
            reconciler.feed,
            chunk_size=config.list_chunk_size,
            stream_lists=config.stream_lists,
            timeout_seconds=config.watch_timeout_seconds,
            client_timeout_seconds=config.watch_client_timeout_seconds,
        )
    )
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, reconciler.relist)
    log.info(
        "Ferry operator started: %d workers, QPS %.0f, namespaces %s",
        config.workers,
        config.qps,
        ",".join(config.namespaces) or "all",
    )
    if not config.lease_namespace:
        log.info("No leader election (FERRY_LEASE_NAMESPACE unset): acting at once")
        await reconciler.start()
        return
    # The watches start when this handler returns: a standby keeps its caches warm, and
    # the elector starts the reconciler's workers once this process holds the Lease.
    lease: LeaseAPI = LeaseClient(
        api, config.lease_namespace, config.lease_name, config.lease_renew_deadline_seconds / 2
    )
    elector = Elector(
        lease,
        config.lease_identity or f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}",
        duration=config.lease_duration_seconds,
        renew_deadline=config.lease_renew_deadline_seconds,
        retry=config.lease_retry_seconds,
        on_start=reconciler.start,
        on_stop=functools.partial(stop_acting, reconciler),
    )
    memo["elector"] = elector
    memo["elector_task"] = asyncio.create_task(elector.run(), name="ferry-leader-election")


async def stop_acting(reconciler: Reconciler) -> None:
    """The Lease is lost: stop the workers at once, then end the process (kopf's clean stop);
    its Deployment starts it again, as a standby."""
    await reconciler.stop()
    os.kill(os.getpid(), signal.SIGTERM)


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    task: asyncio.Task[None] | None = memo.get("elector_task")
    if task is not None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    reconciler: Reconciler | None = memo.get("reconciler")
    if reconciler is not None:
        # Still the leader (the Lease is released below): the Events owed get a moment.
        await reconciler.stop(drain_seconds=EVENTS_DRAIN_SECONDS)
    elector: Elector | None = memo.get("elector")
    if elector is not None:
        await elector.release()


@kopf.on.probe(id="jobWatch")
async def job_watch_probe(memo: kopf.Memo, **_: Any) -> str:
    """Liveness: fails when the Job watch stopped delivering changes (not when idle)."""
    reconciler: Reconciler = memo["reconciler"]
    try:
        stale = await reconciler.stale_watch_keys()
    except Exception as exc:
        # The apiserver did not answer (down, restarting, overloaded): a restart of the
        # operator would not bring it back, and a failing probe would put the operator in
        # CrashLoopBackOff for minutes after the apiserver returns. Alive, and say why.
        log.warning("liveness: the Job watch cannot be checked: %s", exc)
        return f"unchecked: the apiserver did not answer ({type(exc).__name__})"
    if stale:
        raise RuntimeError(
            f"Job watch is stale: {len(stale)} Job(s) changed but not seen, e.g. {stale[0]}"
        )
    return "fresh"


@kopf.on.event(GROUP, VERSION, "apps")
async def app_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    # async on purpose: kopf runs plain functions in a thread pool, and the reconciler's
    # caches and queue belong to the event loop.
    reconciler: Reconciler = memo["reconciler"]
    obj = dict(event["object"])
    reconciler.app_event(event.get("type"), obj)
    if event.get("type") != "DELETED":
        await reconciler.reconcile_app(obj)
