"""The chart's values.schema.json: its operator section derived from OperatorConfig, and the
Deployment template setting FERRY_* from exactly the fields that section declares."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any

import pytest
import yaml
from pydantic import Field

from ferry import chartgen
from ferry.config import OperatorConfig

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "ferry"
COMMITTED = (ROOT / chartgen.VALUES_SCHEMA).read_text()
DEPLOYMENT = (CHART / "templates" / "deployment.yaml").read_text()

_ENV = re.compile(r"\{name: (FERRY_\w+), value: \{\{(.*?)\}\}\}")
_VALUES_PATH = re.compile(r"\.Values((?:\.\w+)+)")


def ferry_env(template: str) -> dict[str, list[str]]:
    """FERRY_* variables the template sets, each with the .Values paths its value reads."""
    env: dict[str, list[str]] = {}
    for name, expression in _ENV.findall(template):
        assert name not in env, f"{name} set twice"
        env[name] = [p.lstrip(".") for p in _VALUES_PATH.findall(expression)]
    return env


def template_mismatches(template: str, section: dict[str, Any]) -> list[str]:
    """Where the template's FERRY_* variables from .Values.operator and the generated section
    disagree: a variable for a field (or key) the section does not declare, or a declared
    field that no variable carries to the operator."""
    problems = []
    declared = section["properties"]
    from_operator = {
        var: paths[0].removeprefix("operator.")
        for var, paths in ferry_env(template).items()
        if paths and paths[0].startswith("operator.")
    }
    for var, key in from_operator.items():
        field = var.removeprefix("FERRY_").lower()
        if field in OperatorConfig.model_fields:
            if field not in chartgen.CHART_FIELDS:
                problems.append(f"{var}: {field} is not in chartgen.CHART_FIELDS")
            elif key != chartgen.camel(field):
                problems.append(f"{var}: set from operator.{key}, not {chartgen.camel(field)}")
        elif key not in chartgen.CHART_ONLY:
            problems.append(f"{var}: neither an OperatorConfig field nor a chart-only key")
        if key not in declared:
            problems.append(f"{var}: operator.{key} is not in the schema")
    for field in chartgen.CHART_FIELDS:
        var = f"FERRY_{field.upper()}"
        if from_operator.get(var) != chartgen.camel(field):
            problems.append(f"{field}: the template does not set {var} from operator.*")
    return problems


# --------------------------------------------------------------------------- (a) committed


def test_committed_operator_section_is_the_generated_one() -> None:
    committed = json.loads(COMMITTED)
    assert committed["properties"]["operator"] == chartgen.operator_schema()
    assert chartgen.values_schema(COMMITTED) == COMMITTED, "run `python -m ferry.crdgen`"


def test_only_the_operator_section_is_generated() -> None:
    document = json.loads(COMMITTED)
    document["properties"]["operator"] = {"type": "object"}
    document["properties"]["image"]["properties"]["tag"]["minLength"] = 3
    regenerated = json.loads(chartgen.values_schema(json.dumps(document)))
    assert list(regenerated["properties"]) == list(document["properties"])
    assert regenerated["properties"]["image"]["properties"]["tag"]["minLength"] == 3
    assert regenerated["properties"]["operator"] == chartgen.operator_schema()
    del regenerated["properties"]["operator"], document["properties"]["operator"]
    assert regenerated == document


def test_the_section_as_generated() -> None:
    section = chartgen.operator_schema()
    assert section["additionalProperties"] is False
    properties = section["properties"]
    assert list(properties) == [
        "workers",
        "qps",
        "burst",
        "resyncSeconds",
        "statusHoldSeconds",
        "statusHoldBusySeconds",
        "podStartGraceSeconds",
        "archiveTries",
        "outageDeadlineSeconds",
        "outageBackoffSeconds",
        "outageBackoffMaxSeconds",
        "stagingDeadlineSeconds",
        "archivePodDeadlineSeconds",
        "podTerminatingGraceSeconds",
        "retryBackoffBaseSeconds",
        "retryBackoffMaxSeconds",
        "parentGraceSeconds",
        "allowedStoreEndpoints",
        "metricsPort",
        "healthPort",
        "leaseDurationSeconds",
        "leaseRenewDeadlineSeconds",
        "leaseRetrySeconds",
        "mpiWorkspaceAccessMode",
        "logLevel",
        "resources",
    ]
    assert properties["mpiWorkspaceAccessMode"]["enum"] == ["ReadWriteOnce", "ReadWriteMany"]
    assert properties["allowedStoreEndpoints"] == {
        "type": "array",
        "items": {"type": "string"},
        "description": OperatorConfig.model_fields["allowed_store_endpoints"].description,
    }
    assert properties["workers"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 64,
        "description": OperatorConfig.model_fields["workers"].description,
    }
    assert properties["qps"]["type"] == "number"
    assert properties["qps"]["exclusiveMinimum"] == 0
    assert "minimum" not in properties["qps"]
    assert properties["logLevel"] == {
        "enum": ["DEBUG", "INFO", "WARNING", "ERROR"],
        "description": "The operator's log level.",
    }
    assert properties["resources"] == {
        "type": "object",
        "description": "The operator container's resources.",
    }
    for key in properties:
        assert "default" not in properties[key], key  # values.yaml holds the chart's defaults
        assert "title" not in properties[key], key


def test_ports_keep_the_charts_stricter_minimum() -> None:
    """The operator takes 0 as "off"; the chart's containerPorts and probes need a port."""
    properties = chartgen.operator_schema()["properties"]
    for field in ("metrics_port", "health_port"):
        raw = OperatorConfig.model_json_schema()["properties"][field]
        assert raw["minimum"] == 0
        assert properties[chartgen.camel(field)]["minimum"] == 1
        assert properties[chartgen.camel(field)]["maximum"] == raw["maximum"] == 65535


