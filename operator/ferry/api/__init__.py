"""Ferry's API (group ferry.dev, version v1alpha1): the single source of truth for the CRDs."""

from ferry.api.app import App, AppSpec, AppStatus, Parameter, ParameterType
from ferry.api.common import API_VERSION, GROUP, VERSION, Condition, ConditionStatus
from ferry.api.job import (
    TERMINAL_STATES,
    ConditionType,
    Job,
    JobSpec,
    JobStatus,
    State,
)

__all__ = [
    "API_VERSION",
    "GROUP",
    "TERMINAL_STATES",
    "VERSION",
    "App",
    "AppSpec",
    "AppStatus",
    "Condition",
    "ConditionStatus",
    "ConditionType",
    "Job",
    "JobSpec",
    "JobStatus",
    "Parameter",
    "ParameterType",
    "State",
]
