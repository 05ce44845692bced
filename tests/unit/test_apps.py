"""The App's conditions: the kstatus trio (Reconciling, Stalled, Ready) decided from its spec."""

from __future__ import annotations

import pytest

from ferry.api.app import AppSpec, AppStatus
from ferry.api.common import ConditionStatus
from ferry.decisions.apps import app_status
from tests.unit.factories import NOW, app_dict, app_view, at

pytestmark = pytest.mark.unit

T, F = ConditionStatus.TRUE, ConditionStatus.FALSE


def trio(status: AppStatus) -> dict[str, tuple[ConditionStatus, str]]:
    return {c.type: (c.status, c.reason) for c in status.conditions}


def invalid_spec() -> AppSpec:
    return AppSpec.model_validate(app_dict(args=["{{params.stepz}}"]))


@pytest.mark.parametrize(
    ("spec", "error", "expected"),
    [
        (
            None,
            "",
            {"Reconciling": (F, "Valid"), "Stalled": (F, "Valid"), "Ready": (T, "Valid")},
        ),
        (
            "invalid",
            "",
            {
                "Reconciling": (F, "InvalidSpec"),
                "Stalled": (T, "InvalidSpec"),
                "Ready": (F, "InvalidSpec"),
            },
        ),
        (
            "unparsed",
            "spec.image: field required",
            {
                "Reconciling": (F, "InvalidSpec"),
                "Stalled": (T, "InvalidSpec"),
                "Ready": (F, "InvalidSpec"),
            },
        ),
    ],
    ids=["valid", "invalid", "unparsed"],
)
def test_the_kstatus_trio(
    spec: str | None, error: str, expected: dict[str, tuple[ConditionStatus, str]]
) -> None:
    if spec == "invalid":
        view = app_view(invalid_spec())
    elif spec == "unparsed":
        view = app_view(None, error=error)
    else:
        view = app_view()
    status, changed = app_status(view, AppStatus(), 3, NOW)
    assert changed
    assert trio(status) == expected
    assert status.observed_generation == 3
    assert {c.observed_generation for c in status.conditions} == {3}
    assert {c.last_transition_time for c in status.conditions} == {NOW}


def test_an_invalid_app_says_why_in_every_condition() -> None:
    status, _ = app_status(app_view(invalid_spec()), AppStatus(), 1, NOW)
    assert all("stepz" in c.message for c in status.conditions)


def test_judging_the_same_spec_again_changes_nothing() -> None:
    first, _ = app_status(app_view(), AppStatus(), 1, NOW)
    again, changed = app_status(app_view(), first, 1, at(60))
    assert not changed
    assert again == first


def test_a_new_generation_is_judged_and_only_flips_move_transition_times() -> None:
    """Reconciling stays False (judging is immediate), so its time stays; Ready and Stalled
    flip when the spec turns invalid."""
    first, _ = app_status(app_view(), AppStatus(), 1, NOW)
    second, changed = app_status(app_view(invalid_spec()), first, 2, at(60))
    assert changed
    assert second.observed_generation == 2
    times = {c.type: c.last_transition_time for c in second.conditions}
    assert times == {"Reconciling": NOW, "Stalled": at(60), "Ready": at(60)}
    third, _ = app_status(app_view(), second, 3, at(120))
    assert trio(third)["Ready"] == (T, "Valid")
    assert trio(third)["Stalled"] == (F, "Valid")


def test_an_app_judged_before_the_trio_gains_it() -> None:
    """An App whose status an older Ferry wrote (Ready only) gets Reconciling and Stalled, its
    Ready kept with its transition time."""
    old, _ = app_status(app_view(), AppStatus(), 1, NOW)
    ready_only = old.model_copy(update={"conditions": [old.conditions[-1]]})
    assert [c.type for c in ready_only.conditions] == ["Ready"]
    new, changed = app_status(app_view(), ready_only, 1, at(60))
    assert changed
    assert trio(new)["Stalled"] == (F, "Valid")
    ready = next(c for c in new.conditions if c.type == "Ready")
    assert ready.last_transition_time == NOW
