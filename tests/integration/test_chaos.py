"""The fault suite of issue #17 at CI's size (bench/chaos.py --small), on the session's real
apiserver, kwok nodes and MinIO: each scenario's headline figures must be zero (or, for the
stopped operator, within a minute). The scenarios themselves are ferrydev.bench.chaos_*; the
full sizes run with bench/chaos.py. The store outage needs the real node:
tests/e2e/test_chaos_store.py.

The watch-gap scenario restarts the session's kube-apiserver (same address, same etcd).
A failure names the seed (FERRY_TEST_SEED reruns it) and what went wrong, Job by Job.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from ferrydev.bench.chaos import SMALL, run_scenario
from ferrydev.bench.chaos_suite import Result, Suite
from ferrydev.bench.workloads import api_client
from ferrydev.cluster import ClusterState
from tests.conftest import Kube

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

SEED = int(os.environ.get("FERRY_TEST_SEED", str(time.time_ns() % 100000)))


@pytest.fixture
def suite(cluster: ClusterState, kube: Kube, alone: Any, tmp_path: Path) -> Suite:
    """The fault suite on the session's cluster, with no other operator running."""
    return Suite(cluster, api_client(cluster), tmp_path)


def _run(suite: Suite, name: str) -> Result:
    result = run_scenario(suite, name, SMALL, SEED)
    print(f"\n{name} (seed {SEED}, {result.seconds:.0f} s):\n  " + "\n  ".join(result.lines))
    return result


def _why(result: Result) -> str:
    return f"seed {SEED}; " + "\n".join(result.lines + result.details)


def test_operator_kills_lose_no_job_and_duplicate_no_pod(suite: Suite) -> None:
    r = _run(suite, "kills")
    f = r.figures
    assert (f["lost"], f["duplicate_pods"], f["wrong_terminal"]) == (0, 0, 0), _why(r)


def test_a_stopped_operator_converges_within_a_minute(suite: Suite) -> None:
    r = _run(suite, "stopped")
    assert r.figures["converged_seconds"] <= 60, _why(r)
    assert not r.details, _why(r)


def test_a_forced_watch_expiry_misses_no_transition(suite: Suite) -> None:
    r = _run(suite, "watch-gap")
    assert r.figures["missed_transitions"] == 0, _why(r)


def test_apiserver_faults_duplicate_no_side_effect(suite: Suite) -> None:
    r = _run(suite, "api-faults")
    f = r.figures
    assert f["duplicate_side_effects"] == 0, _why(r)
    assert (f["lost"], f["wrong_terminal"]) == (0, 0), _why(r)
