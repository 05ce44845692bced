"""The `ferry` command (also `kubectl ferry`): run the operator, and every research user's
verb as a thin call into ferry.sdk.

Owns: `ferry operator run`, assembling the verbs (ferry.cli.jobs, ferry.cli.data) and turning
every failure into one line on stderr with a distinct exit code: 1 error, 2 usage, 3 not found,
4 refused, 5 timed out, 6 Job failed, 7 integrity, 8 configuration missing, 130 interrupted
(docs/cli.md). Set FERRY_DEBUG=1 for a traceback. Must not: hold lifecycle logic.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import sys
from typing import Any

import click

from ferry.cli import data as _data  # noqa: F401 - registers the verbs
from ferry.cli import jobs as _jobs  # noqa: F401 - registers the verbs
from ferry.cli.base import cli
from ferry.sdk.errors import FerryError

#: The operator's collector thresholds (Python's are 700, 10, 10). A Job as JSON parses into
#: a hundred-odd dicts and lists, so with 700 the young generation is collected every few
#: Jobs a listing brings and the whole heap dozens of times per 50,000 Jobs (a third of the
#: informer's CPU, bench/lifecycle.py --population; docs/benchmarks.md). Reference counting
#: frees nearly all of it anyway: the collector is only for cycles.
GC_THRESHOLDS = (50_000, 20, 20)


def run_operator(namespaces: list[str], verbose: bool) -> int:
    import kopf

    from ferry.config import OperatorConfig
    from ferry.handlers import operator as _handlers  # noqa: F401 - registers the handlers

    level = "DEBUG" if verbose else os.environ.get("FERRY_LOG_LEVEL", "INFO").upper()
    logging.basicConfig(
        level=getattr(logging, level, logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # kopf's own INFO lines repeat what Ferry logs; keep its warnings and errors.
    logging.getLogger("kopf").setLevel(logging.WARNING)
    config = OperatorConfig.from_env(os.environ)
    watched = namespaces or list(config.namespaces)
    kwargs: dict[str, Any] = {"clusterwide": not watched}
    if watched:
        kwargs["namespaces"] = watched
    if config.health_port:
        kwargs["liveness_endpoint"] = f"http://0.0.0.0:{config.health_port}/healthz"
    # What is imported by now (kopf, the client, the models) lives as long as the process:
    # kept out of every collection, and fewer collections.
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    asyncio.run(kopf.operator(standalone=True, **kwargs))
    return 0


@cli.group()
def operator() -> None:
    """Run the operator."""


@operator.command("run")
@click.option("-n", "--namespace", "namespaces", multiple=True, help="Watch only these.")
@click.option("-v", "--verbose", is_flag=True)
def operator_run(namespaces: tuple[str, ...], verbose: bool) -> None:
    """Run the operator in the foreground."""
    code = run_operator(list(namespaces), verbose)
    if code:
        raise click.exceptions.Exit(code)


def _usage(exc: click.UsageError) -> str:
    ctx = exc.ctx
    where = f"{ctx.command_path}: " if ctx is not None and ctx.command_path else "ferry: "
    if not where.startswith("ferry"):
        where = "ferry: " + where
    hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
    return f"{where}{exc.format_message()}{hint}"


def main(argv: list[str] | None = None) -> int:
    """Run `ferry`; the exit code (never a traceback unless FERRY_DEBUG is set)."""
    debug = bool(os.environ.get("FERRY_DEBUG"))
    try:
        result = cli.main(args=argv, prog_name="ferry", standalone_mode=False)
    except click.UsageError as exc:
        click.echo(_usage(exc), err=True)
        return 2
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except (click.Abort, KeyboardInterrupt):
        click.echo("ferry: interrupted", err=True)
        return 130
    except FerryError as exc:
        if debug:
            raise
        click.echo(f"ferry: {exc}", err=True)
        return exc.exit_code
    except click.ClickException as exc:
        click.echo(f"ferry: {exc.format_message()}", err=True)
        return exc.exit_code
    except BrokenPipeError:
        return 1
    except Exception as exc:
        if debug:
            raise
        click.echo(f"ferry: unexpected {type(exc).__name__}: {exc} (FERRY_DEBUG=1 shows where)",
                   err=True)  # fmt: skip
        return 1
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
