"""Fifty Jobs in flight while the operator is killed with SIGKILL and restarted, again and
again: every Job still reaches its correct terminal state, no attempt ever gets a second run
pod, and no Job's history goes backwards."""

from __future__ import annotations

import collections
import os
import random
import time
from typing import Any

import pytest

from tests.conftest import Kube, OperatorProcess
from tests.integration.lifecycle_support import (
    TERMINAL,
    Recorder,
    app_manifest,
    check_extends,
    check_order,
    job_manifest,
    parse_time,
    sim,
    states_of,
    status,
)

pytestmark = pytest.mark.integration


class Case:
    def __init__(
        self,
        name: str,
        kind: str,
        annotations: dict[str, str],
        spec: dict[str, Any],
        state: str,
        reason: str,
        attempts: int,
    ) -> None:
        self.name = name
        self.kind = kind
        self.annotations = annotations
        self.spec = spec
        self.state = state
        self.reason = reason
        self.attempts = attempts


def _cases(rng: random.Random) -> list[Case]:
    cases = []
    for i in range(32):
        duration = f"{rng.randint(2, 6)}s"
        cases.append(Case(f"ok-{i}", "ok", sim(duration=duration), {}, "Finished", "Succeeded", 1))
    for i in range(8):
        cases.append(
            Case(
                f"exit-{i}",
                "exit",
                sim(duration=f"{rng.randint(1, 3)}s", exit_code="3"),
                {},
                "Failed",
                "AppFailed",
                1,
            )
        )
    for i in range(6):
        cases.append(
            Case(
                f"evict-{i}",
                "evict",
                sim(duration=f"{rng.randint(1, 2)}s", evict="true"),
                {"retry": {"appFailures": 0, "infraFailures": 2}},
                "Failed",
                "InfraFailed",
                3,
            )
        )
    for i in range(4):
        cases.append(
            Case(
                f"slow-{i}",
                "timeout",
                sim(duration="60s"),
                {"maxRunSeconds": rng.randint(2, 4)},
                "TimedOut",
                "MaxRunSecondsExceeded",
                1,
            )
        )
    rng.shuffle(cases)
    return cases


def _wait_started(kube: Kube, operator: OperatorProcess) -> None:
    log = operator.log_dir / f"operator-{operator.starts}.log"
    kube.wait_for(
        lambda: "Ferry operator started" in log.read_text(errors="replace"),
        timeout=30,
        interval=0.1,
        what=f"operator start {operator.starts}",
    )


