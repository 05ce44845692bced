"""The CalculiX image, `localhost/ferry/calculix:2.20`: Debian bookworm's `calculix-ccx` (the
finite-element solver `ccx`, with SPOOLES and ARPACK), built without a container engine.

Layers: the tools image's base (Debian bookworm minbase + python3, shared with
`localhost/ferry/tools` and the MPI images, so a node stores it once), then what
`apt-get install --no-install-recommends calculix-ccx` adds to it (no docs, man pages or
locales), plus the user `ccx` (1000:1000, home and workdir /home/ccx), the image's default
user, so it runs under Pod Security `restricted` with Ferry's run pods' security context.
The layer is cached by a hash of its inputs like the MPI images' (`mpi._image`).

`OMP_NUM_THREADS=1`: ccx's solvers are threaded; one thread unless a Job asks for more.
The build checks that apt installed the version the tag promises.

Must not: use the network except through apt (Debian's mirror).
"""

from __future__ import annotations

import os
from pathlib import Path

from ferrydev.images.common import CALCULIX_IMAGE, PATH_ENV, Built, ImageError
from ferrydev.images.mpi import DPKG_NODOC, _apt_install, _image, _installed_version
from ferrydev.images.oci import ImageConfig

CCX_USER, CCX_UID, CCX_HOME = "ccx", 1000, "/home/ccx"
CALCULIX_PACKAGES = ("calculix-ccx",)
#: The Debian version the tag promises (calculix-ccx 2.20-1 in bookworm).
CALCULIX_VERSION = "2.20"
CALCULIX_CONFIG = ImageConfig(
    cmd=["ccx", "-v"],
    env=[PATH_ENV, f"HOME={CCX_HOME}", "LANG=C.UTF-8", "OMP_NUM_THREADS=1"],
    workdir=CCX_HOME,
    user=f"{CCX_UID}:{CCX_UID}",
)


def _calculix_step(rootfs: Path) -> None:
    (rootfs / "etc" / "dpkg" / "dpkg.cfg.d" / "ferry-nodoc").write_text(DPKG_NODOC)
    _apt_install(rootfs, CALCULIX_PACKAGES)
    version = _installed_version(rootfs, "calculix-ccx")
    if not version.startswith(CALCULIX_VERSION + "-"):
        raise ImageError(f"calculix-ccx {version} installed, the image promises {CALCULIX_VERSION}")
    etc = rootfs / "etc"
    with (etc / "passwd").open("a") as f:
        f.write(f"{CCX_USER}:x:{CCX_UID}:{CCX_UID}:CalculiX user:{CCX_HOME}:/bin/sh\n")
    with (etc / "group").open("a") as f:
        f.write(f"{CCX_USER}:x:{CCX_UID}:\n")
    with (etc / "shadow").open("a") as f:
        f.write(f"{CCX_USER}:*:0:0:99999:7:::\n")
    with (etc / "gshadow").open("a") as f:
        f.write(f"{CCX_USER}:!::\n")
    home = rootfs / CCX_HOME.lstrip("/")
    home.mkdir(parents=True)
    os.chown(home, CCX_UID, CCX_UID)


def build_calculix() -> Built:
    layer = ("calculix-rootfs", CALCULIX_PACKAGES, _calculix_step, DPKG_NODOC + CCX_HOME)
    return _image(CALCULIX_IMAGE, "calculix", [layer], CALCULIX_CONFIG)
