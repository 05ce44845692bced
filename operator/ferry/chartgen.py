"""Generates the `operator` section of the Helm chart's values.schema.json from OperatorConfig.

Owns: which OperatorConfig fields the chart exposes (CHART_FIELDS), their JSON Schema under
camelCase keys (type, bounds and description, taken from the model), the section's chart-only
keys, and the bounds where the chart is stricter than the operator. The rest of
values.schema.json is hand-written: `values_schema` keeps it as it is and replaces only
`properties.operator`. `python -m ferry.crdgen` writes the file with the CRDs and `--check`
covers it. Must not: talk to any server.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ferry.config import OperatorConfig

Schema = dict[str, Any]

#: The file, relative to the repository root.
VALUES_SCHEMA = Path("charts") / "ferry" / "values.schema.json"

#: The OperatorConfig fields the chart exposes, in the section's order. The chart's Deployment
#: (templates/deployment.yaml) sets each as FERRY_<FIELD> from .Values.operator.<camelField>;
#: tests/unit/test_chartgen.py fails when the template and this tuple disagree.
CHART_FIELDS: tuple[str, ...] = (
    "workers",
    "qps",
    "burst",
    "resync_seconds",
    "pod_start_grace_seconds",
    "archive_tries",
    "metrics_port",
    "health_port",
    "lease_duration_seconds",
    "lease_renew_deadline_seconds",
    "lease_retry_seconds",
)

#: Keys of the section that are not OperatorConfig fields.
CHART_ONLY: dict[str, Schema] = {
    # FERRY_LOG_LEVEL: read by `ferry operator run` before the config, not a setting.
    "logLevel": {"enum": ["DEBUG", "INFO", "WARNING", "ERROR"]},
    # The operator container's resources, given to the Deployment as they are.
    "resources": {"type": "object"},
}

#: Where the chart's minimum is stricter than the model's (the stricter of the two wins).
#: OperatorConfig allows port 0, which turns the metrics or health endpoint off (tests run so);
#: the chart's Deployment declares both as containerPorts (1-65535) and probes them (readiness
#: on metrics, liveness on /healthz), so a chart install needs real ports.
CHART_MINIMUM: dict[str, int] = {"metrics_port": 1, "health_port": 1}

#: JSON Schema keywords taken from a field's schema, in this order; `title` and `default` are
#: dropped (values.yaml holds the chart's defaults); any other keyword is an error, so that a
#: field of a shape not handled here fails generation instead of losing its constraints.
_KEEP = (
    "type",
    "enum",
    "minimum",
    "exclusiveMinimum",
    "maximum",
    "exclusiveMaximum",
    "multipleOf",
    "minLength",
    "maxLength",
    "pattern",
    "description",
)
_DROP = frozenset({"title", "default"})

_COMMENT = (
    "Generated from ferry.config.OperatorConfig by `make crds` (python -m ferry.crdgen, "
    "ferry/chartgen.py). Do not edit."
)


def camel(name: str) -> str:
    """resync_seconds -> resyncSeconds."""
    first, *rest = name.split("_")
    return first + "".join(part.capitalize() for part in rest)


def field_schema(model: type[BaseModel], name: str) -> Schema:
    """One field's schema for the chart: type, bounds, description."""
    raw: Schema = dict(model.model_json_schema(mode="validation")["properties"][name])
    unknown = set(raw) - set(_KEEP) - _DROP
    if unknown:
        raise ValueError(f"{model.__name__}.{name}: cannot carry {sorted(unknown)} to the chart")
    if name in CHART_MINIMUM:
        floor = CHART_MINIMUM[name]
        raw["minimum"] = max(raw.get("minimum", floor), floor)
    return {key: raw[key] for key in _KEEP if key in raw}


def operator_schema(model: type[BaseModel] = OperatorConfig) -> Schema:
    """The `operator` section of values.schema.json."""
    properties: Schema = {camel(name): field_schema(model, name) for name in CHART_FIELDS}
    if properties.keys() & CHART_ONLY.keys():
        raise ValueError(f"chart-only keys shadow fields: {properties.keys() & CHART_ONLY.keys()}")
    properties.update(copy.deepcopy(CHART_ONLY))
    return {
        "$comment": _COMMENT,
        "type": "object",
        "additionalProperties": False,
        "properties": properties,
    }


def values_schema(committed: str) -> str:
    """The committed values.schema.json with its operator section generated."""
    document = json.loads(committed)
    document["properties"]["operator"] = operator_schema()
    return json.dumps(document, indent=2) + "\n"