def test_jobs_survive_operator_kills(kube: Kube, namespace: str, operator: OperatorProcess) -> None:
    seed = int(os.environ.get("FERRY_TEST_SEED", str(time.time_ns() % 100000)))
    rng = random.Random(seed)
    cases = _cases(rng)
    by_name = {c.name: c for c in cases}
    started = time.monotonic()
    kills = 0
    with (
        Recorder(kube, namespace, "pods") as pod_rec,
        Recorder(kube, namespace, "fjob") as job_rec,
    ):
        kube.create(app_manifest(), "-n", namespace)
        items = [job_manifest(c.name, annotations=c.annotations, **c.spec) for c in cases]
        kube.create({"apiVersion": "v1", "kind": "List", "items": items}, "-n", namespace)
        for _ in range(4):
            # Kill it while it works: 1-3 s after it is up (starting takes ~2 s itself).
            _wait_started(kube, operator)
            time.sleep(rng.uniform(1, 3))
            operator.kill()
            kills += 1
            time.sleep(rng.uniform(0, 0.5))
            operator.start()

        def all_terminal() -> list[dict[str, Any]] | None:
            jobs = kube.list("fjob", namespace)
            done = [j for j in jobs if status(j).get("state") in TERMINAL]
            return jobs if len(done) == len(cases) else None

        try:
            jobs: list[dict[str, Any]] = kube.wait_for(
                all_terminal, timeout=240, interval=1, what="every Job terminal"
            )
        except AssertionError:
            left = {
                j["metadata"]["name"]: (status(j).get("state"), status(j).get("message"))
                for j in kube.list("fjob", namespace)
                if status(j).get("state") not in TERMINAL
            }
            raise AssertionError(f"seed {seed}: not terminal: {left}") from None
        elapsed = time.monotonic() - started
        # Everything a terminal Job held is released.
        kube.wait_for(
            lambda: kube.list("pvc", namespace) == [], timeout=60, what="every workspace deleted"
        )
        seen_pods = pod_rec.stop()
        seen_jobs = job_rec.stop()

    counts = collections.Counter(f"{status(j)['state']}/{status(j)['reason']}" for j in jobs)
    lifetimes = sorted(
        (
            parse_time(status(j)["completionTime"]) - parse_time(j["metadata"]["creationTimestamp"])
        ).total_seconds()
        for j in jobs
    )
    print(
        f"\nrestart test (seed {seed}): {len(jobs)} Jobs, {kills} SIGKILLs, "
        f"{operator.starts} operator starts, all terminal after {elapsed:.1f}s "
        f"(Job lifetimes: median {lifetimes[len(lifetimes) // 2]:.0f}s, "
        f"max {lifetimes[-1]:.0f}s): " + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
    )

    wrong = {}
    for job in jobs:
        name = job["metadata"]["name"]
        case = by_name[name]
        st = status(job)
        got = (st["state"], st["reason"], st.get("attempt"))
        if got != (case.state, case.reason, case.attempts):
            wrong[name] = (got, st.get("message"), states_of(st.get("history") or []))
    assert not wrong, f"seed {seed}: wrong outcomes: {wrong}"

    for job in jobs:
        name = job["metadata"]["name"]
        case = by_name[name]
        st = status(job)
        check_order(st["history"], name)
        conds = {c["type"]: c["status"] for c in st["conditions"]}
        assert conds["Ready"] == ("True" if case.state == "Finished" else "False"), name
        assert conds["Reconciling"] == "False", name
        assert conds["Stalled"] == ("False" if case.state == "Finished" else "True"), name
        retries = st.get("retries") or {}
        if case.kind == "evict":
            assert retries.get("infraFailures") == 2, (name, retries)
            assert retries.get("appFailures", 0) == 0, (name, retries)
            # History records changes of state: Retrying for attempt 2 then again for
            # attempt 3 (its pod evicted before anyone saw it Queued) is one entry.
            assert 1 <= states_of(st["history"]).count("Retrying") <= 2, name
        else:
            assert not retries.get("infraFailures"), (name, retries)
            assert "Retrying" not in states_of(st["history"]), name
        if case.kind == "exit":
            assert st["exitCode"] == 3, name

    # Every version of every Job the watch saw: histories only grow, states in order.
    versions = collections.defaultdict(list)
    for obj in seen_jobs:
        versions[obj["metadata"]["name"]].append(obj)
    for name, objs in versions.items():
        previous: list[dict[str, Any]] = []
        for obj in objs:
            history = status(obj).get("history") or []
            check_order(history, name)
            check_extends(previous, history, name)
            previous = history

    # Pods: names are deterministic, so a second run pod for an attempt would show as the
    # same name with a new uid; and there is exactly one run pod per attempt made.
    uids: dict[str, set[str]] = collections.defaultdict(set)
    run_pods: dict[str, set[int]] = collections.defaultdict(set)
    for pod in seen_pods:
        meta = pod["metadata"]
        uids[meta["name"]].add(meta["uid"])
        labels = meta.get("labels") or {}
        if labels.get("ferry.dev/role") == "run":
            run_pods[labels["ferry.dev/job"]].add(int(labels["ferry.dev/attempt"]))
    duplicated = {n: u for n, u in uids.items() if len(u) > 1}
    assert not duplicated, f"seed {seed}: pods created more than once: {duplicated}"
    for job in jobs:
        name = job["metadata"]["name"]
        attempts = sorted(run_pods[name])
        expected = list(range(1, by_name[name].attempts + 1))
        assert attempts == expected, (name, attempts)
        assert len(attempts) == status(job)["attempt"], name
