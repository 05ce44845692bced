"""The fault suite's store outage at CI's size (bench/chaos.py --real-node --scenarios store
runs the full one): the real-node cluster's MinIO stopped while Ferry's real archive pods
archive, started again on the same address; every Job must end Finished with every object
its manifest lists in the store, size and sha256 matching. Run it under
`flock /tmp/ferry-real-node.lock`. It restarts the session's MinIO (same address, same data).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ferrydev.bench.chaos import SMALL, run_scenario
from ferrydev.bench.chaos_store import REAL_NODE_SETTINGS
from ferrydev.bench.chaos_suite import Suite
from ferrydev.bench.workloads import api_client
from tests.conftest import Kube

pytestmark = [pytest.mark.e2e, pytest.mark.chaos]


def test_a_store_outage_during_archiving_loses_no_output(
    ferry_kube: Kube,
    _real_operator_process: Any,  # noqa: PT019 - stopped, not merely set up
    tmp_path: Path,
) -> None:
    _real_operator_process.stop()  # it watches every namespace: it would act on ours too
    state = ferry_kube.state
    settings = {**REAL_NODE_SETTINGS, "FERRY_DEFAULT_S3_ENDPOINT": state.minio_pod_endpoint}
    suite = Suite(state, api_client(state), tmp_path, settings=settings)
    r = run_scenario(suite, "store", SMALL, 0)
    print(f"\nstore ({r.seconds:.0f} s):\n  " + "\n  ".join(r.lines))
    why = "\n".join(r.lines + r.details)
    assert (r.figures["false_finished"], r.figures["outputs_lost"]) == (0, 0), why
    assert not r.details, why
