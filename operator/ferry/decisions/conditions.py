"""Condition helpers following the Kubernetes API conventions.

Owns: setting one condition in a list so that lastTransitionTime moves only when the status
flips, and messages stay within bounds. Must not: read the clock (it is passed in).
"""

from __future__ import annotations

from datetime import datetime

from ferry.api.common import MAX_CONDITION_MESSAGE, Condition, ConditionStatus


def truncate(message: str, limit: int = MAX_CONDITION_MESSAGE) -> str:
    """Cut a message to `limit` characters, marking the cut."""
    if len(message) <= limit:
        return message
    marker = " …(truncated)"
    return message[: limit - len(marker)] + marker


def set_condition(
    conditions: list[Condition],
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    now: datetime,
    observed_generation: int | None = None,
) -> tuple[list[Condition], bool]:
    """Return the list with condition `type_` set, and whether anything changed.

    lastTransitionTime is `now` only when the condition is new or its status flips;
    a new reason or message alone keeps the earlier time.
    """
    message = truncate(message)
    existing = next((c for c in conditions if c.type == type_), None)
    if existing is not None and existing.status == status:
        transition = existing.last_transition_time
    else:
        transition = now
    new = Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=transition,
        observed_generation=observed_generation,
    )
    if existing == new:
        return conditions, False
    if existing is None:
        return [*conditions, new], True
    return [new if c.type == type_ else c for c in conditions], True


def find(conditions: list[Condition], type_: str) -> Condition | None:
    return next((c for c in conditions if c.type == type_), None)
