"""`ferry` verbs about Jobs: submit, list, get, wait, cancel, suspend, resume, extend, rerun,
timeline, events, apps. Each parses its flags, calls the SDK once and prints.

Owns: flags and printing of these verbs. Must not: talk to the cluster except through the
SDK, or hold lifecycle logic.
"""

from __future__ import annotations

import time
from typing import Any

import click

from ferry.cli import render
from ferry.cli.base import cli, client, job_argument, namespace_option, output_option
from ferry.sdk import query
from ferry.sdk.errors import UsageError
from ferry.sdk.sources import parse_input_text, parse_parameter


def submit_options(f: Any) -> Any:
    """Flags shared by submit and sweep."""
    for option in reversed(
        [
            click.option("-i", "--input", "inputs", multiple=True, metavar="NAME=SOURCE",
                         help="An input: a local file or directory (uploaded), s3://BUCKET/KEY, "
                         "s3://BUCKET/PREFIX/, https://URL[#sha256=HEX], pvc://CLAIM/PATH, "
                         "configmap://NAME/KEY or @FILE (its text inline)."),
            click.option("-l", "--label", "labels", multiple=True, metavar="KEY=VALUE"),
            click.option("--parent", "parents", multiple=True, metavar="JOB",
                         help="A Job that must Finish first."),
            click.option("--cpu"), click.option("--memory"),
            click.option("--gpu", type=click.IntRange(0, 64)),
            click.option("--max-run-seconds", type=click.IntRange(1)),
            click.option("--app-failures", type=click.IntRange(0, 20),
                         help="Retries of an app that exits non-zero."),
            click.option("--infra-failures", type=click.IntRange(0, 20),
                         help="Retries after evictions, node loss, preemption."),
            click.option("--archive-prefix", help="Prefix in the operator's default store."),
            click.option("--progress/--no-progress", default=None,
                         help="Progress bars for uploads (default: on a terminal)."),
            namespace_option,
        ]
    ):  # fmt: skip
        f = option(f)
    return f


def submit_kwargs(opts: dict[str, Any]) -> dict[str, Any]:
    """The SDK's submit() keyword arguments from the shared flags."""
    resources = {k: opts[k] for k in ("cpu", "memory", "gpu") if opts.get(k) is not None}
    retry = {
        key: opts[flag]
        for flag, key in (("app_failures", "appFailures"), ("infra_failures", "infraFailures"))
        if opts.get(flag) is not None
    }
    inputs = dict(parse_input_text(i) for i in opts["inputs"])
    progress = opts["progress"]
    return {
        "inputs": inputs,
        "labels": query.parse_labels(opts["labels"]),
        "parents": list(opts["parents"]) or None,
        "resources": resources or None,
        "max_run_seconds": opts.get("max_run_seconds"),
        "retry": retry or None,
        "archive": {"prefix": opts["archive_prefix"]} if opts.get("archive_prefix") else None,
        "namespace": opts.get("namespace"),
        "progress": render.stderr_is_tty() if progress is None else progress,
    }


@cli.command()
@click.argument("app")
@click.option("-p", "--param", "params", multiple=True, metavar="NAME=VALUE",
              help="A parameter value (typed: 5, 2.5, true, 'text').")  # fmt: skip
@click.option("--name", help="The Job's name (default: <app>-<random>).")
@submit_options
@click.option("--wait", "wait_", is_flag=True, help="Wait until it ends; exit 6 if it failed.")
@click.option("--timeout", type=float, help="With --wait: seconds to wait at most.")
@output_option("name", "table", "wide", "json", "yaml")
def submit(app: str, params: tuple[str, ...], name: str | None, wait_: bool,
           timeout: float | None, output: str, **opts: Any) -> None:  # fmt: skip
    """Create a Job of APP."""
    values = dict(parse_parameter(p) for p in params)
    kwargs = submit_kwargs(opts)
    job = client().submit(app, values, name=name, **kwargs)
    if output == "table":
        click.echo(f"job.ferry.dev/{job.metadata['name']} created")
    else:
        render.print_job(job, output)
    if wait_:
        done = client().wait(job, timeout, raise_on_failure=True)
        render.print_jobs([done], "wide")


@cli.command("list")
@namespace_option
@click.option("-A", "--all-namespaces", is_flag=True, help="Jobs of every namespace.")
@click.option("--state", "states", multiple=True, metavar="STATE", help="Only Jobs in STATE.")
@click.option("--app", help="Only Jobs of this App.")
@click.option("-l", "--label", "labels", multiple=True, metavar="KEY=VALUE")
@click.option("--sweep", help="Only the Jobs of this sweep.")
@click.option("--last", "last_n", type=click.IntRange(0), metavar="N", help="The newest N only.")
@click.option("-w", "--watch", is_flag=True, help="After listing, print changes as they come.")
@output_option("table", "wide", "json", "yaml", "name")
def list_(namespace: str | None, all_namespaces: bool, states: tuple[str, ...],
          app: str | None, labels: tuple[str, ...], sweep: str | None, last_n: int | None,
          watch: bool, output: str) -> None:  # fmt: skip
    """List Jobs, newest first."""
    selected = query.parse_labels(labels)
    if sweep:
        from ferry.api import names

        selected[names.LABEL_SWEEP] = sweep
    jobs = client().list(list(states), app, selected, last_n,
                         all_namespaces=all_namespaces, namespace=namespace)  # fmt: skip
    render.print_jobs(jobs, output, namespaces=all_namespaces)
    if watch:
        for job in client().watch_jobs(selected, namespace=namespace,
                                       all_namespaces=all_namespaces):  # fmt: skip
            headers, rows = render.job_rows([job], output == "wide", all_namespaces)
            render.console().print(render.table(headers, rows, header=False), highlight=False)


