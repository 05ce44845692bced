"""The operator's data metrics read the stager's termination summaries, once per container."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ferry.handlers.metrics import Metrics

pytestmark = pytest.mark.unit


def _pod(
    uid: str, init: list[tuple[str, int, dict[str, Any] | str]], main: tuple[str, int, Any] | None
) -> dict[str, Any]:
    def status(name: str, code: int, message: Any) -> dict[str, Any]:
        text = message if isinstance(message, str) else json.dumps(message)
        return {"name": name, "state": {"terminated": {"exitCode": code, "message": text}}}

    return {
        "metadata": {"uid": uid},
        "status": {
            "initContainerStatuses": [status(*c) for c in init],
            "containerStatuses": [status(*main)] if main else [],
        },
    }


def value(metrics: Metrics, name: str, direction: str) -> float:
    sample = metrics.registry.get_sample_value(name, {"direction": direction})
    return sample or 0.0


def test_staged_and_archived_bytes_and_seconds() -> None:
    m = Metrics()
    run = _pod(
        "u1",
        [
            ("ferry-setup", 0, {"launcher": "ok"}),
            ("stage-model", 0, {"input": "model", "bytes": 100, "seconds": 0.5}),
            ("stage-mesh", 1, "input 'mesh': not found"),
        ],
        ("app", 0, "done"),
    )
    archive = _pod(
        "u2", [], ("archive", 0, {"uri": "s3://b/p/", "files": 2, "bytes": 50, "seconds": 1.25})
    )
    m.observe_container_summaries([run, archive])
    m.observe_container_summaries([run, archive])  # seen again: not counted twice
    assert value(m, "ferry_data_bytes_total", "in") == 100
    assert value(m, "ferry_data_seconds_total", "in") == 0.5
    assert value(m, "ferry_data_bytes_total", "out") == 50
    assert value(m, "ferry_data_seconds_total", "out") == 1.25


def test_jobs_by_state_are_counted_at_most_once_per_recount_interval() -> None:
    # Counting walks every Job; a scrape storm must not make the operator walk 50,000 Jobs
    # ten times a second. Scrapes within RECOUNT_SECONDS get the last count.
    from ferry.handlers.metrics import RECOUNT_SECONDS, JobStates

    now = [100.0]
    counted: list[int] = []
    finished = [3]

    def states() -> dict[str, int]:
        counted.append(1)
        return {"Finished": finished[0], "": 1}

    collector = JobStates(states, clock=lambda: now[0])

    def scrape() -> dict[str, float]:
        (family,) = collector.collect()
        return {s.labels["state"]: s.value for s in family.samples}

    assert scrape()["Finished"] == 3
    assert scrape()["Pending"] == 1  # no state yet counts as Pending
    finished[0] = 4
    now[0] += RECOUNT_SECONDS / 2
    assert scrape()["Finished"] == 3  # the last count, half an interval old
    assert len(counted) == 1
    now[0] += RECOUNT_SECONDS / 2
    assert scrape()["Finished"] == 4  # counted again
    assert len(counted) == 2
