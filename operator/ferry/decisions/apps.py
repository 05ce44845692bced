"""The App's status: whether Jobs can use it, and why not, in the kstatus vocabulary.

Owns: deciding an App's conditions and observedGeneration from its parsed view. The kstatus
trio (as Flux and `kubectl wait` read it): `Ready` True when the App is valid; `Stalled` True
when it is invalid (only a new spec can fix it); `Reconciling` True while the status describes
an older generation than the spec, i.e. while Ferry has not judged the latest spec. Judging
is instantaneous (validation reads only the spec), so the status Ferry writes always judges
the generation it names and `Reconciling` is False in it; until that write, the conditions and
`observedGeneration` of the previous one stand and the lag shows in `observedGeneration`
(which kstatus and the Argo CD check read first). Must not: do I/O or read the clock.
"""

from __future__ import annotations

from datetime import datetime

from ferry.api.app import AppStatus
from ferry.api.common import ConditionStatus
from ferry.api.job import ConditionType
from ferry.api.reasons import Reason
from ferry.decisions import parameters
from ferry.decisions.conditions import set_condition
from ferry.decisions.observation import AppView


def app_status(
    view: AppView, current: AppStatus, generation: int, now: datetime
) -> tuple[AppStatus, bool]:
    """The App's new status (judging `generation`) and whether it differs from `current`."""
    if view.spec is None:
        problems = [view.error or "spec is invalid"]
    else:
        problems = parameters.validate_app(view.spec)
    true, false = ConditionStatus.TRUE, ConditionStatus.FALSE
    if problems:
        valid, reason, message = False, Reason.INVALID_SPEC, "; ".join(problems)
    else:
        assert view.spec is not None
        valid, reason = True, Reason.VALID
        version = f" {view.spec.version}" if view.spec.version else ""
        counts = f"{len(view.spec.parameters)} parameter(s), {len(view.spec.inputs)} input(s)"
        message = f"App{version} is valid: {counts}"
    conditions = list(current.conditions)
    for type_, status in (
        (ConditionType.RECONCILING, false),
        (ConditionType.STALLED, false if valid else true),
        (ConditionType.READY, true if valid else false),
    ):
        conditions, _ = set_condition(
            conditions, type_.value, status, reason.value, message, now, generation
        )
    new = current.model_copy(
        update={
            "conditions": conditions,
            "observed_generation": generation,
            "spec_hash": view.spec_hash,
        }
    )
    return new, new != current
