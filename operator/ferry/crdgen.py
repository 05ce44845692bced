"""Generates Ferry's CustomResourceDefinitions from the pydantic models in ferry.api.

Owns: turning pydantic's JSON Schema into a structural OpenAPI v3 schema (refs inlined,
nullable unions collapsed, scalar unions made explicit), plus printer columns, short names,
categories and the status subresource. `python -m ferry.crdgen` writes crds/ and the chart's
crds/, the operator section of the chart's values.schema.json and the values table of the
chart's README.md (ferry.chartgen); `--check` fails when the committed files differ.
Must not: talk to any server.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from ferry.api.app import AppSpec, AppStatus
from ferry.api.common import GROUP, VERSION
from ferry.api.job import MAX_JOB_NAME, JobSpec, JobStatus
from ferry.chartgen import CHART_README, VALUES_SCHEMA, VALUES_YAML, chart_readme, values_schema

Schema = dict[str, Any]

_SCALAR_TYPES = {"string", "integer", "number", "boolean"}
_DROP = {"title", "propertyNames"}


def _resolve(node: Any, defs: dict[str, Schema], keep_defaults: bool) -> Any:
    if isinstance(node, list):
        return [_resolve(n, defs, keep_defaults) for n in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    if "$ref" in node:
        target = defs[node.pop("$ref").rsplit("/", 1)[-1]]
        merged = {**target, **node}
        if "description" in node:
            merged["description"] = node["description"]
        return _resolve(merged, defs, keep_defaults)
    if "anyOf" in node:
        options = [o for o in node.pop("anyOf") if o.get("type") != "null"]
        if len(options) == 1:
            return _resolve({**options[0], **node}, defs, keep_defaults)
        types = {o.get("type") for o in options}
        if types <= _SCALAR_TYPES:
            # A string, number or boolean. Structural schemas cannot say so and CEL cannot
            # type-check untyped nodes, so the value is free-form here and the operator
            # refuses non-scalars (InvalidSpec / App not Ready) with the field path.
            scalar = {k: v for k, v in node.items() if k not in _DROP | {"default"}}
            scalar["x-kubernetes-preserve-unknown-fields"] = True
            return _resolve(scalar, defs, keep_defaults)
        raise ValueError(f"cannot express union {options} structurally")
    if "patternProperties" in node:
        # Kubernetes has no patternProperties: the value schema becomes additionalProperties
        # and the key pattern is enforced by a CEL rule added by the caller.
        (value_schema,) = node.pop("patternProperties").values()
        node["additionalProperties"] = value_schema
    if node.get("additionalProperties") is False:
        # Structural schemas prune unknown fields; strict field validation reports them.
        del node["additionalProperties"]
    out: Schema = {}
    for key, value in node.items():
        if key in _DROP:
            continue
        if key == "default" and (not keep_defaults or value is None):
            continue
        if key == "const":
            out["enum"] = [value]
            continue
        if key == "properties":
            out[key] = {k: _resolve(v, defs, keep_defaults) for k, v in value.items()}
        elif key in ("items", "additionalProperties"):
            out[key] = _resolve(value, defs, keep_defaults)
        else:
            out[key] = value
    if "properties" in out or out.get("type") == "object":
        out.setdefault("type", "object")
    return out


def structural_schema(model: type[BaseModel], *, keep_defaults: bool) -> Schema:
    """The model's JSON Schema as a Kubernetes structural schema."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    result: Schema = _resolve(raw, defs, keep_defaults)
    return result


def _printer(name: str, type_: str, path: str, description: str, priority: int = 0) -> Schema:
    column: Schema = {"name": name, "type": type_, "jsonPath": path, "description": description}
    if priority:
        column["priority"] = priority
    return column


