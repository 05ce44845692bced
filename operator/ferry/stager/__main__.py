"""The stager's command line: `python3 -m ferry.stager setup|stage-in|archive`.

Owns: parsing arguments, running one command, and reporting its outcome the way a pod does:
on success a short JSON summary on stdout and in the termination log (for `archive`, the
{"uri", "files", "bytes", "manifest"} the operator reads), exit 0; on an expected failure one
line naming the input or file and the cause, on stderr and in the termination log, exit 1 (no
traceback), or exit `names.EXIT_UNAVAILABLE` (75) when the store or input server was unavailable
(an OutageError: the operator tries again later). An unexpected error prints its traceback to
stderr and still leaves a one-line termination message. Must not: decide anything the operator
decides.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ferry.api.names import EXIT_UNAVAILABLE
from ferry.stager import settings as settings_mod
from ferry.stager.errors import OutageError, StagerError

#: The kubelet keeps at most 4096 bytes of a termination message.
MAX_MESSAGE = 4000


def _write_termination(text: str) -> None:
    data = text.encode()
    if len(data) > MAX_MESSAGE:
        data = data[: MAX_MESSAGE - 3].decode(errors="ignore").encode() + "…".encode()
    try:
        with open(settings_mod.termination_log(), "wb") as out:
            out.write(data)
    except OSError:
        pass  # not in a pod (or no termination log): stdout/stderr still say it


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python3 -m ferry.stager", description="Ferry's staging and archive tool."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    setup = sub.add_parser("setup", help="prepare the workspace and copy the launcher")
    setup.add_argument("--bin", required=True, type=Path, help="where to put ferry-launch")
    sub.add_parser("stage-in", help="stage the input in FERRY_INPUT")
    sub.add_parser("archive", help="archive the workspace as FERRY_ARCHIVE says")
    return parser


def _run(args: argparse.Namespace) -> dict[str, Any]:
    settings = settings_mod.load()
    if args.command == "setup":
        from ferry.stager.setup import setup

        return setup(settings, args.bin)
    if args.command == "stage-in":
        from ferry.stager.inputs import parse_input, stage

        record = stage(parse_input(os.environ.get("FERRY_INPUT")), settings).wire()
        return {"input": record["name"], "files": len(record["files"]), "bytes": record["bytes"]}
    from ferry.stager.archive import Archiver, parse_plan
    from ferry.stager.store import client_from_env

    plan = parse_plan(os.environ.get("FERRY_ARCHIVE"))
    return Archiver(plan, client_from_env("archive.s3.endpoint"), settings).run()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    started = time.monotonic()
    try:
        summary = _run(args)
    except StagerError as exc:
        message = str(exc)
        _write_termination(message)
        print(message, file=sys.stderr)
        return EXIT_UNAVAILABLE if isinstance(exc, OutageError) else 1
    except KeyboardInterrupt:
        _write_termination(f"{args.command}: interrupted")
        return 130
    except Exception as exc:
        traceback.print_exc()
        first = (str(exc).strip().splitlines() or [""])[0]
        message = f"{args.command}: unexpected {type(exc).__name__}: {first}"
        _write_termination(message)
        print(message, file=sys.stderr)
        return 1
    if isinstance(summary, dict):
        # Read by the operator's ferry_data_seconds metric.
        summary["seconds"] = round(time.monotonic() - started, 3)
    text = json.dumps(summary, sort_keys=True)
    _write_termination(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
