"""A Go module's source at an exact version, for the manifests and CRDs the local cluster
reads from it (the MPI Operator's, Kueue's).

Owns: `go mod download -json MODULE@VERSION` from a scratch module of its own (the proxy may
refuse a module's version list, so nothing is resolved, only that exact version fetched) and
the directory Go's module cache keeps it in. Must not: build anything, or write into Go's
module cache but through `go`.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from ferrydev.cluster.state import ClusterError


def source_dir(module: str, version: str, work: Path) -> Path:
    """The module's source directory at `version` (read-only, as Go keeps it), downloaded
    through the scratch module in `work` when not in Go's module cache yet."""
    work.mkdir(parents=True, exist_ok=True)
    gomod = work / "go.mod"
    if not gomod.exists():
        gomod.write_text("module ferry.dev/gomodule\n\ngo 1.23\n")
    proc = subprocess.run(
        ["go", "mod", "download", "-json", f"{module}@{version}"],
        cwd=work,
        env={**os.environ, "GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if proc.returncode != 0:
        raise ClusterError(f"go mod download {module}@{version}: {proc.stderr}{proc.stdout}")
    return Path(json.loads(proc.stdout)["Dir"])
