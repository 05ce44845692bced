"""Where things are: the repository, hack/, the cache of built binaries and images, versions.env.

Owns: the paths every other ferrydev module derives its files from, and reading
hack/versions.env.

Must not: start processes, create directories or read anything but versions.env (importing
it has no side effects).
"""

from __future__ import annotations

import os
from pathlib import Path

#: The repository root (ferrydev lives in <root>/hack/ferrydev; it runs from a checkout).
ROOT = Path(__file__).resolve().parents[2]
HACK = ROOT / "hack"
#: Built binaries and images, shared by every checkout on the machine ($FERRY_CACHE).
CACHE = Path(os.environ.get("FERRY_CACHE", Path.home() / ".cache" / "ferry"))
BIN = CACHE / "bin"
IMAGES = CACHE / "images"
VERSIONS_ENV = HACK / "versions.env"
KWOK_STAGES = HACK / "kwok-stages.yaml"


def versions(path: Path = VERSIONS_ENV) -> dict[str, str]:
    """The pinned versions of the cluster's parts (NAME=value lines; # comments)."""
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        out[key.strip()] = value.strip().strip("\"'")
    return out
