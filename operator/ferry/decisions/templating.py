"""The `{{...}}` template renderer of App command, args and env.

Owns: finding and substituting `{{params.X}}`, `{{inputs.X}}`, `{{job.name}}`,
`{{job.namespace}}`, `{{job.attempt}}` and `{{workdir}}`. Rendering is plain substitution:
nothing is evaluated or executed, an unknown or malformed reference is a TemplateError that
names it. Must not: do I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

_REF = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_NAME = re.compile(r"^(params|inputs)\.([A-Za-z0-9_-]+)$|^(job\.(name|namespace|attempt)|workdir)$")

WORKDIR = "/ferry/work"
INPUTS_DIR = "/ferry/inputs"


class TemplateError(ValueError):
    """A template refers to something that does not exist or is not a reference at all."""


@dataclass(frozen=True)
class Reference:
    namespace: str  # "params", "inputs", "job" or "workdir"
    name: str

    def __str__(self) -> str:
        return self.namespace if self.namespace == "workdir" else f"{self.namespace}.{self.name}"


def references(template: str) -> list[Reference]:
    """Every reference in `template`, in order; malformed ones raise TemplateError."""
    found = []
    for match in _REF.finditer(template):
        expr = match.group(1)
        parsed = _NAME.match(expr)
        if parsed is None:
            raise TemplateError(f"{{{{{expr}}}}} is not a known template reference")
        if parsed.group(1):
            found.append(Reference(parsed.group(1), parsed.group(2)))
        elif expr == "workdir":
            found.append(Reference("workdir", ""))
        else:
            found.append(Reference("job", expr.split(".", 1)[1]))
    # A stray "{{" that never closes is almost always a typo: say so.
    stripped = _REF.sub("", template)
    if "{{" in stripped or "}}" in stripped:
        raise TemplateError(f"unbalanced braces in template {template!r}")
    return found


def check(templates: Iterable[tuple[str, str]], params: set[str], inputs: set[str]) -> list[str]:
    """Errors for templates (field path, text) that name undeclared parameters or inputs."""
    errors = []
    for path, text in templates:
        try:
            refs = references(text)
        except TemplateError as exc:
            errors.append(f"{path}: {exc}")
            continue
        for ref in refs:
            if ref.namespace == "params" and ref.name not in params:
                errors.append(f"{path}: {{{{{ref}}}}} names an undeclared parameter")
            elif ref.namespace == "inputs" and ref.name not in inputs:
                errors.append(f"{path}: {{{{{ref}}}}} names an undeclared input")
    return errors


@dataclass(frozen=True)
class Context:
    """The values a template may see."""

    params: Mapping[str, str]
    inputs: Mapping[str, str]
    job_name: str
    job_namespace: str
    attempt: int


def render(template: str, ctx: Context) -> str:
    """Substitute every reference; raise TemplateError naming the first unknown one."""
    references(template)  # validates the whole string first

    def value(match: re.Match[str]) -> str:
        expr = match.group(1)
        if expr == "workdir":
            return WORKDIR
        space, _, name = expr.partition(".")
        if space == "job":
            return {"name": ctx.job_name, "namespace": ctx.job_namespace}.get(
                name, str(ctx.attempt)
            )
        table = ctx.params if space == "params" else ctx.inputs
        if name not in table:
            kind = "parameter" if space == "params" else "input"
            raise TemplateError(f"{{{{{expr}}}}}: no {kind} named {name!r} has a value")
        return table[name]

    return _REF.sub(value, template)
