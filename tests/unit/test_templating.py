"""Template rendering: plain substitution, unknown or malformed references are errors."""

from __future__ import annotations

import pytest

from ferry.decisions import templating
from ferry.decisions.templating import Context, Reference, TemplateError, references, render

pytestmark = pytest.mark.unit

CTX = Context(
    params={"steps": "500", "solver": "direct", "flag": "true"},
    inputs={"model": "/ferry/inputs/model", "mesh-data": "/ferry/inputs/mesh-data"},
    job_name="frame-001",
    job_namespace="bridge",
    attempt=2,
)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{params.steps}}", "500"),
        ("{{inputs.model}}", "/ferry/inputs/model"),
        ("{{inputs.mesh-data}}", "/ferry/inputs/mesh-data"),
        ("{{job.name}}", "frame-001"),
        ("{{job.namespace}}", "bridge"),
        ("{{job.attempt}}", "2"),
        ("{{workdir}}", "/ferry/work"),
        ("{{ params.steps }}", "500"),
        ("{{\tparams.solver\n}}", "direct"),
        ("--steps={{params.steps}},solver={{params.solver}}", "--steps=500,solver=direct"),
        ("{{workdir}}/out/{{job.name}}-{{job.attempt}}.log", "/ferry/work/out/frame-001-2.log"),
        ("no templates here", "no templates here"),
        ("", ""),
        ("{single} braces {are} text", "{single} braces {are} text"),
        ("{{params.flag}}{{params.flag}}", "truetrue"),
    ],
)
def test_render_substitutes(template: str, expected: str) -> None:
    assert render(template, CTX) == expected


def test_substituted_values_are_not_rendered_again() -> None:
    ctx = Context({"a": "{{params.b}}", "b": "x"}, {}, "j", "n", 1)
    assert render("{{params.a}}", ctx) == "{{params.b}}"


@pytest.mark.parametrize(
    ("template", "named"),
    [
        ("{{params.nope}}", "nope"),
        ("{{inputs.missing}}", "missing"),
        ("ok {{params.steps}} then {{params.other}}", "other"),
    ],
)
def test_unknown_reference_names_it(template: str, named: str) -> None:
    with pytest.raises(TemplateError, match=named):
        render(template, CTX)


@pytest.mark.parametrize(
    "template",
    [
        "{{ 1+1 }}",
        "{{__import__('os')}}",
        "{{__import__('os').system('touch /tmp/x/pwned')}}",
        "{{ params.steps | upper }}",
        "{{params}}",
        "{{params.}}",
        "{{job.uid}}",
        "{{job}}",
        "{{ }}",
        "{{}}",
        "{{env.HOME}}",
        "{{params.steps.__class__}}",
        "{% for x in y %}{{x}}{% endfor %}",
    ],
)
def test_malformed_references_are_errors_and_nothing_runs(template: str) -> None:
    with pytest.raises(TemplateError):
        render(template, CTX)
    with pytest.raises(TemplateError):
        references(template)


def test_malformed_reference_error_names_the_expression() -> None:
    with pytest.raises(TemplateError, match=r"1\+1"):
        render("{{ 1+1 }}", CTX)


@pytest.mark.parametrize(
    "template",
    ["{{params.steps", "params.steps}}", "a {{ b", "}} x {{", "{{params.steps}} }}", "{{{{x}}}}"],
)
def test_unbalanced_braces_are_errors(template: str) -> None:
    with pytest.raises(TemplateError):
        render(template, CTX)


def test_references_lists_every_reference_in_order() -> None:
    refs = references("{{workdir}} {{params.a}} {{ inputs.b }} {{job.attempt}}")
    assert refs == [
        Reference("workdir", ""),
        Reference("params", "a"),
        Reference("inputs", "b"),
        Reference("job", "attempt"),
    ]
    assert [str(r) for r in refs] == ["workdir", "params.a", "inputs.b", "job.attempt"]


def test_check_reports_undeclared_names_with_their_field() -> None:
    errors = templating.check(
        [
            ("spec.args[0]", "{{params.steps}} {{params.ghost}}"),
            ("spec.env[X].value", "{{inputs.nothing}}"),
            ("spec.command[0]", "{{ 1+1 }}"),
            ("spec.args[1]", "{{inputs.model}} {{workdir}} {{job.name}}"),
        ],
        params={"steps"},
        inputs={"model"},
    )
    assert len(errors) == 3
    assert errors[0].startswith("spec.args[0]")
    assert "params.ghost" in errors[0]
    assert "parameter" in errors[0]
    assert errors[1].startswith("spec.env[X].value")
    assert "inputs.nothing" in errors[1]
    assert "input" in errors[1]
    assert errors[2].startswith("spec.command[0]")
