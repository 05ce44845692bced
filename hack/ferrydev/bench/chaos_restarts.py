"""Two scenarios of the fault suite about the operator's own death: SIGKILLs at random points
while Jobs of mixed fates run (`kills`), and the operator stopped for minutes while Jobs run
(`stopped`).

`kills`: every Job must reach the terminal state its build implies, no (job, attempt) pod
name may ever get a second UID, no pod may be created for a deleted Job; headline
`lost 0, duplicate pods 0, wrong terminal 0`. `stopped`: after the operator starts again,
the time until every Job's status reflects its pods (a Job whose run pod ended is past
Running; one whose run pod runs is Running; a Job created during the stop has its pod);
headline `converged in X s` (goal: 60 s).

Must not: fail on a figure (they are reported; the tests assert them), or leave an operator
running (`Suite.cleanup`).
"""

from __future__ import annotations

import collections
import random
import time

from ferrydev.bench.chaos_fates import Actions, Fate, create, mixed, plain
from ferrydev.bench.chaos_ledger import JobRecord, Ledger
from ferrydev.bench.chaos_suite import Result, Suite, wait_for
from ferrydev.bench.watch import FERRY_TERMINAL

CONVERGE_GOAL = 60.0
NOT_YET = frozenset({"", "Pending", "Queued", "StagingInputs", "Running"})


def judge(result: Result, fates: list[Fate], ledger: Ledger) -> None:
    """The kills' and faults' common figures: lost, wrong terminal, duplicate pods."""
    by_name = ledger.by_name()
    lost, wrong = [], []
    outcomes: collections.Counter[str] = collections.Counter()
    for f in fates:
        recs = by_name.get(f.name) or []
        rec = recs[-1] if recs else None
        if rec is None or rec.terminal is None:
            lost.append(f"{f.name}: {rec.states[-3:] if rec else 'never seen'}")
            continue
        state, reason, _ = rec.terminal
        outcomes[f"{state}/{reason}"] += 1
        if not f.expects(state, reason):
            wrong.append(f"{f.name} ({f.kind}): {state}/{reason}, expected {f.state}/{f.reason}")
    dup = ledger.duplicate_pods()
    result.figures.update(lost=len(lost), duplicate_pods=len(dup), wrong_terminal=len(wrong))
    result.say("outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())))
    result.details += [f"lost {x}" for x in lost] + [f"wrong {x}" for x in wrong]
    result.details += [f"duplicate pod {n}: {why}" for n, why in sorted(dup.items())]


def kills(suite: Suite, jobs: int, n_kills: int, seed: int, deadline: float) -> Result:
    result = Result("kills")
    t0 = time.monotonic()
    rng = random.Random(seed)  # noqa: S311 - a reproducible mix
    ns = suite.namespace("kills")
    fates = mixed(jobs, rng)
    names = {f.name for f in fates}
    ledger = Ledger(suite.api, ns).start()
    op = suite.operator(ns, "kills-0")
    try:
        suite.started(op)
        created = create(suite.api, ns, fates)
        actions = Actions(suite.api, ns, fates, created)
        actions.start()
        # The kills spread over the Jobs' expected lifetime, at random points.
        window = 20 + 0.3 * jobs
        times = sorted(rng.uniform(1, window) for _ in range(n_kills))
        start = time.monotonic()
        downs = []
        for i, at in enumerate(times, 1):
            time.sleep(max(0.0, start + at - time.monotonic()))
            op.kill()
            down = rng.uniform(0, 2)
            downs.append(down)
            time.sleep(down)
            op = suite.operator(ns, f"kills-{i}")
        result.say(
            f"{n_kills} SIGKILLs over {window:.0f} s (down {sum(downs):.1f} s in all), "
            f"{len(fates)} Jobs: "
            + ", ".join(
                f"{k} {v}" for k, v in sorted(collections.Counter(f.kind for f in fates).items())
            )
        )
        done = wait_for(lambda: ledger.terminal_count(names) == len(names), deadline, 1.0)
        took = time.monotonic() - start
        result.say(
            f"all terminal in {took:.0f} s"
            if done
            else f"{len(names) - ledger.terminal_count(names)} not terminal after {took:.0f} s"
        )
        time.sleep(10)  # what a confused operator would still create shows up by now
        actions.stopping.set()
        judge(result, fates, ledger)
        f = result.figures
        result.say(
            f"lost {f['lost']:.0f}, duplicate pods {f['duplicate_pods']:.0f}, "
            f"wrong terminal {f['wrong_terminal']:.0f}"
        )
    finally:
        ledger.stop()
        suite.cleanup(ns, op)
    result.seconds = time.monotonic() - t0
    return result


def _consistent(rec: JobRecord, ledger: Ledger, must_have_pod: bool) -> str | None:
    """None if the Job's status reflects its pods, else why not."""
    state = str((rec.last.get("status") or {}).get("state") or "")
    with ledger.lock:
        runs = [p for p in ledger.pods.values() if p.owner == rec.uid and p.role == "run"]
    if not runs:
        if must_have_pod and state not in FERRY_TERMINAL:
            return f"{rec.name}: no run pod, state {state or '-'}"
        return None
    latest = max(runs, key=lambda p: p.name)
    if latest.gone and state in NOT_YET - {""}:
        return None  # its pod went: the operator makes the next one (or the terminal state)
    if latest.phase == "Running" and state != "Running":
        return f"{rec.name}: pod {latest.name} Running, Job {state or '-'}"
    if latest.phase in ("Succeeded", "Failed") and state in NOT_YET:
        return f"{rec.name}: pod {latest.name} {latest.phase}, Job {state or '-'}"
    return None


def stopped(suite: Suite, jobs: int, stop_seconds: float, seed: int, deadline: float) -> Result:
    result = Result("stopped")
    t0 = time.monotonic()
    rng = random.Random(seed)  # noqa: S311 - a reproducible mix
    ns = suite.namespace("stopped")
    n_short = max(1, int(jobs * 0.7))
    n_new = max(1, int(jobs * 0.1))
    n_long = max(1, jobs - n_short - n_new)
    short = plain(
        "short", [f"{rng.uniform(3, max(4, 0.8 * stop_seconds)):.0f}s" for _ in range(n_short)]
    )
    long = plain("long", [f"{int(stop_seconds + deadline + 600)}s"] * n_long)
    new = plain("new", ["2s"] * n_new)
    ledger = Ledger(suite.api, ns).start()
    op = suite.operator(ns, "stopped-0")
    try:
        suite.started(op)
        first = short + long
        create(suite.api, ns, first)

        def all_running() -> bool:
            recs = [ledger.job(f.name) for f in first]
            return all(r is not None and "Running" in r.states for r in recs)

        if wait_for(all_running, 120) is None:
            result.details.append("not every Job was Running before the stop")
        op.kill()
        stop_at = time.monotonic()
        time.sleep(min(2.0, stop_seconds / 4))
        create(suite.api, ns, new)
        time.sleep(max(0.0, stop_at + stop_seconds - time.monotonic()))
        op = suite.operator(ns, "stopped-1")
        started = time.monotonic()
        pending = [r for r in (ledger.job(f.name) for f in short + long + new) if r is not None]
        why: list[str] = []

        def converged() -> bool:
            why[:] = [
                w
                for r in pending
                if (w := _consistent(r, ledger, r.name.startswith("new"))) is not None
            ]
            return not why

        ok = wait_for(converged, deadline, 0.5)
        took = time.monotonic() - started
        result.say(
            f"{n_short} Jobs whose pods ended during a {stop_seconds:.0f} s stop (SIGKILL), "
            f"{n_long} still running, {n_new} created during the stop"
        )
        if ok:
            result.figures["converged_seconds"] = round(took, 1)
            verdict = "pass" if took <= CONVERGE_GOAL else "short of goal"
            result.say(f"converged in {took:.1f} s (goal <= {CONVERGE_GOAL:.0f} s: {verdict})")
        else:
            result.figures["converged_seconds"] = float("inf")
            result.say(f"converged in >{took:.0f} s (not converged by the deadline)")
            result.details += why[:20]
        names = {f.name for f in short + new}
        done = wait_for(lambda: ledger.terminal_count(names) == len(names), 30, 1.0)
        result.say(
            f"Jobs whose pods ended: terminal {ledger.terminal_count(names)}/{len(names)}"
            + ("" if done else " (30 s after convergence)")
        )
    finally:
        ledger.stop()
        suite.cleanup(ns, op)
    result.seconds = time.monotonic() - t0
    return result
