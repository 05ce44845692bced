"""A benchmark run's directory and how a run is stopped.

Owns: making --root fresh (refusing a directory that is not a cluster's, stopping a cluster
left running in it, then removing it), and SIGTERM (e.g. `timeout`) unwinding like Ctrl-C,
so that a run's `finally` stops its operators and tears its cluster down.

Must not: start anything.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path
from typing import Any

from ferrydev.bench import log
from ferrydev.cluster import stop as stop_cluster


def fresh_root(root: Path) -> bool:
    """Make `root` ready for a new cluster; False (said why) when it is not a cluster's."""
    if root.exists():
        if any(root.iterdir()) and not (root / "state.json").exists():
            log(f"{root} exists and is not a cluster directory; choose another --root")
            return False
        stop_cluster(root)
        subprocess.run(["rm", "-rf", str(root)], check=True)
    return True


def _interrupted(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def unwind_on_sigterm() -> None:
    signal.signal(signal.SIGTERM, _interrupted)
