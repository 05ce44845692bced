"""Properties of the lifecycle that hold for every observation, checked with hypothesis."""

from __future__ import annotations

import copy
import itertools
from datetime import timedelta
from typing import Any, Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ferry.api.job import TERMINAL_STATES, HistoryEntry, JobSpec, JobStatus, RunOutcome, State
from ferry.decisions.observation import ContainerView, Observation, PodView
from ferry.decisions.plan import CreateObject

from .factories import (
    JOB,
    NOW,
    UID,
    app_spec,
    app_view,
    decide,
    job_dict,
    job_spec,
    job_view,
    observe,
    parent,
    with_status,
)

pytestmark = pytest.mark.unit

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

reasons = st.sampled_from(
    ["AppFailed", "Succeeded", "Cancelled", "InvalidSpec", "ArchiveFailed", "MaxRunSecondsExceeded"]
)
offsets = st.integers(min_value=-(10**6), max_value=10**6).map(lambda s: NOW + timedelta(seconds=s))

containers = st.builds(
    ContainerView,
    name=st.sampled_from(["app", "archive", "ferry-setup", "stage-model"]),
    state=st.sampled_from([None, "waiting", "running", "terminated"]),
    exit_code=st.one_of(st.none(), st.integers(0, 255)),
    reason=st.sampled_from(
        ["", "Error", "Completed", "ImagePullBackOff", "CreateContainerConfigError", "OOMKilled"]
    ),
    message=st.one_of(
        st.just(""),
        st.text(max_size=30),
        st.just('{"uri": "s3://b/p/", "files": 2, "bytes": 9, "manifest": "s3://b/p/m.json"}'),
    ),
    started_at=st.one_of(st.none(), offsets),
    finished_at=st.one_of(st.none(), offsets),
)


@st.composite
def pods(draw: st.DrawFn) -> PodView:
    attempt = draw(st.integers(1, 3))
    role: Literal["run", "archive"] = draw(st.sampled_from(["run", "archive"]))
    try_ = draw(st.integers(0, 3)) if role == "archive" else 0
    name = f"{JOB}-{attempt}" if role == "run" else f"{JOB}-{attempt}-archive-{try_}"
    return PodView(
        owner_uid=UID,
        name=name,
        attempt=attempt,
        role=role,
        phase=draw(st.sampled_from(["Pending", "Running", "Succeeded", "Failed", "Unknown"])),
        deleting=draw(st.booleans()),
        scheduled=draw(st.booleans()),
        schedule_message=draw(st.sampled_from(["", "0/1 nodes are available"])),
        reason=draw(st.sampled_from(["", "Evicted"])),
        message=draw(st.sampled_from(["", "low on memory"])),
        disruption=draw(st.sampled_from(["", "PreemptionByScheduler"])),
        init=tuple(draw(st.lists(containers, max_size=3))),
        main=draw(st.one_of(st.none(), containers)),
        archive_try=try_,
    )


pod_sets = st.lists(pods(), max_size=4).map(
    lambda ps: tuple({(p.name): p for p in ps}.values())  # one pod per name
)

apps = st.one_of(
    st.none(),
    st.just(app_view()),
    st.just(app_view(error="does not parse")),
    st.just(app_view(app_spec(args=["{{params.ghost}}"]))),
    st.just(app_view(app_spec(runtime={"type": "MPI"}))),
)

parent_sets = st.dictionaries(
    st.sampled_from(["p1", "p2"]),
    st.one_of(st.none(), st.sampled_from(list(State)).map(lambda s: parent("p", s, "Why"))),
    max_size=2,
)


@st.composite
def specs(draw: st.DrawFn) -> JobSpec:
    return job_spec(
        suspend=draw(st.booleans()),
        cancel=draw(st.booleans()),
        maxRunSeconds=draw(st.one_of(st.none(), st.integers(1, 10**5))),
        ttlSecondsAfterFinished=draw(st.one_of(st.none(), st.integers(0, 10**5))),
        parents=draw(st.sampled_from([[], ["p1"], ["p1", "p2"]])),
        retry=draw(
            st.fixed_dictionaries(
                {"appFailures": st.integers(0, 2), "infraFailures": st.integers(0, 2)}
            )
        ),
        archive={"onFailure": draw(st.booleans())},
    )


@st.composite
def statuses(draw: st.DrawFn, states: Any = None) -> JobStatus:
    state = draw(
        states if states is not None else st.one_of(st.none(), st.sampled_from(list(State)))
    )
    history = [
        HistoryEntry(state=s, time=NOW, reason="R")
        for s in draw(st.lists(st.sampled_from(list(State)), max_size=5))
    ]
    return JobStatus(
        state=state,
        reason=draw(reasons) if state is not None else None,
        message=draw(st.text(max_size=20)),
        attempt=draw(st.one_of(st.none(), st.integers(1, 3))),
        run_outcome=draw(st.one_of(st.none(), st.sampled_from(list(RunOutcome)))),
        exit_code=draw(st.one_of(st.none(), st.integers(0, 255))),
        archive_try=draw(st.one_of(st.none(), st.integers(1, 3))),
        start_time=draw(st.one_of(st.none(), offsets)),
        completion_time=draw(st.one_of(st.none(), offsets)),
        history=history,
    )


@st.composite
def observations(draw: st.DrawFn, states: Any = None) -> Observation:
    return observe(
        job_view(draw(specs()), draw(statuses(states)), generation=draw(st.integers(1, 5))),
        pods=draw(pod_sets),
        app=draw(apps),
        parents=draw(parent_sets),
        pvcs=draw(st.sets(st.sampled_from([f"{JOB}-1", f"{JOB}-2"]))),
        now=draw(offsets),
        mpi_available=draw(st.booleans()),
    )


