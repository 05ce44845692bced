"""The fault suite's hands on the local cluster: taking one component down and up again on the
same address, compacting etcd, and a namespace ready for the suite's Jobs.

Owns: `restart_component` (a component of the cluster in `state.pids` stopped by its process
group and started again with the same command line, environment and directory, so that its
address and credentials do not change; its new pid saved in state.json), `compact_etcd`
(etcd compacted to its current revision through its JSON gateway, so that no watch can
resume from before it), `prepare_namespace` (the namespace, its default object store Secret
and the bench App).

Must not: stop anything not recorded in the cluster's state.json, or leave a component down
(every stop here is followed by a start, even when the wait in between is interrupted).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from kubernetes import client as k8s

from ferrydev.bench.workloads import GROUP, VERSION, app_manifest, create_namespace
from ferrydev.cluster import ClusterState
from ferrydev.processes import terminate, wait_until

_STARTED: list[subprocess.Popen[bytes]] = []  # kept, so that they are not reaped as garbage


def _proc_argv(pid: int) -> tuple[list[str], dict[str, str], str]:
    argv = [a.decode() for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if a]
    env: dict[str, str] = {}
    for item in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
        key, sep, value = item.decode(errors="replace").partition("=")
        if sep:
            env[key] = value
    return argv, env, os.readlink(f"/proc/{pid}/cwd")


def restart_component(
    state: ClusterState,
    name: str,
    down_seconds: float = 0.0,
    ready: Callable[[], bool] | None = None,
    while_down: Callable[[], None] | None = None,
) -> float:
    """Stop `name` (e.g. "kube-apiserver", "minio"), keep it down `down_seconds` (running
    `while_down` first, if given), start it again as it was; wait for `ready`. Returns how
    long it was down (s)."""
    pid = state.pids[name]
    argv, env, cwd = _proc_argv(pid)
    t0 = time.monotonic()
    terminate(pid, 5)  # SIGKILL after 5 s: a crash is as good a restart as any
    try:
        if while_down is not None:
            while_down()
        time.sleep(max(0.0, down_seconds - (time.monotonic() - t0)))
    finally:
        with open(Path(state.root) / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=cwd,
                start_new_session=True,
            )
        _STARTED.append(proc)
        state.pids[name] = proc.pid
        state.save()
    down = time.monotonic() - t0
    if ready is not None:
        wait_until(ready, 120, f"{name} ready again")
    return down


def apiserver_ready(api: k8s.ApiClient) -> Callable[[], bool]:
    def ready() -> bool:
        try:
            resp = api.call_api(
                "/readyz",
                "GET",
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=5,
            )[0]
            return int(resp.status) == 200
        except Exception:  # any failure means not ready yet
            return False

    return ready


def _etcd(state: ClusterState, path: str, body: dict[str, object]) -> dict[str, object]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{state.etcd_port}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - http://127.0.0.1
        result: dict[str, object] = json.loads(resp.read())
        return result


def compact_etcd(state: ClusterState) -> int:
    """Compact etcd to its current revision (physically); returns the revision."""
    head = _etcd(state, "/v3/kv/range", {"key": base64.b64encode(b"/").decode(), "limit": 1})
    revision = int(str((head["header"] or {})["revision"]))  # type: ignore[index]
    _etcd(state, "/v3/kv/compaction", {"revision": revision, "physical": True})
    return revision


def prepare_namespace(api: k8s.ApiClient, state: ClusterState, name: str) -> None:
    """The namespace, the default store's Secret (archive pods name it) and the bench App."""
    create_namespace(api, name)
    k8s.CoreV1Api(api).create_namespaced_secret(
        name,
        {
            "metadata": {"name": "ferry-s3"},
            "stringData": {
                "accessKey": state.minio_access_key or "none",
                "secretKey": state.minio_secret_key or "none",
            },
        },
    )
    k8s.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, name, "apps", app_manifest(name)
    )
