"""Resolving inputs that name another Job's outputs (`jobOutput`) into S3 locations.

Owns: turning `{job, path}` plus the parent's recorded `status.outputs.uri` and archive store
into the concrete S3 source the staging container fetches (`path` is relative to the parent's
work directory, archived under `<uri>outputs/`). Must not: do I/O; the parent is
known only through its observed `ParentView`.
"""

from __future__ import annotations

from collections.abc import Mapping

from ferry.api import names
from ferry.api.job import JobSpec, S3Source
from ferry.decisions.observation import ParentView


def split_uri(uri: str) -> tuple[str, str]:
    """s3://bucket/some/prefix/ -> ("bucket", "some/prefix/")."""
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    bucket, _, prefix = uri[len("s3://") :].partition("/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return bucket, prefix


def resolve_job_outputs(
    spec: JobSpec, parents: Mapping[str, ParentView | None]
) -> tuple[dict[str, S3Source], list[str]]:
    """S3 sources for every jobOutput input, by input name, and the errors, each naming
    its field."""
    resolved: dict[str, S3Source] = {}
    errors: list[str] = []
    for i, item in enumerate(spec.inputs):
        output = item.source.job_output
        if output is None:
            continue
        where = f"spec.inputs[{i}].source.jobOutput"
        parent = parents.get(output.job)
        if parent is None or not parent.outputs_uri:
            errors.append(f"{where}: Job {output.job!r} has no archived outputs")
            continue
        try:
            bucket, prefix = split_uri(parent.outputs_uri)
        except ValueError as exc:
            errors.append(f"{where}: Job {output.job!r}: {exc}")
            continue
        # status.outputs.uri is the attempt's root; the files the app wrote are under outputs/.
        location = prefix + names.ARCHIVE_OUTPUTS + output.path
        store = parent.store
        resolved[item.name] = S3Source(
            bucket=bucket,
            key=None if output.path.endswith("/") else location,
            prefix=location if output.path.endswith("/") else None,
            endpoint=store.endpoint if store else None,
            region=store.region if store else None,
            secret_ref=store.secret_ref if store else None,
        )
    return resolved, errors
