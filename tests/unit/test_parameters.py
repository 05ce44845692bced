"""An App's declarations are checked, and a Job's parameter values resolved against them."""

from __future__ import annotations

from typing import Any

import pytest

from ferry.api.app import Parameter
from ferry.decisions.parameters import (
    check_value,
    format_value,
    rendered_strings,
    resolve,
    validate_app,
)

from .factories import app_spec, job_spec

pytestmark = pytest.mark.unit

PARAMS: list[dict[str, Any]] = [
    {"name": "steps", "type": "integer", "default": 100, "minimum": 1, "maximum": 1000},
    {"name": "solver", "type": "string", "enum": ["direct", "iterative"], "required": True},
    {"name": "tol", "type": "number", "minimum": 0, "maximum": 1},
    {"name": "verbose", "type": "boolean", "default": False},
    {"name": "tag", "type": "string", "pattern": "[a-z]+-[0-9]+"},
]
APP = app_spec(parameters=PARAMS, args=["{{params.steps}}"])


def resolved(params: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    return resolve(APP, job_spec(parameters=params))


def test_defaults_applied_and_values_kept() -> None:
    values, errors = resolved({"solver": "direct", "tol": 0.5})
    assert errors == []
    assert values == {"solver": "direct", "tol": 0.5, "steps": 100, "verbose": False}


@pytest.mark.parametrize(
    ("params", "field", "needle"),
    [
        ({"solver": "direct", "steps": "many"}, "steps", "integer"),
        ({"solver": "direct", "steps": 2.5}, "steps", "integer"),
        ({"solver": "direct", "steps": True}, "steps", "integer"),
        ({"solver": "direct", "tol": "small"}, "tol", "number"),
        ({"solver": "direct", "tol": False}, "tol", "number"),
        ({"solver": "direct", "verbose": "yes"}, "verbose", "boolean"),
        ({"solver": "direct", "verbose": 1}, "verbose", "boolean"),
        ({"solver": 3}, "solver", "string"),
        ({"solver": "direct", "steps": 0}, "steps", ">= 1"),
        ({"solver": "direct", "steps": 1001}, "steps", "<= 1000"),
        ({"solver": "direct", "tol": 1.5}, "tol", "<= 1"),
        ({"solver": "direct", "tol": -0.1}, "tol", ">= 0"),
        ({"solver": "cholesky"}, "solver", "one of"),
        ({"solver": "direct", "tag": "ABC-1"}, "tag", "pattern"),
        ({"solver": "direct", "tag": "abc-1x"}, "tag", "pattern"),
        ({"solver": "direct", "ghost": 1}, "ghost", "declares no parameter"),
        ({}, "solver", "required"),
    ],
    ids=[
        "int-as-string",
        "int-fraction",
        "int-as-bool",
        "number-as-string",
        "number-as-bool",
        "bool-as-string",
        "bool-as-int",
        "string-as-int",
        "below-minimum",
        "above-maximum",
        "number-above-maximum",
        "number-below-minimum",
        "not-in-enum",
        "pattern-mismatch",
        "pattern-must-match-in-full",
        "unknown",
        "missing-required",
    ],
)
def test_bad_values_are_errors_naming_the_field(
    params: dict[str, Any], field: str, needle: str
) -> None:
    values, errors = resolved(params)
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"spec.parameters.{field}:")
    assert needle in errors[0]
    assert field not in values  # a refused value is not replaced by the default


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ({"name": "n", "type": "integer"}, 5.0),
        ({"name": "n", "type": "integer", "maximum": 5}, 5),
        ({"name": "n", "type": "integer", "minimum": 5}, 5),
        ({"name": "x", "type": "number"}, 3),
        ({"name": "x", "type": "number"}, 3.25),
        ({"name": "s", "type": "string", "pattern": "^a.c$"}, "abc"),
        ({"name": "s"}, "anything"),
        ({"name": "b", "type": "boolean", "enum": [True]}, True),
    ],
)
def test_good_values_are_accepted(param: dict[str, Any], value: Any) -> None:
    assert check_value(Parameter.model_validate(param), value) is None


def test_integer_given_as_float_is_accepted_and_rendered_as_an_integer() -> None:
    values, errors = resolved({"solver": "direct", "steps": 5.0})
    assert errors == []
    assert rendered_strings(APP, values)["steps"] == "5"


@pytest.mark.parametrize(
    ("param", "value", "text"),
    [
        ({"name": "b", "type": "boolean"}, True, "true"),
        ({"name": "b", "type": "boolean"}, False, "false"),
        ({"name": "n", "type": "integer"}, 7.0, "7"),
        ({"name": "x", "type": "number"}, 0.5, "0.5"),
        ({"name": "s"}, "a b", "a b"),
    ],
)
def test_format_value(param: dict[str, Any], value: Any, text: str) -> None:
    assert format_value(Parameter.model_validate(param), value) == text


def test_inputs_are_checked_against_the_app() -> None:
    app = app_spec(inputs=[{"name": "model"}, {"name": "extra", "required": False}])
    _, errors = resolve(app, job_spec(inputs=[]))
    assert errors == ["spec.inputs: required input 'model' is missing"]
    unknown = [
        {"name": "model", "source": {"inline": "m"}},
        {"name": "bogus", "source": {"inline": "b"}},
    ]
    _, errors = resolve(app, job_spec(inputs=unknown))
    assert len(errors) == 1
    assert errors[0].startswith("spec.inputs[1].name")
    assert "bogus" in errors[0]


def test_a_sound_app_has_no_problems() -> None:
    assert validate_app(APP) == []
    assert validate_app(app_spec()) == []


@pytest.mark.parametrize(
    ("overrides", "field", "needle"),
    [
        ({"args": ["{{params.ghost}}"]}, "spec.args[0]", "params.ghost"),
        ({"command": ["run", "{{inputs.ghost}}"]}, "spec.command[1]", "inputs.ghost"),
        ({"env": [{"name": "X", "value": "{{params.nope}}"}]}, "spec.env[X].value", "nope"),
        ({"args": ["{{ 1+1 }}"]}, "spec.args[0]", "1+1"),
        ({"args": ["{{params.steps"]}, "spec.args[0]", "unbalanced"),
        (
            {"parameters": [{"name": "p", "pattern": "(unclosed"}], "args": []},
            "spec.parameters[p].pattern",
            "regular expression",
        ),
        (
            {"parameters": [{"name": "p", "type": "integer", "default": 50, "maximum": 10}]},
            "spec.parameters[p].default",
            "<= 10",
        ),
        (
            {"parameters": [{"name": "p", "type": "integer", "default": 0, "minimum": 1}]},
            "spec.parameters[p].default",
            ">= 1",
        ),
        (
            {"parameters": [{"name": "p", "type": "integer", "default": "ten"}]},
            "spec.parameters[p].default",
            "integer",
        ),
        (
            {"parameters": [{"name": "p", "enum": ["a", "b"], "default": "c"}]},
            "spec.parameters[p].default",
            "one of",
        ),
        (
            {"parameters": [{"name": "p", "type": "integer", "enum": [1, "two"]}]},
            "spec.parameters[p].enum[1]",
            "integer",
        ),
        (
            {"parameters": [{"name": "p", "type": "number", "minimum": 5, "maximum": 1}]},
            "spec.parameters[p]",
            "exceeds maximum",
        ),
        (
            {"runtime": {"type": "Pod", "mpi": {"workers": 2}}},
            "spec.runtime.mpi",
            "MPI",
        ),
    ],
    ids=[
        "undeclared-param",
        "undeclared-input",
        "undeclared-in-env",
        "expression",
        "unbalanced",
        "bad-regex",
        "default-above-max",
        "default-below-min",
        "default-wrong-type",
        "default-not-in-enum",
        "enum-wrong-type",
        "min-over-max",
        "mpi-on-pod",
    ],
)
def test_unsound_apps_are_reported_with_the_field(
    overrides: dict[str, Any], field: str, needle: str
) -> None:
    overrides.setdefault("parameters", PARAMS)
    problems = validate_app(app_spec(**overrides))
    assert problems, "expected a problem"
    assert any(p.startswith(field) and needle in p for p in problems), problems


def test_an_invalid_pattern_is_reported_on_values_not_raised() -> None:
    param = Parameter.model_validate({"name": "p", "pattern": "(unclosed"})
    problem = check_value(param, "x")
    assert problem is not None
    assert "invalid" in problem