# --------------------------------------------------------------------------- properties


@SETTINGS
@given(observations(st.sampled_from(sorted(TERMINAL_STATES))))
def test_terminal_states_are_absorbing(obs: Observation) -> None:
    before = obs.job.status
    plan = decide(obs)
    assert plan.state == before.state
    assert plan.status.reason == before.reason
    assert plan.status.history == before.history
    assert plan.events == ()
    assert not any(isinstance(a, CreateObject) for a in plan.actions)
    assert plan.status.attempt == before.attempt


@SETTINGS
@given(observations())
def test_decide_depends_only_on_the_observation(obs: Observation) -> None:
    first = decide(obs)
    second = decide(copy.deepcopy(obs))
    assert first == second
    assert decide(obs) == first


@SETTINGS
@given(observations())
def test_plans_are_well_formed(obs: Observation) -> None:
    plan = decide(obs)
    st_ = plan.status
    assert st_.state is not None
    assert len(st_.history) <= 50
    # The status always passes the API's own validation (it is written as it is).
    assert JobStatus.model_validate(st_.wire()) == st_
    ready = st_.condition("Ready")
    assert ready is not None
    if not obs.job.deleting:
        assert (ready.status.value == "True") == (st_.state == State.FINISHED)
    if st_.state != State.FINISHED and plan.state.terminal:
        assert st_.condition("Stalled") is not None


step = st.fixed_dictionaries(
    {
        "pods": pod_sets,
        "now": offsets,
        "app": st.sampled_from([app_view(), None]),
    }
)


@SETTINGS
@given(specs(), st.lists(step, min_size=1, max_size=8))
def test_history_never_repeats_a_state_and_stays_bounded(spec: JobSpec, steps: list[Any]) -> None:
    obs = observe(job_view(spec))
    plan = decide(obs)
    for change in steps:
        obs = with_status(obs, plan.status, **change)
        plan = decide(obs)
        history = [h.state for h in plan.status.history]
        assert all(a != b for a, b in itertools.pairwise(history)), history
        assert len(history) <= 50
        assert history[-1] == plan.state
        # Applying the status and deciding again on the same observation writes nothing.
        again = decide(with_status(obs, plan.status))
        if again.state == plan.state:
            assert [h.state for h in again.status.history] == history


# --------------------------------------------------------------------------- round trip

names = st.from_regex(r"[a-z]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
idents = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True)
scalars = st.one_of(
    st.text(max_size=20),
    st.integers(-(10**9), 10**9),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.booleans(),
)
sources = st.one_of(
    st.builds(lambda t: {"inline": t}, st.text(max_size=40)),
    st.builds(
        lambda b, k: {"s3": {"bucket": b, "key": k}},
        st.from_regex(r"[a-z0-9][a-z0-9.-]{1,10}[a-z0-9]", fullmatch=True),
        st.text(min_size=1, max_size=20),
    ),
    st.builds(
        lambda h: {"http": {"url": "https://example.org/f", "sha256": h}},
        st.from_regex(r"[a-f0-9]{64}", fullmatch=True),
    ),
    st.builds(lambda n: {"pvc": {"claimName": n, "path": "data/x"}}, names),
    st.builds(lambda n: {"configMap": {"name": n, "key": "k.txt"}}, names),
)


@st.composite
def job_docs(draw: st.DrawFn) -> dict[str, Any]:
    input_names = draw(st.lists(names, max_size=4, unique=True))
    doc = job_dict(
        appRef={"name": draw(names)},
        parameters=draw(st.dictionaries(idents, scalars, max_size=5)),
        inputs=[{"name": n, "source": draw(sources)} for n in input_names],
        parents=draw(st.lists(names, max_size=3, unique=True)),
        suspend=draw(st.booleans()),
        cancel=draw(st.booleans()),
    )
    optional = {
        "maxRunSeconds": st.integers(1, 30 * 24 * 3600),
        "ttlSecondsAfterFinished": st.integers(0, 1000),
        "retry": st.fixed_dictionaries(
            {"appFailures": st.integers(0, 20), "infraFailures": st.integers(0, 20)}
        ),
        "resources": st.fixed_dictionaries(
            {},
            optional={
                "cpu": st.sampled_from(["1", "500m", "2.5", "1e3"]),
                "memory": st.sampled_from(["4Gi", "512Mi", "1G"]),
                "gpu": st.integers(0, 8),
            },
        ),
        "archive": st.fixed_dictionaries(
            {},
            optional={
                "s3": st.just({"bucket": "results", "prefix": "p/"}),
                "include": st.lists(st.sampled_from(["**", "*.out", "results/**"]), max_size=3),
                "onFailure": st.booleans(),
            },
        ),
        "workspace": st.fixed_dictionaries({"size": st.sampled_from(["1Gi", "10Gi"])}),
    }
    for key, strategy in optional.items():
        if draw(st.booleans()):
            doc[key] = draw(strategy)
    return doc


@SETTINGS
@given(job_docs())
def test_job_specs_round_trip_through_the_wire(doc: dict[str, Any]) -> None:
    spec = JobSpec.model_validate(doc)
    wire = spec.wire()
    again = JobSpec.model_validate(wire)
    assert again == spec
    assert again.wire() == wire
    assert [type(v) for v in again.parameters.values()] == [
        type(v) for v in spec.parameters.values()
    ]
