"""Condition helpers: lastTransitionTime moves only when the status flips."""

from __future__ import annotations

import pytest

from ferry.api.common import MAX_CONDITION_MESSAGE, Condition, ConditionStatus
from ferry.decisions.conditions import find, set_condition, truncate

from .factories import NOW, at

pytestmark = pytest.mark.unit

T, F, U = ConditionStatus.TRUE, ConditionStatus.FALSE, ConditionStatus.UNKNOWN


def one(status: ConditionStatus = T, reason: str = "Done", message: str = "m") -> list[Condition]:
    conds, changed = set_condition([], "Ready", status, reason, message, NOW, 1)
    assert changed
    return conds


def test_new_condition_gets_now() -> None:
    (c,) = one()
    assert (c.type, c.status, c.reason, c.message) == ("Ready", T, "Done", "m")
    assert c.last_transition_time == NOW
    assert c.observed_generation == 1


@pytest.mark.parametrize(("old", "new"), [(T, F), (F, T), (U, T), (T, U)])
def test_status_flip_moves_the_time(old: ConditionStatus, new: ConditionStatus) -> None:
    conds, changed = set_condition(one(old), "Ready", new, "Done", "m", at(60), 1)
    assert changed
    assert conds[0].status == new
    assert conds[0].last_transition_time == at(60)


@pytest.mark.parametrize(
    ("reason", "message", "generation"),
    [("Other", "m", 1), ("Done", "new message", 1), ("Other", "x", 1), ("Done", "m", 2)],
    ids=["reason", "message", "both", "generation"],
)
def test_same_status_keeps_the_time(reason: str, message: str, generation: int) -> None:
    conds, changed = set_condition(one(), "Ready", T, reason, message, at(60), generation)
    assert changed
    assert conds[0].last_transition_time == NOW
    assert (conds[0].reason, conds[0].message) == (reason, message)
    assert conds[0].observed_generation == generation


def test_unchanged_returns_changed_false_and_the_same_list() -> None:
    before = one()
    after, changed = set_condition(before, "Ready", T, "Done", "m", at(60), 1)
    assert not changed
    assert after == before


def test_other_conditions_are_kept_in_place() -> None:
    conds = one()
    conds, _ = set_condition(conds, "Stalled", F, "Fine", "", NOW, 1)
    conds, _ = set_condition(conds, "Ready", F, "Broken", "", at(1), 1)
    assert [c.type for c in conds] == ["Ready", "Stalled"]
    stalled = find(conds, "Stalled")
    assert stalled is not None
    assert stalled.status == F
    assert find(conds, "Nope") is None


def test_long_messages_are_truncated() -> None:
    message = "x" * (MAX_CONDITION_MESSAGE * 3)
    (c,) = one(message=message)
    assert len(c.message) == MAX_CONDITION_MESSAGE
    assert c.message.endswith("(truncated)")
    # Setting the same long message again is no change.
    _, changed = set_condition([c], "Ready", T, "Done", message, at(5), 1)
    assert not changed


@pytest.mark.parametrize("size", [0, 1, MAX_CONDITION_MESSAGE - 1, MAX_CONDITION_MESSAGE])
def test_short_messages_are_untouched(size: int) -> None:
    assert truncate("y" * size) == "y" * size


def test_truncate_with_a_custom_limit() -> None:
    out = truncate("z" * 100, 50)
    assert len(out) == 50
    assert out.startswith("z")
