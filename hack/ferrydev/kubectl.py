"""kubectl against a local cluster: which binary, and running it with the cluster's kubeconfig.

Owns: choosing the kubectl built with the cluster (same version as the apiserver) over the
one on PATH, and running it with a kubeconfig, returning its output.

Must not: start or stop anything, or decide what to apply (callers pass the arguments).
The tests' richer helper (`tests.conftest.Kube`, which fails a test on an error) builds on
`kubectl_binary`.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from ferrydev.paths import BIN


def kubectl_binary() -> str:
    """The kubectl built with the cluster (same version), else the one on PATH."""
    built = BIN / "kubectl"
    return str(built) if built.exists() else "kubectl"


def run(
    kubeconfig: Path | str, *args: str, stdin: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """kubectl with `kubeconfig`; CalledProcessError on a failure when `check`."""
    return subprocess.run(
        [kubectl_binary(), "--kubeconfig", str(kubeconfig), *args],
        input=stdin,
        text=True,
        capture_output=True,
        check=check,
    )


def output(kubeconfig: Path | str, *args: str, stdin: str | None = None) -> str:
    """kubectl's standard output (5 min at most); RuntimeError with its stderr on a failure."""
    proc = subprocess.run(
        [kubectl_binary(), "--kubeconfig", str(kubeconfig), *args],
        input=stdin,
        text=True,
        capture_output=True,
        timeout=300,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout
