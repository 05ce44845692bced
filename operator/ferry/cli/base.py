"""The `ferry` click group and what every verb shares: the client (made on first use from
--kubeconfig/--context), -n/--namespace, -o/--output, job-name completion.

Owns: the group and its shared options. Must not: hold a verb's logic.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ferry import __version__
from ferry.cli.render import FORMATS

if TYPE_CHECKING:
    from ferry.sdk import Client

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class State:
    kubeconfig: str | None = None
    context: str | None = None
    _client: Client | None = field(default=None, repr=False)

    def client(self) -> Client:
        if self._client is None:
            from ferry.sdk import Client

            self._client = Client(kubeconfig=self.kubeconfig, context=self.context)
        return self._client


def state() -> State:
    ctx = click.get_current_context()
    obj = ctx.find_object(State)
    if obj is None:  # pragma: no cover - the group always sets it
        obj = ctx.ensure_object(State)
    return obj


def client() -> Client:
    return state().client()


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--kubeconfig",
    metavar="PATH",
    help="Kubeconfig to use (default: $KUBECONFIG, then ~/.kube/config).",
)
@click.option("--context", metavar="NAME", help="Kubeconfig context to use.")
@click.version_option(__version__, prog_name="ferry")
@click.pass_context
def cli(ctx: click.Context, kubeconfig: str | None, context: str | None) -> None:
    """Ferry: run research-computing Jobs of registered Apps on Kubernetes.

    Every verb uses your own kubeconfig and permissions; uploads and downloads use the store
    named by FERRY_S3_ENDPOINT, FERRY_S3_ACCESS_KEY and FERRY_S3_SECRET_KEY (or AWS_*).
    Exit codes: 0 ok, 1 error, 2 usage, 3 not found, 4 refused, 5 timed out, 6 Job failed,
    7 integrity, 8 configuration missing, 130 interrupted.
    """
    ctx.obj = State(kubeconfig, context)


def complete_jobs(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """Shell completion of Job names in the namespace given so far (errors: no candidates)."""
    try:
        from ferry.sdk import Client

        root = ctx.find_root().params
        ns = ctx.params.get("namespace")
        c = Client(ns, kubeconfig=root.get("kubeconfig"), context=root.get("context"))
        names = [str(j.metadata.get("name")) for j in c.list()]
    except Exception:  # completion must never fail loudly
        return []
    return [n for n in names if n.startswith(incomplete)]


def namespace_option(f: F) -> F:
    return click.option(
        "-n", "--namespace", metavar="NS", help="Namespace (default: the context's)."
    )(f)


def output_option(*choices: str) -> Callable[[F], F]:
    allowed = choices or FORMATS

    def deco(f: F) -> F:
        return click.option(
            "-o",
            "--output",
            "output",
            type=click.Choice(allowed),
            default="table",
            show_default=True,
            help="Output format.",
        )(f)

    return deco


def job_argument(f: F) -> F:
    return click.argument("job", shell_complete=complete_jobs)(f)
