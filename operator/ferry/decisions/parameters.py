"""Validation of an App's declarations and of a Job's parameters and inputs against them.

Owns: the App soundness check (parameter schema, defaults, templates) and resolving a Job's
parameter values (types, defaults, required, enum, minimum/maximum, pattern), each error
naming its field. Must not: do I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from ferry.api.app import AppSpec, Parameter, ParameterType, Scalar
from ferry.api.job import JobSpec
from ferry.decisions import templating


def _type_error(param: Parameter, value: Scalar) -> str | None:
    """Why `value` is not of the parameter's type, or None."""
    t = param.type
    if t == ParameterType.BOOLEAN:
        ok = isinstance(value, bool)
    elif t == ParameterType.INTEGER:
        ok = isinstance(value, int) and not isinstance(value, bool)
        if not ok and isinstance(value, float) and value.is_integer():
            ok = True
    elif t == ParameterType.NUMBER:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    else:
        ok = isinstance(value, str)
    if ok:
        return None
    return f"must be of type {t.value}, got {type(value).__name__} {value!r}"


def check_value(param: Parameter, value: Scalar) -> str | None:
    """Why `value` is not allowed for `param`, or None when it is."""
    problem = _type_error(param, value)
    if problem:
        return problem
    if param.enum is not None and value not in param.enum:
        return f"must be one of {param.enum}, got {value!r}"
    if isinstance(value, int | float) and not isinstance(value, bool):
        if param.minimum is not None and value < param.minimum:
            return f"must be >= {param.minimum:g}, got {value}"
        if param.maximum is not None and value > param.maximum:
            return f"must be <= {param.maximum:g}, got {value}"
    if param.pattern is not None and isinstance(value, str):
        try:
            if re.fullmatch(param.pattern, value) is None:
                return f"must match pattern {param.pattern!r}, got {value!r}"
        except re.error as exc:  # the App check reports bad patterns; be safe here too
            return f"the App's pattern {param.pattern!r} is invalid: {exc}"
    return None


def format_value(param: Parameter, value: Scalar) -> str:
    """A value as it appears in a rendered template."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if param.type == ParameterType.INTEGER and isinstance(value, float):
        return str(int(value))
    return str(value)


def _templates(spec: AppSpec) -> list[tuple[str, str]]:
    items = [(f"spec.command[{i}]", c) for i, c in enumerate(spec.command or [])]
    items += [(f"spec.args[{i}]", a) for i, a in enumerate(spec.args)]
    items += [(f"spec.env[{e.name}].value", e.value) for e in spec.env]
    return items


def validate_app(spec: AppSpec) -> list[str]:
    """Every reason the App cannot be used, each naming its field; empty when sound."""
    errors = []
    for p in spec.parameters:
        where = f"spec.parameters[{p.name}]"
        if p.pattern is not None:
            try:
                re.compile(p.pattern)
            except re.error as exc:
                errors.append(f"{where}.pattern: not a valid regular expression: {exc}")
                continue
        if p.minimum is not None and p.maximum is not None and p.minimum > p.maximum:
            errors.append(f"{where}: minimum {p.minimum:g} exceeds maximum {p.maximum:g}")
        for i, option in enumerate(p.enum or []):
            problem = _type_error(p, option)
            if problem:
                errors.append(f"{where}.enum[{i}]: {problem}")
        if p.default is not None:
            problem = check_value(p, p.default)
            if problem:
                errors.append(f"{where}.default: {problem}")
    params = {p.name for p in spec.parameters}
    inputs = {i.name for i in spec.inputs}
    errors += templating.check(_templates(spec), params, inputs)
    if spec.runtime.type == "Pod" and spec.runtime.mpi is not None:
        errors.append("spec.runtime.mpi: set only when spec.runtime.type is MPI")
    return errors


def resolve(app: AppSpec, job: JobSpec) -> tuple[dict[str, Scalar], list[str]]:
    """The Job's effective parameter values (defaults applied) and every error found.

    Also checks the Job's inputs against the App's: unknown inputs and missing required
    inputs are errors.
    """
    errors: list[str] = []
    declared = {p.name: p for p in app.parameters}
    values: dict[str, Scalar] = {}
    for name, value in job.parameters.items():
        param = declared.get(name)
        if param is None:
            errors.append(f"spec.parameters.{name}: the App declares no parameter {name!r}")
            continue
        problem = check_value(param, value)
        if problem:
            errors.append(f"spec.parameters.{name}: {problem}")
        else:
            values[name] = value
    for name, param in declared.items():
        if name in job.parameters:
            continue
        if param.default is not None:
            values[name] = param.default
        elif param.required:
            errors.append(f"spec.parameters.{name}: required by the App and not set")
    app_inputs = {i.name: i for i in app.inputs}
    given = {i.name for i in job.inputs}
    for i, job_input in enumerate(job.inputs):
        if job_input.name not in app_inputs:
            errors.append(f"spec.inputs[{i}].name: the App declares no input {job_input.name!r}")
    for name, app_input in app_inputs.items():
        if app_input.required and name not in given:
            errors.append(f"spec.inputs: required input {name!r} is missing")
    return values, errors


def rendered_strings(app: AppSpec, values: Mapping[str, Scalar]) -> dict[str, str]:
    """Parameter values formatted for templates."""
    declared = {p.name: p for p in app.parameters}
    return {k: format_value(declared[k], v) for k, v in values.items() if k in declared}
