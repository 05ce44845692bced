"""Two operator replicas never both act: both run as the chart's ServiceAccount with leader
election (a Lease in the release's namespace), the standby waits while the leader renews, the
leader is SIGKILLed in the middle of a burst of Jobs, the standby takes the Lease within its
duration, and every Job still finishes with each pod created once (one UID per pod name, as a
`kubectl get -w` of the namespace saw them)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Kube
from tests.integration.lifecycle_support import (
    Recorder,
    Watcher,
    app_manifest,
    job_manifest,
    sim,
    status,
)
from tests.integration.rbac_support import ChartIdentity, SAOperator, install_identity

pytestmark = pytest.mark.integration

#: Shorter than the chart's 15/10/2 s to keep the test quick; the same rules apply.
DURATION, DEADLINE, RETRY = 8, 5, 1
JOBS = 12


class Replica(SAOperator):
    def __init__(self, kube: Kube, log_dir: Path, identity: ChartIdentity, ns: str, name: str):
        log_dir.mkdir()
        super().__init__(kube.state, log_dir, identity, ns)
        self.name = name

    def env(self) -> dict[str, str]:
        env = super().env()
        env.update(
            FERRY_LEASE_DURATION_SECONDS=str(DURATION),
            FERRY_LEASE_RENEW_DEADLINE_SECONDS=str(DEADLINE),
            FERRY_LEASE_RETRY_SECONDS=str(RETRY),
        )
        return env


@pytest.fixture
def identity(kube: Kube, namespace: str, tmp_path: Path) -> Iterator[ChartIdentity]:
    ident = install_identity(kube, namespace, tmp_path, "--set", "replicas=2")
    yield ident
    kube.run("delete", "namespace", ident.release_ns, "--wait=false", check=False)
    kube.run("delete", "clusterrole,clusterrolebinding", f"{ident.sa}-discovery", check=False)


def lease(kube: Kube, identity: ChartIdentity) -> dict[str, Any]:
    proc = kube.run(
        "get", "lease", identity.sa, "-n", identity.release_ns, "-o", "json", check=False
    )
    spec: dict[str, Any] = json.loads(proc.stdout)["spec"] if proc.returncode == 0 else {}
    return spec


def holder(kube: Kube, identity: ChartIdentity) -> str:
    return str(lease(kube, identity).get("holderIdentity") or "")


@pytest.mark.usefixtures("alone")
def test_the_standby_takes_over_when_the_leader_is_killed_and_no_pod_is_made_twice(
    kube: Kube, namespace: str, identity: ChartIdentity, tmp_path: Path
) -> None:
    ns = namespace
    a = Replica(kube, tmp_path / "a", identity, ns, "a")
    b = Replica(kube, tmp_path / "b", identity, ns, "b")
    a.start()
    kube.wait_for(lambda: holder(kube, identity) == "a-1", timeout=60, what="a holds the Lease")
    b.start()
    time.sleep(3 * RETRY)
    with Recorder(kube, ns, "pods") as recorder:
        kube.create(app_manifest(), "-n", ns)
        for i in range(JOBS):
            job = job_manifest(f"j{i}", annotations=sim(duration=f"{2 + i % 4}s"))
            kube.create(job, "-n", ns)
        # Some Jobs under way (pods made by a), none finished by b.
        kube.wait_for(
            lambda: len(kube.list("pods", ns, "-l", "ferry.dev/job")) >= 3,
            timeout=60,
            what="the leader's first pods",
        )
        assert holder(kube, identity) == "a-1", "the standby must not take a renewed Lease"
        renewed = lease(kube, identity)["renewTime"]
        a.kill()
        killed = time.monotonic()
        print(f"\nSIGKILL a at {datetime.now().isoformat()} (Lease last renewed {renewed})")
        kube.wait_for(
            lambda: holder(kube, identity) == "b-1",
            timeout=DURATION + 30,
            interval=0.2,
            what="b takes the Lease",
        )
        took = time.monotonic() - killed
        print(f"b took the Lease {took:.1f}s after the kill (duration {DURATION}s)")
        assert took <= DURATION + RETRY + 2
        states = {}
        for i in range(JOBS):
            job = Watcher(kube, ns, f"j{i}").terminal(timeout=120)
            states[f"j{i}"] = status(job)["state"]
        print("states:", states)
        assert set(states.values()) == {"Finished"}, states
        seen = recorder.stop()
    uids: dict[str, set[str]] = {}
    for obj in seen:
        uids.setdefault(obj["metadata"]["name"], set()).add(obj["metadata"]["uid"])
    twice = {n: u for n, u in uids.items() if len(u) > 1}
    print(f"{len(uids)} pod names, each with one UID: {sorted(uids)}")
    assert not twice, f"pods created more than once: {twice}"
    assert len(uids) >= 2 * JOBS  # a run pod and an archive pod per Job
    log_a, log_b = a.log_text(), b.log_text()
    b.stop()
    lines_b = log_b.splitlines()
    took_at = next(i for i, line in enumerate(lines_b) if "b-1 took the Lease" in line)
    assert not [line for line in lines_b[:took_at] if "created" in line or " -> " in line], (
        "the standby acted before it held the Lease"
    )
    assert "created" in log_a, "the leader made pods before it was killed"
    # A 403 answer, not the milliseconds of a log line's time ("16:25:36,403") or a hex name.
    assert not re.findall(r"(?<![\w,.])403(?!\w)", log_a + log_b)
    assert "Forbidden" not in log_a + log_b
