"""The `ferry` command (also `kubectl ferry`): run the operator, submit and follow Jobs.

Owns: argument parsing and printing. `ferry operator run` starts the operator; `submit`,
`list`, `timeline`, `cancel`, `suspend`, `resume` and `logs` work through kubectl, so they use
the caller's own kubeconfig and permissions. Must not: hold lifecycle logic.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import subprocess
import sys
from typing import Any


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
    asyncio.run(kopf.operator(standalone=True, **kwargs))
    return 0


class CommandError(RuntimeError):
    """kubectl refused; the message is its own."""


def _run(args: list[str], stdin: str | None = None) -> str:
    proc = subprocess.run(["kubectl", *args], input=stdin, capture_output=True, text=True)
    if proc.returncode != 0:
        raise CommandError(proc.stderr.strip() or f"kubectl {' '.join(args)} failed")
    return proc.stdout


def _kubectl(*args: str) -> Any:
    return json.loads(_run([*args, "-o", "json"]))


def _ns(namespace: str | None) -> list[str]:
    return ["-n", namespace] if namespace else []


def submit(args: argparse.Namespace) -> int:
    from ferry.cli.submit import job_manifest

    labels = dict(label.split("=", 1) for label in args.label)
    manifest = job_manifest(
        args.name,
        args.app,
        args.param,
        args.input,
        max_run_seconds=args.max_run_seconds,
        labels=labels,
    )
    print(_run(["create", "-f", "-", *_ns(args.namespace)], stdin=json.dumps(manifest)).strip())
    if args.wait:
        _run(
            [
                "wait",
                "--for=condition=Reconciling=False",
                f"fjob/{args.name}",
                f"--timeout={args.timeout}s",
                *_ns(args.namespace),
            ]
        )
        return timeline(args.name, args.namespace)
    return 0


def list_jobs(namespace: str | None) -> int:
    print(_run(["get", "fjob", "-o", "wide", *_ns(namespace)]), end="")
    return 0


def patch_spec(name: str, namespace: str | None, field: str, value: bool) -> int:
    body = json.dumps({"spec": {field: value}})
    print(_run(["patch", "fjob", name, "--type=merge", "-p", body, *_ns(namespace)]).strip())
    return 0


def logs(name: str, namespace: str | None, attempt: int | None) -> int:
    job = _kubectl("get", "fjob", name, *_ns(namespace))
    n = attempt or (job.get("status") or {}).get("attempt")
    if not n:
        raise CommandError(f"Job {name} has not started a pod yet")
    from ferry.api import names

    pod = names.run_pod_name(name, int(n))
    print(_run(["logs", pod, "-c", names.APP_CONTAINER, *_ns(namespace)]), end="")
    return 0


def timeline(name: str, namespace: str | None) -> int:
    args = ["get", "fjob", name] + (["-n", namespace] if namespace else [])
    job = _kubectl(*args)
    status = job.get("status") or {}
    print(
        f"Job {job['metadata']['namespace']}/{name}: {status.get('state')} ({status.get('reason')})"
    )
    print(f"  {status.get('message', '')}")
    for entry in status.get("history") or []:
        reason = entry.get("reason", "")
        print(f"  {entry['time']}  {entry['state']:<16} {reason:<20} {entry.get('message', '')}")
    outputs = status.get("outputs")
    if outputs:
        files, size = outputs.get("files"), outputs.get("bytes")
        print(f"  outputs: {outputs.get('uri')} ({files} files, {size} bytes)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ferry", description="Ferry: research-computing Jobs on Kubernetes"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    op = sub.add_parser("operator", help="run the operator")
    op_sub = op.add_subparsers(dest="action", required=True)
    run = op_sub.add_parser("run", help="run the operator in the foreground")
    run.add_argument("-n", "--namespace", action="append", default=[], help="watch only these")
    run.add_argument("-v", "--verbose", action="store_true")
    sb = sub.add_parser("submit", help="create a Job of an App")
    sb.add_argument("app")
    sb.add_argument("--name", required=True, help="the Job's name")
    sb.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE")
    sb.add_argument(
        "-i",
        "--input",
        action="append",
        default=[],
        metavar="NAME=SOURCE",
        help="s3://bucket/key, s3://bucket/prefix/, https://url[#sha256=HEX], "
        "pvc://claim/path, configmap://name/key or @file",
    )
    sb.add_argument("-l", "--label", action="append", default=[], metavar="KEY=VALUE")
    sb.add_argument("--max-run-seconds", type=int)
    sb.add_argument("--wait", action="store_true", help="wait until it ends; print its timeline")
    sb.add_argument("--timeout", type=int, default=3600)
    sb.add_argument("-n", "--namespace")
    ls = sub.add_parser("list", help="list Jobs")
    ls.add_argument("-n", "--namespace")
    for name, text in (
        ("timeline", "print a Job's states over time"),
        ("cancel", "cancel a Job"),
        ("suspend", "suspend a Job"),
        ("resume", "resume a suspended Job"),
        ("logs", "print the app's output"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("job")
        p.add_argument("-n", "--namespace")
        if name == "logs":
            p.add_argument("--attempt", type=int)
    args = parser.parse_args(argv)
    try:
        if args.command == "operator":
            return run_operator(args.namespace, args.verbose)
        if args.command == "submit":
            return submit(args)
        if args.command == "list":
            return list_jobs(args.namespace)
        if args.command == "timeline":
            return timeline(args.job, args.namespace)
        if args.command == "cancel":
            return patch_spec(args.job, args.namespace, "cancel", True)
        if args.command in ("suspend", "resume"):
            return patch_spec(args.job, args.namespace, "suspend", args.command == "suspend")
        if args.command == "logs":
            return logs(args.job, args.namespace, args.attempt)
    except (CommandError, ValueError) as exc:
        print(f"ferry: {exc}", file=sys.stderr)
        return 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
