"""Helpers shared by the Job lifecycle integration tests: manifests, waits and the
state-order check applied to every history the tests see."""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from datetime import datetime
from typing import Any

from ferrydev.kubectl import kubectl_binary
from tests.conftest import Kube

API = "ferry.dev/v1alpha1"
TERMINAL = ("Finished", "Failed", "TimedOut", "Cancelled")

#: The order states follow within one attempt; Retrying starts a new attempt.
RANK = {
    "Pending": 0,
    "Blocked": 1,
    "AwaitingParents": 1,
    "Suspended": 1,
    "Queued": 2,
    "StagingInputs": 3,
    "Running": 4,
    "Archiving": 5,
    "Cancelling": 6,
    "Finished": 7,
    "Failed": 7,
    "TimedOut": 7,
    "Cancelled": 7,
}

SIM_IMAGE = "example.org/sim:1"


def app_manifest(name: str = "sim", **spec: Any) -> dict[str, Any]:
    """A small App: one integer parameter, one optional input, a command with templates."""
    body: dict[str, Any] = {
        "version": "1.0.0",
        "image": SIM_IMAGE,
        "command": ["simulate"],
        "args": ["--steps", "{{params.steps}}"],
        "parameters": [{"name": "steps", "type": "integer", "default": 10, "minimum": 1}],
        "inputs": [{"name": "model", "required": False}],
        "resources": {"cpu": "100m", "memory": "64Mi"},
    }
    body.update(spec)
    return {"apiVersion": API, "kind": "App", "metadata": {"name": name}, "spec": body}


