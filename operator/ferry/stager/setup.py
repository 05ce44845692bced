"""`setup --bin DIR`: prepare an attempt's workspace and hand the app container the launcher.

Owns: creating work/, inputs/, logs/ and records/ (and records/inputs/) under the workspace,
group-writable so the pod's user (and fsGroup) can write them, and copying the launcher into DIR as
`ferry-launch`, mode 0755, atomically. Idempotent: a restarted init container redoes it.
Must not: touch anything else in the workspace.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ferry.stager.errors import StagerError
from ferry.stager.settings import Settings

DIRS = ("work", "inputs", "logs", "records", "records/inputs")
LAUNCHER_NAME = "ferry-launch"


def setup(settings: Settings, bin_dir: Path) -> dict[str, str]:
    for name in DIRS:
        path = settings.workspace / name
        try:
            path.mkdir(parents=True, exist_ok=True)
            os.chmod(path, 0o2775)  # noqa: S103 - the pod's user and fsGroup write here
        except OSError as exc:
            raise StagerError(f"setup: cannot create {path}: {exc.strerror}") from None
    launcher = settings.launcher
    if not launcher.is_file():
        raise StagerError(
            f"setup: launcher {launcher} not found (FERRY_LAUNCHER); the tools image is incomplete"
        )
    target = bin_dir / LAUNCHER_NAME
    temp = bin_dir / f".{LAUNCHER_NAME}.tmp"
    try:
        bin_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(launcher, temp)
        os.chmod(temp, 0o755)  # noqa: S103 - an executable for the app container
        os.replace(temp, target)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise StagerError(
            f"setup: cannot copy the launcher to {target}: {exc.strerror or exc}"
        ) from None
    return {"workspace": str(settings.workspace), "launcher": str(target)}
