"""The `ferry` command (also `kubectl ferry`): run the operator, and follow Jobs.

Owns: argument parsing and printing. `ferry operator run` starts the operator;
`ferry timeline JOB` prints a Job's history and conditions. Must not: hold lifecycle logic.
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

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
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


def _kubectl(*args: str) -> Any:
    out = subprocess.run(
        ["kubectl", *args, "-o", "json"], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


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
    tl = sub.add_parser("timeline", help="print a Job's states over time")
    tl.add_argument("job")
    tl.add_argument("-n", "--namespace")
    args = parser.parse_args(argv)
    if args.command == "operator":
        return run_operator(args.namespace, args.verbose)
    if args.command == "timeline":
        return timeline(args.job, args.namespace)
    return 2


if __name__ == "__main__":
    sys.exit(main())
