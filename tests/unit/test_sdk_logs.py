"""Which run pod `Client.logs` reads: only one the Job controls."""

from __future__ import annotations

from typing import Any

import pytest

from ferry.sdk.logs import _app_started, _ours

pytestmark = pytest.mark.unit

JOB: dict[str, Any] = {"metadata": {"name": "hello", "uid": "job-uid"}}


def _pod(refs: list[dict[str, Any]], app_state: dict[str, Any] | None = None) -> dict[str, Any]:
    statuses = [{"name": "app", "state": app_state}] if app_state is not None else []
    return {
        "metadata": {"name": "hello-1", "ownerReferences": refs},
        "status": {"containerStatuses": statuses},
    }


def test_the_jobs_own_run_pod_is_read() -> None:
    pod = _pod([{"controller": True, "uid": "job-uid", "kind": "Job"}])
    assert _ours(pod, JOB) is pod


@pytest.mark.parametrize(
    "refs",
    [
        [],
        [{"controller": True, "uid": "someone-else"}],
        [{"controller": False, "uid": "job-uid"}],
    ],
    ids=["no owner", "another controller", "owner but not controller"],
)
def test_a_pod_with_the_run_pods_name_made_by_someone_else_is_not_read(
    refs: list[dict[str, Any]],
) -> None:
    assert _ours(_pod(refs), JOB) is None


def test_the_app_has_started_once_its_container_runs_or_ran() -> None:
    assert not _app_started(_pod([], {"waiting": {"reason": "PodInitializing"}}))
    assert not _app_started(_pod([]))
    assert _app_started(_pod([], {"running": {}}))
    assert _app_started(_pod([], {"terminated": {"exitCode": 0}}))