# --------------------------------------------------------------------------- (b) derived


class _Changed(OperatorConfig):
    """OperatorConfig with some bounds and a description changed."""

    workers: Annotated[int, Field(ge=2, le=32)] = Field(default=8, description="Changed.")
    qps: Annotated[float, Field(ge=1, le=500)] = Field(default=50.0)
    metrics_port: Annotated[int, Field(ge=1024, le=49151)] = Field(default=8080)


def test_bounds_and_descriptions_come_from_the_model() -> None:
    before = chartgen.operator_schema()["properties"]
    after = chartgen.operator_schema(_Changed)["properties"]
    assert after["workers"] == {
        "type": "integer",
        "minimum": 2,
        "maximum": 32,
        "description": "Changed.",
    }
    assert after["qps"] == {"type": "number", "minimum": 1, "maximum": 500}
    # The model's stricter minimum wins over the chart's floor of 1.
    assert after["metricsPort"] == {"type": "integer", "minimum": 1024, "maximum": 49151}
    unchanged = set(before) - {"workers", "qps", "metricsPort"}
    assert {k: after[k] for k in unchanged} == {k: before[k] for k in unchanged}


def test_a_field_the_chart_cannot_express_fails_generation() -> None:
    class Nullable(OperatorConfig):
        workers: int | None = Field(default=None)  # type: ignore[assignment]

    with pytest.raises(ValueError, match=r"Nullable\.workers: cannot carry \['anyOf'\]"):
        chartgen.operator_schema(Nullable)


@pytest.mark.parametrize(
    ("name", "key"),
    [("workers", "workers"), ("resync_seconds", "resyncSeconds"), ("qps", "qps")],
)
def test_camel(name: str, key: str) -> None:
    assert chartgen.camel(name) == key


# --------------------------------------------------------------------------- (c) template


def test_deployment_sets_ferry_variables_for_exactly_the_generated_fields() -> None:
    assert template_mismatches(DEPLOYMENT, chartgen.operator_schema()) == []


def test_a_variable_for_a_field_not_generated_is_caught() -> None:
    line = "            - {name: FERRY_BURST, value: {{ .Values.operator.burst | quote }}}\n"
    assert line in DEPLOYMENT
    added = DEPLOYMENT.replace(
        line,
        line + "            - {name: FERRY_LIST_CHUNK_SIZE, "
        "value: {{ .Values.operator.listChunkSize | quote }}}\n",
    )
    assert template_mismatches(added, chartgen.operator_schema()) == [
        "FERRY_LIST_CHUNK_SIZE: list_chunk_size is not in chartgen.CHART_FIELDS",
        "FERRY_LIST_CHUNK_SIZE: operator.listChunkSize is not in the schema",
    ]


def test_a_generated_field_the_template_does_not_set_is_caught() -> None:
    line = "            - {name: FERRY_BURST, value: {{ .Values.operator.burst | quote }}}\n"
    removed = DEPLOYMENT.replace(line, "")
    assert template_mismatches(removed, chartgen.operator_schema()) == [
        "burst: the template does not set FERRY_BURST from operator.*"
    ]


