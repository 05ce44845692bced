"""The liveness probe fails only on a Job watch that stopped delivering, never because the
apiserver is down (a restart would not bring it back; CrashLoopBackOff would keep the operator
down for minutes after the apiserver returns)."""

from __future__ import annotations

from typing import Any

import pytest

from ferry.handlers.operator import job_watch_probe

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
