"""The App's status: whether Jobs can use it, and why not.

Owns: deciding an App's conditions (Ready) and observedGeneration from its parsed view.
Must not: do I/O or read the clock.
"""

from __future__ import annotations

from datetime import datetime

from ferry.api.app import AppStatus
from ferry.api.common import ConditionStatus
from ferry.api.reasons import Reason
from ferry.decisions import parameters
from ferry.decisions.conditions import set_condition
from ferry.decisions.observation import AppView


def app_status(
    view: AppView, current: AppStatus, generation: int, now: datetime
) -> tuple[AppStatus, bool]:
    """The App's new status and whether it differs from `current`."""
    if view.spec is None:
        problems = [view.error or "spec is invalid"]
    else:
        problems = parameters.validate_app(view.spec)
    if problems:
        status, reason, message = ConditionStatus.FALSE, Reason.INVALID_SPEC, "; ".join(problems)
    else:
        assert view.spec is not None
        status, reason = ConditionStatus.TRUE, Reason.VALID
        version = f" {view.spec.version}" if view.spec.version else ""
        counts = f"{len(view.spec.parameters)} parameter(s), {len(view.spec.inputs)} input(s)"
        message = f"App{version} is valid: {counts}"
    conditions, _ = set_condition(
        list(current.conditions), "Ready", status, reason, message, now, generation
    )
    new = current.model_copy(
        update={
            "conditions": conditions,
            "observed_generation": generation,
            "spec_hash": view.spec_hash,
        }
    )
    return new, new != current
