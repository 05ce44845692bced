"""The liveness probe fails only on a Job watch that stopped delivering, never because the
apiserver is down (a restart would not bring it back; CrashLoopBackOff would keep the operator
down for minutes after the apiserver returns)."""

from __future__ import annotations

from typing import Any

import pytest

from ferry.config import OperatorConfig
from ferry.handlers.operator import job_watch_probe
from ferry.handlers.reconciler import Reconciler
from tests.unit.factories import NOW, app_dict
from tests.unit.fakes import FakeKube, Obj, job_object

pytestmark = pytest.mark.unit


class _Reconciler:
    def __init__(self, answer: Any) -> None:
        self.answer = answer

    async def stale_watch_keys(self) -> list[tuple[str, str]]:
        if isinstance(self.answer, BaseException):
            raise self.answer
        result: list[tuple[str, str]] = self.answer
        return result


async def test_an_apiserver_that_does_not_answer_keeps_the_operator_alive() -> None:
    refused = ConnectionRefusedError(111, "Connection refused")
    said = await job_watch_probe(memo={"reconciler": _Reconciler(refused)})
    assert said.startswith("unchecked")


async def test_a_stale_watch_fails_the_probe() -> None:
    with pytest.raises(RuntimeError, match="stale"):
        await job_watch_probe(memo={"reconciler": _Reconciler([("ns", "j")])})


async def test_a_fresh_watch_passes() -> None:
    assert await job_watch_probe(memo={"reconciler": _Reconciler([])}) == "fresh"


# ------------------------------------------------------------ the real reconciler's judgement


class _Down(FakeKube):
    """The apiserver stops answering after the status write."""

    def get_job(self, namespace: str, name: str) -> Obj:
        raise ConnectionRefusedError(111, "Connection refused")


def _app() -> Obj:
    return {"metadata": {"name": "solver", "namespace": "ns"}, "spec": app_dict()}


async def _written(kube: FakeKube) -> tuple[Reconciler, list[float]]:
    """A reconciler that wrote Job j's status once (its watch event not delivered yet), and
    the clock of its watch check."""
    rec = Reconciler(kube, OperatorConfig(status_hold_seconds=0), clock=lambda: NOW)
    clock = [0.0]
    rec.metrics.watch.clock = lambda: clock[0]
    rec.apps[("ns", "solver")] = _app()
    rec.job_event("ADDED", job_object({}))
    await rec.reconcile(("ns", "j"))
    assert [e for e in kube.log if e[0] == "status"], kube.log
    return rec, clock


async def test_a_write_the_watch_never_delivers_fails_the_probe() -> None:
    kube = FakeKube(job_object({}), [])
    rec, clock = await _written(kube)
    try:
        clock[0] = 60.0
        assert await job_watch_probe(memo={"reconciler": rec}) == "fresh"
        clock[0] = 121.0
        with pytest.raises(RuntimeError, match=r"stale.*ns"):
            await job_watch_probe(memo={"reconciler": rec})
    finally:
        await rec.stop()


async def test_a_write_the_watch_delivers_keeps_the_probe_passing() -> None:
    kube = FakeKube(job_object({}), [])
    rec, clock = await _written(kube)
    try:
        rec.job_event("MODIFIED", kube.get_job("ns", "j"))
        clock[0] = 1000.0
        assert await job_watch_probe(memo={"reconciler": rec}) == "fresh"
    finally:
        await rec.stop()


async def test_a_stale_looking_watch_with_the_apiserver_down_is_unchecked() -> None:
    """The judgement needs no API call; the one read made when something looks stale tells
    an apiserver that went down (the watch could not deliver) from a dead watch."""
    kube = _Down(job_object({}), [])
    rec, clock = await _written(kube)
    try:
        clock[0] = 121.0
        said = await job_watch_probe(memo={"reconciler": rec})
        assert said.startswith("unchecked")
    finally:
        await rec.stop()