def job_manifest(
    name: str,
    app: str = "sim",
    annotations: dict[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {"appRef": {"name": app}}
    body.update(spec)
    meta: dict[str, Any] = {"name": name}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": API, "kind": "Job", "metadata": meta, "spec": body}


def sim(**values: str) -> dict[str, str]:
    """kwok fate annotations: sim(duration="2s", exit_code="3") → sim.ferry.dev/…"""
    return {f"sim.ferry.dev/{k.replace('_', '-')}": v for k, v in values.items()}


def status(job: dict[str, Any]) -> dict[str, Any]:
    st: dict[str, Any] = job.get("status") or {}
    return st


def conditions(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status(job).get("conditions") or []}


def states(job: dict[str, Any]) -> list[str]:
    return [h["state"] for h in status(job).get("history") or []]


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def get_job(kube: Kube, namespace: str, name: str) -> dict[str, Any] | None:
    proc = kube.run("get", "fjob", name, "-n", namespace, "-o", "json", check=False)
    if proc.returncode != 0:
        if "NotFound" in proc.stderr or "not found" in proc.stderr:
            return None
        raise AssertionError(proc.stderr)
    obj: dict[str, Any] = json.loads(proc.stdout)
    return obj


class Watcher:
    """Polls one Job, checks every history it sees against the previous one."""

    def __init__(self, kube: Kube, namespace: str, name: str) -> None:
        self.kube = kube
        self.namespace = namespace
        self.name = name
        self.seen_states: list[str] = []
        self.last: dict[str, Any] | None = None
        self.history: list[dict[str, Any]] = []

    def poll(self) -> dict[str, Any] | None:
        job = get_job(self.kube, self.namespace, self.name)
        if job is None:
            return None
        history = status(job).get("history") or []
        check_extends(self.history, history, self.name)
        self.history = history
        state = status(job).get("state")
        if state and (not self.seen_states or self.seen_states[-1] != state):
            self.seen_states.append(state)
        self.last = job
        return job

    def until(
        self, predicate: Any, timeout: float = 60, what: str = "", interval: float = 0.2
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.poll()
            if job is not None and predicate(job):
                return job
            time.sleep(interval)
        raise AssertionError(
            f"timed out after {timeout}s waiting for {what or predicate} on {self.name}; "
            f"states seen {self.seen_states}; last status: "
            f"{json.dumps(status(self.last or {}), indent=1)[:3000]}"
        )

    def state(self, *wanted: str, timeout: float = 60) -> dict[str, Any]:
        return self.until(lambda j: status(j).get("state") in wanted, timeout, f"state in {wanted}")

    def terminal(self, timeout: float = 90) -> dict[str, Any]:
        return self.state(*TERMINAL, timeout=timeout)

    def app_running(self, timeout: float = 60) -> dict[str, Any]:
        """The Job's run pod once its app container runs. A test that must act while the app
        runs waits for this rather than for state Running: the operator holds routine progress
        (status_hold_seconds), so a short run may end before Running is ever the state."""
        found: dict[str, Any] = self.kube.wait_for(
            lambda: next(
                (p for p in pods(self.kube, self.namespace, self.name, "run") if _runs(p)), None
            ),
            timeout=timeout,
            what=f"the run pod of {self.name} running its app",
        )
        return found


def _runs(pod: dict[str, Any]) -> bool:
    st = pod.get("status") or {}
    return (
        not pod["metadata"].get("deletionTimestamp")
        and st.get("phase") == "Running"
        and any("running" in (c.get("state") or {}) for c in st.get("containerStatuses") or [])
    )


def check_extends(old: list[dict[str, Any]], new: list[dict[str, Any]], name: str) -> None:
    """`new` is `old` plus entries at the end (the oldest may have been dropped): history
    never rewrites or loses what it said, except by bounding."""
    assert len(new) <= 50, f"{name}: history has {len(new)} entries (bound is 50)"
    if not old:
        return
    # Find where `new` starts within `old` (entries dropped from the front).
    for drop in range(len(old) + 1):
        tail = old[drop:]
        if new[: len(tail)] == tail:
            return
    raise AssertionError(f"{name}: history went back or was rewritten:\n{old}\n->\n{new}")


def check_order(history: list[dict[str, Any]], name: str = "") -> None:
    """Within each attempt states never go back; times never decrease; a terminal state, if
    any, is last. Retrying starts a new attempt, and so does Suspended (suspending stops the
    attempt; resuming starts the next one). Blocked may come at any point before Running."""
    rank = -1
    previous: datetime | None = None
    for i, entry in enumerate(history):
        state = entry["state"]
        when = parse_time(entry["time"])
        assert previous is None or when >= previous, f"{name}: time went back at {i}: {history}"
        previous = when
        if state in TERMINAL:
            assert i == len(history) - 1, f"{name}: terminal {state} is not last: {history}"
        if state == "Retrying":
            rank = -1
            continue
        if state == "Suspended":
            rank = RANK[state]
            continue
        if state == "Blocked":
            # Before the app runs, a pod can be blocked (a missing Secret or ConfigMap, a pod
            # that does not start) and go on from where it was once unblocked.
            assert rank < RANK["Running"], f"{name}: Blocked after the app ran: {history}"
            continue
        assert state in RANK, f"{name}: unknown state {state}"
        assert RANK[state] >= rank, f"{name}: {state} after a later state: {states_of(history)}"
        rank = RANK[state]


def states_of(history: list[dict[str, Any]]) -> list[str]:
    return [h["state"] for h in history]


def pods(kube: Kube, namespace: str, job: str, role: str | None = None) -> list[dict[str, Any]]:
    selector = f"ferry.dev/job={job}" + (f",ferry.dev/role={role}" if role else "")
    return kube.list("pods", namespace, "-l", selector)


def pvcs(kube: Kube, namespace: str, job: str) -> list[dict[str, Any]]:
    return kube.list("pvc", namespace, "-l", f"ferry.dev/job={job}")


def events(kube: Kube, namespace: str, name: str) -> list[dict[str, Any]]:
    return kube.list("events", namespace, "--field-selector", f"involvedObject.name={name}")


def events_with(
    kube: Kube, namespace: str, name: str, reason: str, timeout: float = 15
) -> list[dict[str, Any]]:
    """The Events about `name` once one has `reason`: the operator posts a pass's Events after
    the pass (`handlers/tell.py`), so they may follow the status they belong to."""
    found: list[dict[str, Any]] = kube.wait_for(
        lambda: (lambda evs: evs if any(e["reason"] == reason for e in evs) else None)(
            events(kube, namespace, name)
        ),
        timeout=timeout,
        what=f"an Event {reason} about {name}",
    )
    return found


def kubectl_argv(kube: Kube) -> list[str]:
    return [kubectl_binary(), "--kubeconfig", kube.kubeconfig]


def patch(kube: Kube, namespace: str, name: str, spec: dict[str, Any]) -> None:
    kube.run(
        "patch", "fjob", name, "-n", namespace, "--type=merge", "-p", json.dumps({"spec": spec})
    )


def decode_stream(text: str) -> list[dict[str, Any]]:
    """The JSON objects `kubectl get -w -o json` printed one after another."""
    decoder = json.JSONDecoder()
    out: list[dict[str, Any]] = []
    i = 0
    while i < len(text):
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            break
        try:
            obj, i = decoder.raw_decode(text, i)
        except json.JSONDecodeError:
            break  # cut off by the end of the watch
        out.append(obj)
    return out


class Recorder:
    """Every version of some objects a `kubectl get -w` saw, while it runs."""

    def __init__(self, kube: Kube, namespace: str, kind: str, *selector: str) -> None:
        # A file, not a pipe: a full pipe would stall kubectl and lose the latest events.
        self.out = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [*kubectl_argv(kube), "get", kind, "-n", namespace, "-w", "-o", "json", *selector],
            stdout=self.out,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.objects: list[dict[str, Any]] = []

    def stop(self, settle: float = 1.0) -> list[dict[str, Any]]:
        """Stop watching (after `settle` seconds for the last events) and parse what came."""
        if self.proc.poll() is None:
            time.sleep(settle)
            self.proc.terminate()
            self.proc.wait(timeout=30)
            self.out.seek(0)
            self.objects = decode_stream(self.out.read())
            self.out.close()
        return self.objects

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *_: object) -> None:
        if self.proc.poll() is None:
            self.stop()

    def names(self, job: str, role: str) -> list[str]:
        """Names of the Job's pods of `role` seen, each checked to have been created once."""
        uids: dict[str, set[str]] = {}
        for obj in self.objects:
            labels = obj["metadata"].get("labels") or {}
            if labels.get("ferry.dev/job") == job and labels.get("ferry.dev/role") == role:
                uids.setdefault(obj["metadata"]["name"], set()).add(obj["metadata"]["uid"])
        twice = {n: u for n, u in uids.items() if len(u) > 1}
        assert not twice, f"pods created more than once: {twice}"
        return sorted(uids)

    def by_name(self) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for obj in self.objects:
            out.setdefault(obj["metadata"]["name"], []).append(obj)
        return out
