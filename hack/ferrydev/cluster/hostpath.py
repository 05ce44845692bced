"""The host-path permissions watcher: `python .../ferrydev/cluster/hostpath.py SINCE`.

Owns: a loop (a child process of a real-node cluster, stopped with it) that makes every
host-path volume directory created after SINCE (kube-controller-manager's provisioner makes
them 0750 root:root) writable by any uid, so that non-root pods can use their volumes.

Must not: touch anything outside /tmp/hostpath_pv (kube-controller-manager's fixed
directory), or import anything but the standard library: it runs as a script, by file, with
whichever Python runs the cluster (ferrydev need not be importable there).
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path

HOSTPATH_PV_DIR = Path("/tmp/hostpath_pv")  # noqa: S108 - kube-controller-manager's, fixed


def hostpath_perms(since: float) -> None:
    """Loop: make host-path volume directories created after `since` writable by any uid."""
    while True:
        with contextlib.suppress(OSError):
            for d in HOSTPATH_PV_DIR.iterdir():
                with contextlib.suppress(OSError):
                    st = d.stat()
                    if st.st_ctime >= since - 1 and d.is_dir() and st.st_mode & 0o777 != 0o777:
                        d.chmod(0o777)
        time.sleep(0.2)


if __name__ == "__main__":
    if len(sys.argv) == 2:
        hostpath_perms(float(sys.argv[1]))
