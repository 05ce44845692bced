"""Unmounting what a chroot or a real node left mounted under a directory.

Owns: `unmount_under`, used by the image builds (debootstrap and pip in a chroot) and by the
real node's teardown (the kubelet's and containerd's mounts under the cluster directory).

Must not: mount anything, or touch mounts outside the directory it is given.
"""

from __future__ import annotations

import subprocess
from pathlib import Path


def unmount_under(path: Path) -> None:
    """Unmount everything mounted at or below `path`, deepest first."""
    prefix = str(path.resolve())
    mounts = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].replace("\\040", " ")
            if point == prefix or point.startswith(prefix + "/"):
                mounts.append(point)
    for point in sorted(mounts, key=lambda p: p.count("/"), reverse=True):
        if subprocess.run(["umount", point], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", point], capture_output=True)
