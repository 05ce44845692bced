"""What a Job's own record says should exist: a run pod that looks lost, its workspaces."""

from __future__ import annotations

import pytest

from ferry.api.job import JobStatus, RunOutcome, State
from ferry.decisions.expected import run_pod_looks_lost, workspaces
from tests.unit.factories import archive_pod, job_spec, job_view, running

pytestmark = pytest.mark.unit


def _status(state: State | None, attempt: int | None = 1, **fields: object) -> JobStatus:
    return JobStatus(state=state, attempt=attempt, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "state", [State.QUEUED, State.STAGING_INPUTS, State.RUNNING, State.RETRYING, State.CANCELLING]
)
def test_a_run_pod_recorded_as_made_but_not_seen_looks_lost(state: State) -> None:
    view = job_view(status=_status(state))
    assert run_pod_looks_lost(view, [])
    assert run_pod_looks_lost(view, [archive_pod(1)]), "an archive pod is not the run pod"
    assert run_pod_looks_lost(view, [running(attempt=2)]), "another attempt's pod is not it"
    assert not run_pod_looks_lost(view, [running(attempt=1)])


@pytest.mark.parametrize(
    "status",
    [
        _status(None, attempt=None),  # never looked at
        _status(State.QUEUED, attempt=None),  # no attempt made yet
        _status(State.QUEUED, attempt=0),
        _status(State.SUSPENDED),  # its pod was deleted on purpose
        _status(State.ARCHIVING, run_outcome=RunOutcome.SUCCEEDED),  # the run already ended
        _status(State.FINISHED),
        _status(State.FAILED),
        _status(State.TIMED_OUT),
        _status(State.CANCELLED),
    ],
)
def test_no_run_pod_is_missed_when_none_should_stand(status: JobStatus) -> None:
    assert not run_pod_looks_lost(job_view(status=status), [])


def test_the_workspaces_are_one_per_attempt_made() -> None:
    name = job_view().name
    assert workspaces(job_view(status=_status(None, attempt=None))) == frozenset()
    assert workspaces(job_view(status=_status(State.RUNNING, attempt=1))) == {f"{name}-1"}
    assert workspaces(job_view(status=_status(State.RETRYING, attempt=3))) == {
        f"{name}-1",
        f"{name}-2",
        f"{name}-3",
    }


def test_a_job_without_inputs_or_archiving_has_no_workspace() -> None:
    spec = job_spec(inputs=[], archive={"enabled": False})
    assert not spec.uses_workspace
    assert workspaces(job_view(spec, _status(State.RUNNING, attempt=2))) == frozenset()


def test_a_job_whose_spec_does_not_parse_still_releases_its_workspaces() -> None:
    view = job_view(status=_status(State.FAILED, attempt=2), spec_error="bad spec")
    assert view.spec is None
    assert workspaces(view) == {f"{view.name}-1", f"{view.name}-2"}
