"""An App's pass: whether it is usable (Ready) and why not, recorded on its status.

Owns: reading the App's current status, having `ferry.decisions.apps.app_status` decide the
new one, and writing it when it changed (one write, optimistic locking; a conflict or a gone
App is dropped, since a newer watch event follows). Must not: decide anything itself, or
touch the Jobs that use the App (the reconciler queues them on the App's watch event).
"""

from __future__ import annotations

import logging
from datetime import datetime

from ferry.api.app import AppStatus
from ferry.clients.protocol import ConflictError, KubeAPI, NotFoundError
from ferry.decisions import apps, parse
from ferry.handlers.jobcache import Obj
from ferry.handlers.threads import ApiThreads

log = logging.getLogger("ferry.reconciler")


async def record_app_status(kube: KubeAPI, threads: ApiThreads, obj: Obj, now: datetime) -> None:
    """Record whether the App is usable (Ready) and why not."""
    meta = obj["metadata"]
    view = parse.app_view(obj)
    try:
        current = AppStatus.model_validate(obj.get("status") or {})
    except ValueError:
        current = AppStatus()
    status, changed = apps.app_status(view, current, int(meta.get("generation") or 0), now)
    if not changed:
        return
    try:
        await threads.run(kube.replace_status, "apps", obj, status.wire())
    except (ConflictError, NotFoundError):
        return  # a newer event follows
    log.info(
        "App %s/%s: %s",
        meta["namespace"],
        meta["name"],
        status.conditions[-1].message if status.conditions else "",
    )