@cli.command()
@job_argument
@namespace_option
@click.option("-w", "--watch", is_flag=True, help="Print the Job again at every change.")
@output_option("table", "wide", "json", "yaml", "name")
def get(job: str, namespace: str | None, watch: bool, output: str) -> None:
    """Show a Job."""
    render.print_job(client().get(job, namespace), output)
    if watch:
        for changed in client().watch_jobs(None, namespace=namespace, name=job):
            render.print_job(changed, output)


@cli.command()
@click.argument("jobs", nargs=-1, shell_complete=None)
@namespace_option
@click.option("--sweep", help="Wait for every Job of this sweep.")
@click.option("--timeout", type=float, help="Seconds to wait at most (exit 5 after).")
def wait(jobs: tuple[str, ...], namespace: str | None, sweep: str | None,
         timeout: float | None) -> None:  # fmt: skip
    """Wait until JOBS end; exit 6 if one ended Failed, TimedOut or Cancelled."""
    if not jobs and not sweep:
        raise UsageError("wait: name a JOB or --sweep")
    c = client()
    deadline = None if timeout is None else time.monotonic() + timeout

    def left() -> float | None:  # one deadline for all of them
        return None if deadline is None else max(0.0, deadline - time.monotonic())

    done = []
    if sweep:
        done += c.get_sweep(sweep, namespace).wait(left())
    done += [c.wait(j, left(), namespace=namespace) for j in jobs]
    render.print_jobs(done, "wide")
    failed = [j for j in done if j.status and j.status.state != "Finished"]
    if failed:
        from ferry.sdk.watching import raise_if_failed

        raise_if_failed([j.wire() for j in failed])


def _patcher(verb: str, doc: str) -> None:
    @cli.command(verb, help=doc)
    @click.argument("jobs", nargs=-1, required=True)
    @namespace_option
    def command(jobs: tuple[str, ...], namespace: str | None) -> None:
        c = client()
        for name in jobs:
            job = getattr(c, verb)(name, namespace)
            state = job.status.state.value if job.status and job.status.state else "Pending"
            click.echo(f"job.ferry.dev/{name} {verb} requested (now {state})")


_patcher("cancel", "Cancel JOBS (they end Cancelled).")
_patcher("suspend", "Suspend JOBS (a running attempt is stopped; resume starts a new one).")
_patcher("resume", "Resume suspended JOBS.")


@cli.command()
@job_argument
@click.argument("duration")
@namespace_option
def extend(job: str, duration: str, namespace: str | None) -> None:
    """Raise JOB's maxRunSeconds by DURATION (e.g. 600, 30m, 2h)."""
    seconds = query.parse_duration(duration)
    done = client().extend(job, seconds, namespace)
    click.echo(f"job.ferry.dev/{job} maxRunSeconds is now {done.spec.max_run_seconds}")


@cli.command()
@job_argument
@namespace_option
@click.option("--name", help="The new Job's name (default: <job>-r<random>).")
def rerun(job: str, namespace: str | None, name: str | None) -> None:
    """Submit JOB again: same spec, new name, labelled ferry.dev/rerun-of."""
    new = client().rerun(job, name=name, namespace=namespace)
    click.echo(f"job.ferry.dev/{new.metadata['name']} created (rerun of {job})")


@cli.command()
@job_argument
@namespace_option
@output_option("table", "json", "yaml")
def timeline(job: str, namespace: str | None, output: str) -> None:
    """The states JOB went through (status.history)."""
    got = client().get(job, namespace)
    render.print_timeline(got, got.status.history if got.status else [], output)


@cli.command()
@job_argument
@namespace_option
@output_option("table", "json", "yaml")
def events(job: str, namespace: str | None, output: str) -> None:
    """Events about JOB and its pods."""
    found = client().events(job, namespace)
    if output in ("json", "yaml"):
        data = [{**e.__dict__, "time": e.time.isoformat() if e.time else None} for e in found]
        render.click_echo(render.dump(data, output))
        return
    rows = [[render.age(e.time), e.type, e.reason, e.object, e.message] for e in found]
    render.console().print(render.table(["AGE", "TYPE", "REASON", "OBJECT", "MESSAGE"], rows))


@cli.command()
@namespace_option
@output_option("table", "json", "yaml")
def apps(namespace: str | None, output: str) -> None:
    """List the registered Apps."""
    render.print_apps(client().apps(namespace), output)
