"""`ferry` verbs about what Jobs produce and about sweeps: logs, outputs, download, sweep.

Owns: flags and printing of these verbs (progress bars on stderr). Must not: talk to the
cluster or the store except through the SDK.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import yaml

from ferry.cli import render
from ferry.cli.base import cli, client, job_argument, namespace_option, output_option
from ferry.cli.jobs import submit_kwargs, submit_options
from ferry.sdk import query
from ferry.sdk.errors import UsageError
from ferry.sdk.sources import parse_parameter


@cli.command()
@job_argument
@namespace_option
@click.option("-f", "--follow", is_flag=True, help="Follow the live log (and the next attempt).")
@click.option("--attempt", type=click.IntRange(1), help="An earlier attempt's log.")
def logs(job: str, namespace: str | None, follow: bool, attempt: int | None) -> None:
    """The app's output: live while it runs, from the archive (logs/app.log) after."""
    for line in client().logs(job, follow=follow, attempt=attempt, namespace=namespace):
        sys.stdout.write(line)
        sys.stdout.flush()


@cli.command()
@job_argument
@namespace_option
@click.option("--attempt", type=click.IntRange(1), help="An earlier attempt's archive.")
@output_option("table", "json", "yaml")
def outputs(job: str, namespace: str | None, attempt: int | None, output: str) -> None:
    """The files JOB archived (from its manifest.json): path, size, sha256."""
    outs = client().outputs(job, namespace, attempt)
    if output in ("json", "yaml"):
        files = [f.__dict__ for f in outs.files]
        log = outs.log.__dict__ if outs.log else None
        data = {"uri": outs.uri, "outcome": outs.outcome, "files": files, "log": log}
        render.click_echo(render.dump(data, output))
        return
    rows = [[f.path, render.human_bytes(f.bytes), f.sha256[:16]] for f in outs.files]
    if outs.log is not None:
        rows.append([f"({outs.log.path})", render.human_bytes(outs.log.bytes),
                     outs.log.sha256[:16]])  # fmt: skip
    out = render.console()
    out.print(render.table(["PATH", "SIZE", "SHA256"], rows))
    out.print(
        f"{len(outs.files)} files, {render.human_bytes(outs.total_bytes)} in {outs.uri}",
        highlight=False,
    )


@cli.command()
@click.argument("job", required=False)
@click.argument("files", nargs=-1)
@namespace_option
@click.option("-d", "--dest", type=click.Path(file_okay=False), default=".", show_default=True,
              help="Directory to download into (a sweep: one directory per Job).")  # fmt: skip
@click.option("--sweep", help="Download every Job of this sweep.")
@click.option("--attempt", type=click.IntRange(1), help="An earlier attempt's archive.")
@click.option("--progress/--no-progress", default=None, help="Progress bars (default: on a tty).")
def download(job: str | None, files: tuple[str, ...], namespace: str | None, dest: str,
             sweep: str | None, attempt: int | None, progress: bool | None) -> None:  # fmt: skip
    """Download JOB's archived outputs (FILES: globs, all by default), sha256-verified;
    an interrupted download resumes."""
    show = render.stderr_is_tty() if progress is None else progress
    c = client()
    if sweep:
        if job:
            files = (job, *files)
        results = c.get_sweep(sweep, namespace).download(dest, list(files), progress=show)
        for name, res in sorted(results.items()):
            click.echo(f"{name}: {len(res.files)} files in {res.dest}")
        return
    if not job:
        raise UsageError("download: name a JOB or --sweep")
    res = c.download(job, dest, list(files), progress=show, namespace=namespace,
                     attempt=attempt)  # fmt: skip
    extra = []
    if res.already_present:
        extra.append(f"{res.already_present} already there")
    if res.resumed:
        extra.append(f"{res.resumed} resumed")
    note = f" ({', '.join(extra)})" if extra else ""
    click.echo(f"{len(res.files)} files verified in {res.dest}{note}")


def _grid(params: tuple[str, ...], from_file: str | None) -> Any:
    if from_file:
        try:
            data = yaml.safe_load(Path(from_file).read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise UsageError(f"--from-file {from_file}: {exc}") from None
        if not isinstance(data, dict | list):
            raise UsageError(f"--from-file {from_file}: a mapping of lists or a list of mappings")
        return data
    if not params:
        raise UsageError("sweep: give -p NAME=V1,V2,... or --from-file")
    return query.parse_grid(params)


@cli.command()
@click.argument("app")
@click.option("-p", "--param", "params", multiple=True, metavar="NAME=V1,V2,...",
              help="Values to sweep (every combination of all -p is one Job).")  # fmt: skip
@click.option("--set", "fixed", multiple=True, metavar="NAME=VALUE",
              help="A parameter the same in every Job.")  # fmt: skip
@click.option("--from-file", type=click.Path(dir_okay=False),
              help="YAML: a grid (NAME: [values]) or a list of parameter mappings.")  # fmt: skip
@click.option("--name", help="The sweep's name (label ferry.dev/sweep; Jobs <name>-001...).")
@submit_options
@click.option("--wait", "wait_", is_flag=True, help="Wait for all; exit 6 if one failed.")
@click.option("--timeout", type=float, help="With --wait: seconds to wait at most.")
def sweep(app: str, params: tuple[str, ...], fixed: tuple[str, ...], from_file: str | None,
          name: str | None, wait_: bool, timeout: float | None, **opts: Any) -> None:  # fmt: skip
    """Submit one Job of APP per parameter combination, sharing a sweep label."""
    grid = _grid(params, from_file)
    kwargs = submit_kwargs(opts)
    common = dict(parse_parameter(p) for p in fixed)
    handle = client().sweep(app, grid, name=name, params=common, **kwargs)
    for job_name in sorted(str(j.metadata["name"]) for j in handle.jobs()):
        click.echo(f"job.ferry.dev/{job_name} created")
    click.echo(str(handle.summary()))
    if wait_:
        handle.wait(timeout, raise_on_failure=False)
        summary = handle.summary()
        click.echo(str(summary))
        if not summary.ok:
            from ferry.sdk.watching import raise_if_failed

            raise_if_failed([j.wire() for j in handle.jobs()])


@cli.command("sweep-status")
@click.argument("name")
@namespace_option
@output_option("table", "wide", "json", "yaml")
def sweep_status(name: str, namespace: str | None, output: str) -> None:
    """A sweep's Jobs and its counts by state."""
    handle = client().get_sweep(name, namespace)
    render.print_jobs(handle.jobs(), output)
    if output in ("table", "wide"):
        click.echo(str(handle.summary()))