def _crd(
    kind: str,
    plural: str,
    short: str,
    spec: type[BaseModel],
    status: type[BaseModel],
    description: str,
    columns: list[Schema],
    root_rules: list[Schema],
) -> Schema:
    spec_schema = structural_schema(spec, keep_defaults=True)
    if kind == "Job":
        # A map of scalars: CEL can compare it (immutability) only as a free-form object.
        # Keys and values are checked by the operator against the App (InvalidSpec).
        params = spec_schema["properties"]["parameters"]
        params.pop("additionalProperties", None)
        params["x-kubernetes-preserve-unknown-fields"] = True
    root: Schema = {
        "type": "object",
        "description": description,
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec_schema,
            "status": structural_schema(status, keep_defaults=False),
        },
    }
    if kind == "Job":
        # A new Job reads Pending (kubectl get, the SDK, GitOps tools) from the moment it is
        # created, before the operator's first pass: the apiserver fills it in, no write.
        root["properties"]["status"]["default"] = {"state": "Pending"}
    if root_rules:
        root["x-kubernetes-validations"] = root_rules
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{GROUP}",
            "labels": {"app.kubernetes.io/name": "ferry", "app.kubernetes.io/part-of": "ferry"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": [short],
                "categories": ["ferry"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


def app_crd() -> Schema:
    return _crd(
        "App",
        "apps",
        "fapp",
        AppSpec,
        AppStatus,
        "A registered, versioned application: image, command templates, typed parameters, "
        "inputs and outputs. Jobs in the same namespace run it.",
        [
            _printer("Version", "string", ".spec.version", "The App's version."),
            _printer("Image", "string", ".spec.image", "Container image."),
            _printer(
                "Ready",
                "string",
                '.status.conditions[?(@.type=="Ready")].status',
                "Whether Jobs can use this App.",
            ),
            _printer("Age", "date", ".metadata.creationTimestamp", "Time since creation."),
        ],
        [],
    )


def job_crd() -> Schema:
    return _crd(
        "Job",
        "jobs",
        "fjob",
        JobSpec,
        JobStatus,
        "One execution of an App: inputs are staged, the app runs as a pod or an MPI job, "
        "outputs are archived, and the lifecycle is reported in status.",
        [
            _printer("State", "string", ".status.state", "Lifecycle state."),
            _printer("App", "string", ".spec.appRef.name", "The App this Job runs."),
            _printer("Attempt", "integer", ".status.attempt", "Current attempt number."),
            _printer("Age", "date", ".metadata.creationTimestamp", "Time since creation."),
            _printer("Runtime", "string", ".status.runtime", "How long the app ran."),
            _printer("Reason", "string", ".status.reason", "Why the Job is in its state.", 1),
        ],
        [
            {
                "rule": f"size(self.metadata.name) <= {MAX_JOB_NAME}",
                "message": f"a Job name must be at most {MAX_JOB_NAME} characters "
                "(it names the Job's pods and labels)",
            },
            {
                # A Job waiting for itself could never start (the operator would fail it as a
                # dependency cycle); longer cycles only the operator can see.
                "rule": "!has(self.spec.parents) || !(self.metadata.name in self.spec.parents)",
                "message": "a Job cannot be its own parent (spec.parents names the Job itself)",
            },
        ],
    )


def render(crd: Schema) -> str:
    header = "# Generated by `make crds` (python -m ferry.crdgen) from ferry.api. Do not edit.\n"
    return header + yaml.safe_dump(crd, sort_keys=False, width=100)


def generated_files(root: Path) -> dict[Path, str]:
    """Every generated file, by its path under the repository root.

    values.schema.json is generated in part: its committed text must exist (FileNotFoundError)
    and be JSON (ValueError); everything but the operator section is kept. So is the chart's
    README.md but its values table (ValueError when its markers are missing).
    """
    files: dict[Path, str] = {}
    for name, crd in (("ferry.dev_apps.yaml", app_crd()), ("ferry.dev_jobs.yaml", job_crd())):
        text = render(crd)
        files[root / "crds" / name] = text
        files[root / "charts" / "ferry" / "crds" / name] = text
    schema = values_schema((root / VALUES_SCHEMA).read_text())
    files[root / VALUES_SCHEMA] = schema
    files[root / CHART_README] = chart_readme(
        (root / CHART_README).read_text(), schema, (root / VALUES_YAML).read_text()
    )
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", type=Path, default=Path.cwd())
    parser.add_argument("--check", action="store_true", help="fail when files differ")
    args = parser.parse_args(argv)
    try:
        files = generated_files(args.root)
    except (OSError, ValueError) as err:  # json.JSONDecodeError is a ValueError
        print(
            f"cannot generate {VALUES_SCHEMA}'s operator section or {CHART_README}'s values "
            f"table: {err}",
            file=sys.stderr,
        )
        return 1
    stale = []
    for path, text in files.items():
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if stale:
        print("out of date (run `make crds`): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
