"""Accepting a Job: its App found and usable, its runtime runnable, its parameters valid.

Owns: resolving the App and the parameters into the `Ctx` the later phases work in, the App
snapshot taken at acceptance, and the reasons a Job is not accepted (AppNotFound, AppInvalid,
InvalidSpec, MPIOperatorMissing, RuntimeUnavailable). Must not: start anything.
"""

from __future__ import annotations

from collections.abc import Mapping

from ferry.api.app import AppSpec, Scalar
from ferry.api.job import AppSnapshot, JobSpec, State
from ferry.api.reasons import Reason
from ferry.decisions import parameters, run_pod, templating
from ferry.decisions.context import Ctx, job_meta
from ferry.decisions.observation import Observation
from ferry.decisions.plan import Changes, Draft
from ferry.decisions.runner import Runner

#: The runtime of a Job accepted before snapshots kept the App's spec, whose App is gone.
DEFAULT_RUNTIME = "Pod"


def accept(
    obs: Observation, spec: JobSpec, runners: Mapping[str, Runner]
) -> Draft | tuple[Ctx, Changes]:
    """The context to go on in, with the changes acceptance makes; a Draft when the Job
    cannot go on. Once accepted, the Job goes on with the App as accepted (its snapshot in
    status.app.spec), whatever the live App is now, or whether it still exists."""
    st = obs.job.status
    if st.app is not None and st.app.spec is not None:
        return _context(obs, spec, st.app.spec, runners, Changes())
    app_view = obs.app
    name = spec.app_ref.name
    ns = obs.job.namespace
    if app_view is None or app_view.spec is None:
        if st.app is not None and app_view is None:
            # Accepted before snapshots kept the spec; the App is only needed to build a child.
            return Ctx(obs, spec, None, {}, runners[DEFAULT_RUNTIME]), Changes()
        if app_view is None:
            return Draft(
                State.BLOCKED, Reason.APP_NOT_FOUND, f"App {name!r} not found in namespace {ns!r}"
            )
        return Draft(
            State.BLOCKED, Reason.APP_INVALID, f"App {name!r} is not usable: {app_view.error}"
        )
    app = app_view.spec
    problems = parameters.validate_app(app)
    if problems:
        return Draft(
            State.BLOCKED,
            Reason.APP_INVALID,
            f"App {name!r} is not usable: " + "; ".join(problems),
        )
    wanted = spec.app_ref.version
    if st.app is None and wanted is not None and app.version != wanted:
        return Draft(
            State.BLOCKED,
            Reason.APP_VERSION_MISMATCH,
            f"the Job wants App {name!r} version {wanted!r}; the App is version {app.version!r}",
        )
    changes = Changes()
    if st.app is None:
        snapshot = AppSnapshot(
            name=name,
            version=app.version,
            image=app.image,
            spec_hash=app_view.spec_hash,
            spec=app,
        )
        changes = Changes(app=snapshot)
    return _context(obs, spec, app, runners, changes)


def _context(
    obs: Observation,
    spec: JobSpec,
    app: AppSpec,
    runners: Mapping[str, Runner],
    changes: Changes,
) -> Draft | tuple[Ctx, Changes]:
    """The runner and parameters of `app` for this Job."""
    st = obs.job.status
    name = spec.app_ref.name
    runtime = app.runtime.type
    if runtime == "MPI" and not obs.mpi_available:
        return Draft(
            State.BLOCKED,
            Reason.MPI_OPERATOR_MISSING,
            f"App {name!r} runs as MPI but the MPIJob CRD (kubeflow.org/v2beta1) is not installed",
        )
    runner = runners.get(runtime)
    if runner is None:
        return Draft(
            State.BLOCKED,
            Reason.RUNTIME_UNAVAILABLE,
            f"App {name!r} runs as {runtime}, which this Ferry cannot run yet "
            f"(runtimes: {', '.join(sorted(runners))}); it is not run some other way",
        )
    values, errors = parameters.resolve(app, spec)
    if not errors:
        errors = _template_errors(obs, app, spec, values)
    if errors:
        if st.app is None:
            return Draft(State.FAILED, Reason.INVALID_SPEC, "; ".join(errors))
        # The App changed under a Job accepted without a pinned spec, so it no longer fits.
        return Draft(
            State.BLOCKED, Reason.APP_INVALID, f"App {name!r} changed: " + "; ".join(errors)
        )
    return Ctx(obs, spec, app, values, runner), changes


def _template_errors(
    obs: Observation, app: AppSpec, spec: JobSpec, values: Mapping[str, Scalar]
) -> list[str]:
    ctx = run_pod.template_context(job_meta(obs), app, spec, values, 1)
    errors = []
    fields = [("spec.command", c) for c in app.command or []]
    fields += [("spec.args", a) for a in app.args] + [
        (f"spec.env[{e.name}]", e.value) for e in app.env
    ]
    for path, text in fields:
        try:
            templating.render(text, ctx)
        except templating.TemplateError as exc:
            errors.append(f"App {path}: {exc}")
    return errors
