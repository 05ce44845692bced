"""The Argo CD health check (charts/ferry/health/argocd-job.lua), run in a real Lua runtime
against Job objects whose statuses are built with Ferry's own models."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from lupa import LuaRuntime  # type: ignore[import-untyped]

from ferry.api.job import JobStatus, State

pytestmark = pytest.mark.unit

LUA = (Path(__file__).resolve().parents[2] / "charts/ferry/health/argocd-job.lua").read_text()
NOW = datetime(2026, 11, 21, tzinfo=UTC)


def health(obj: dict[str, Any]) -> tuple[str, str]:
    lua = LuaRuntime(unpack_returned_tuples=True)
    check = lua.eval(f"function(obj) {LUA} end")
    result = check(lua.table_from(_to_lua(lua, obj)))
    return str(result["status"]), str(result["message"])


def _to_lua(lua: LuaRuntime, value: Any) -> Any:
    if isinstance(value, dict):
        return lua.table_from({k: _to_lua(lua, v) for k, v in value.items()})
    if isinstance(value, list):
        return lua.table_from([_to_lua(lua, v) for v in value])
    return value


def job(
    state: State | None, reason: str = "", generation: int = 1, observed: int = 1
) -> dict[str, Any]:
    obj: dict[str, Any] = {"metadata": {"name": "x", "generation": generation}, "spec": {}}
    if state is not None:
        status = JobStatus(
            state=state, reason=reason or state.value, message="m", observed_generation=observed
        )
        obj["status"] = status.wire()
    return obj


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (State.FINISHED, "Healthy"),
        (State.FAILED, "Degraded"),
        (State.TIMED_OUT, "Degraded"),
        (State.CANCELLED, "Degraded"),
        (State.SUSPENDED, "Suspended"),
        (State.RUNNING, "Progressing"),
        (State.BLOCKED, "Progressing"),
        (State.RETRYING, "Progressing"),
        (State.QUEUED, "Progressing"),
        (State.ARCHIVING, "Progressing"),
    ],
)
def test_state_maps_to_health(state: State, expected: str) -> None:
    status, message = health(job(state, reason="SomeReason"))
    assert status == expected
    assert message.startswith(f"{state.value} (SomeReason)")


def test_every_state_has_a_health() -> None:
    seen = {health(job(s))[0] for s in State}
    assert seen <= {"Healthy", "Degraded", "Suspended", "Progressing"}


def test_no_status_yet_is_progressing() -> None:
    assert health(job(None))[0] == "Progressing"


def test_status_older_than_spec_is_progressing() -> None:
    status, message = health(job(State.FINISHED, generation=3, observed=2))
    assert status == "Progressing"
    assert "latest spec" in message