def test_ferry_variables_from_other_sections_are_not_chart_fields() -> None:
    """FERRY_* set from image, objectStore, ... are settings with hand-written schemas."""
    for var, paths in ferry_env(DEPLOYMENT).items():
        if paths and not paths[0].startswith("operator."):
            field = var.removeprefix("FERRY_").lower()
            assert field in OperatorConfig.model_fields, var
            assert field not in chartgen.CHART_FIELDS, var


def _declared(schema: dict[str, Any], path: str) -> bool:
    node = schema
    for key in path.split("."):
        properties = node.get("properties")
        if properties is None:
            return True  # a free-form object (resources, nodeSelector, ...)
        if key not in properties:
            return False
        node = properties[key]
    return True


def test_every_value_the_templates_read_is_in_the_schema() -> None:
    schema = json.loads(COMMITTED)
    read = {
        path.lstrip(".")
        for template in (CHART / "templates").iterdir()
        for path in _VALUES_PATH.findall(template.read_text())
    }
    assert "operator.resources" in read
    assert sorted(p for p in read if not _declared(schema, p)) == []
    operator_keys = {p.split(".")[1] for p in read if p.startswith("operator.")}
    assert operator_keys == set(chartgen.operator_schema()["properties"])


def test_values_yaml_operator_defaults_fit_the_section_and_the_operator() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())["operator"]
    properties = chartgen.operator_schema()["properties"]
    assert set(values) == set(properties)
    for key, value in values.items():
        schema = properties[key]
        if "enum" in schema:
            assert value in schema["enum"], key
        elif schema["type"] == "object":
            assert isinstance(value, dict), key
        elif schema["type"] == "array":
            assert isinstance(value, list), key
            assert all(isinstance(v, str) for v in value), key
        else:
            assert isinstance(value, int if schema["type"] == "integer" else int | float), key
            assert value >= schema.get("minimum", value), key
            assert value <= schema.get("maximum", value), key
            assert value > schema.get("exclusiveMinimum", value - 1), key
    OperatorConfig.model_validate({f: values[chartgen.camel(f)] for f in chartgen.CHART_FIELDS})


# --------------------------------------------------------------------------- README table

README = (ROOT / chartgen.CHART_README).read_text()
VALUES = (CHART / "values.yaml").read_text()


def test_committed_readme_table_is_the_generated_one() -> None:
    assert chartgen.chart_readme(README, COMMITTED, VALUES) == README, "run `make crds`"


def test_the_table_has_every_leaf_with_its_default() -> None:
    table = chartgen.values_table(COMMITTED, VALUES)
    assert (
        "| `metrics.serviceMonitor.enabled` | boolean | `false` | A Prometheus Operator "
        "ServiceMonitor" in table
    )
    assert "| `operator.workers` | integer | `8` | Jobs reconciled concurrently. |" in table
    assert "| `image.pullPolicy` | one of `Always`, `IfNotPresent`, `Never` |" in table
    rows = table.splitlines()[2:]
    assert len(rows) == len({row.split(" | ")[0] for row in rows})


def test_a_value_without_description_fails_generation() -> None:
    document = json.loads(COMMITTED)
    monitor = document["properties"]["metrics"]["properties"]["serviceMonitor"]
    del monitor["properties"]["interval"]["description"]
    with pytest.raises(ValueError, match=r"metrics\.serviceMonitor\.interval has no description"):
        chartgen.values_table(json.dumps(document), VALUES)


def test_a_values_key_missing_from_the_schema_fails_generation() -> None:
    values = VALUES.replace("  serviceMonitor:\n", "  serviceMonitor:\n    honorLabels: true\n")
    assert values != VALUES
    with pytest.raises(ValueError, match="honorLabels"):
        chartgen.values_table(COMMITTED, values)


def test_the_readme_outside_the_table_is_kept_and_a_stale_table_is_replaced() -> None:
    stale = README.replace("| `affinity` | object |", "| `affinity` | string |")
    assert stale != README
    assert chartgen.chart_readme(stale, COMMITTED, VALUES) == README
    edited = README.replace("# Ferry Helm chart", "# The Ferry chart")
    assert chartgen.chart_readme(edited, COMMITTED, VALUES).startswith("# The Ferry chart")
    with pytest.raises(ValueError, match="markers"):
        chartgen.chart_readme(README.replace(chartgen.TABLE_END, ""), COMMITTED, VALUES)
