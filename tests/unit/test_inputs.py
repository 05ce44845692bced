"""Resolving `jobOutput` inputs to the S3 keys the parent's archive actually wrote."""

from __future__ import annotations

import pytest

from ferry.api.common import S3Location
from ferry.api.job import JobSpec, State
from ferry.decisions.inputs import resolve_job_outputs
from ferry.decisions.observation import ParentView
from ferry.stager.archive import OUTPUTS

from .factories import job_spec

pytestmark = pytest.mark.unit

URI = "s3://results/ns/mesh-1/uid-1/attempt-2/"


def spec_for(path: str) -> JobSpec:
    return job_spec(
        parents=["mesh-1"],
        inputs=[{"name": "mesh", "source": {"jobOutput": {"job": "mesh-1", "path": path}}}],
    )


@pytest.mark.parametrize(
    ("path", "key", "prefix"),
    [
        ("results/mesh.txt", "ns/mesh-1/uid-1/attempt-2/outputs/results/mesh.txt", None),
        ("results/", None, "ns/mesh-1/uid-1/attempt-2/outputs/results/"),
        ("mesh.txt", "ns/mesh-1/uid-1/attempt-2/outputs/mesh.txt", None),
    ],
)
def test_job_output_names_the_archived_object_under_outputs(
    path: str, key: str | None, prefix: str | None
) -> None:
    """The archive stores the app's files at `<uri>outputs/<path>` (stager.archive), not at
    `<uri><path>`; a child must stage from there."""
    parent = ParentView(name="mesh-1", state=State.FINISHED, outputs_uri=URI)
    resolved, errors = resolve_job_outputs(spec_for(path), {"mesh-1": parent})
    assert errors == []
    source = resolved["mesh"]
    assert (source.bucket, source.key, source.prefix) == ("results", key, prefix)
    where = source.key or source.prefix or ""
    assert where.startswith("ns/mesh-1/uid-1/attempt-2/" + OUTPUTS)


def test_job_output_uses_the_parents_store() -> None:
    store = S3Location(bucket="results", endpoint="http://minio.example:9000", region="eu-1")
    parent = ParentView(name="mesh-1", state=State.FINISHED, outputs_uri=URI, store=store)
    resolved, _ = resolve_job_outputs(spec_for("results/mesh.txt"), {"mesh-1": parent})
    assert (resolved["mesh"].endpoint, resolved["mesh"].region) == (store.endpoint, "eu-1")
