"""The Argo CD health checks (charts/ferry/health/argocd-job.lua and argocd-app.lua), run in a
real Lua runtime against Jobs and Apps whose statuses are built with Ferry's own models and
decisions."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from lupa import LuaRuntime  # type: ignore[import-untyped]

from ferry.api.app import AppSpec, AppStatus
from ferry.api.job import JobStatus, State
from ferry.decisions.apps import app_status
from tests.unit.factories import app_dict, app_view

pytestmark = pytest.mark.unit

HEALTH = Path(__file__).resolve().parents[2] / "charts/ferry/health"
LUA = (HEALTH / "argocd-job.lua").read_text()
APP_LUA = (HEALTH / "argocd-app.lua").read_text()
NOW = datetime(2026, 11, 21, tzinfo=UTC)


def health(obj: dict[str, Any], script: str = LUA) -> tuple[str, str]:
    lua = LuaRuntime(unpack_returned_tuples=True)
    check = lua.eval(f"function(obj) {script} end")
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


# --------------------------------------------------------------------------- App


def app(spec: AppSpec | None, generation: int = 1, judged: int | None = 1) -> dict[str, Any]:
    """An App object; with `judged`, its status as Ferry decides it for that generation."""
    obj: dict[str, Any] = {"metadata": {"name": "sim", "generation": generation}, "spec": {}}
    if judged is not None:
        status, _ = app_status(app_view(spec), AppStatus(), judged, NOW)
        obj["status"] = status.wire()
    return obj


def invalid() -> AppSpec:
    return AppSpec.model_validate(app_dict(args=["{{params.stepz}}"]))


def test_a_valid_app_is_healthy() -> None:
    status, message = health(app(None), APP_LUA)
    assert status == "Healthy"
    assert message.startswith("Valid")


def test_an_invalid_app_is_degraded_and_says_why() -> None:
    status, message = health(app(invalid()), APP_LUA)
    assert status == "Degraded"
    assert message.startswith("InvalidSpec")
    assert "stepz" in message


def test_an_app_ferry_has_not_judged_is_progressing() -> None:
    assert health(app(None, judged=None), APP_LUA)[0] == "Progressing"


def test_an_app_judged_for_an_older_spec_is_progressing() -> None:
    status, message = health(app(invalid(), generation=2, judged=1), APP_LUA)
    assert status == "Progressing"
    assert "latest spec" in message


def test_an_app_judged_by_a_ferry_without_stalled_is_degraded_when_not_ready() -> None:
    obj = app(invalid())
    obj["status"]["conditions"] = [c for c in obj["status"]["conditions"] if c["type"] == "Ready"]
    assert health(obj, APP_LUA)[0] == "Degraded"
