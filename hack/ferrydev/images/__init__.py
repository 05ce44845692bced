"""Container images for Ferry's local real node, built without Docker or a registry.

Each image is written as an OCI image-layout tarball (`oci`) that `ctr -n k8s.io images
import` accepts, and is cached under ~/.cache/ferry/images keyed by a hash of its inputs
(`common`), so a warm run only checks hashes.

Images (fully qualified names; pods use them with imagePullPolicy: Never):
  localhost/ferry/pause:3.10    hack/pause (Go, static): the pod sandbox; containerd's
                                sandbox_image names it (`small`)
  localhost/ferry/busybox:1.36  Debian's busybox-static with its applet symlinks (`small`)
  localhost/ferry/mpi-operator:<MPI_OPERATOR_VERSION>
                                the Kubeflow MPI Operator's static controller binary
                                (hack/build-tools.sh mpi-operator) alone; runs as 65532 (`small`)
  localhost/ferry/tools:0.1.0   Debian bookworm minbase (debootstrap) + python3, a venv at
                                /opt/ferry with Ferry installed from this repository (the
                                `ferry` package only) and /usr/local/bin/ferry-launch
                                (`make launcher`); runs as 1000 (`tools`)
  localhost/ferry/openmpi:4.1.4 the tools image's Debian base + openmpi-bin, openssh-server
                                and python3-mpi4py: MPI Operator launchers and workers, as
                                mpiuser (1000), sshd on 2222 (`mpi`); built only when named
  localhost/ferry/lammps:20220106
                                the OpenMPI image + Debian's LAMMPS (`lmp`) (`mpi`); built
                                only when named
  localhost/ferry/calculix:2.20 the tools image's Debian base + calculix-ccx (`ccx`), as ccx
                                (1000) (`calculix`); built only when named

Usage:
  python -m ferrydev.images build [NAME ...]        build (or reuse) images; prints their tarballs
                                                    (no NAME: all but the MPI and
                                                    CalculiX images)
  python -m ferrydev.images import --address SOCK [NAME ...]
                                                    build if needed and import into a containerd
  python -m ferrydev.images export --out DIR [NAME ...]
                                                    build if needed and write each image as
                                                    DIR/<name>.oci.tar and .docker.tar
                                                    (`archives`; `make image`)

Needs root (debootstrap, chroot), go, GNU tar, ctr, busybox-static and debootstrap
(hack/install-deps.sh installs them with FERRY_WITH_NODE=1).

Owns (this module): building a list of images in order, pruning superseded tarballs, and
importing into a containerd what it lacks. Must not: start containerd (the cluster does).
"""

from __future__ import annotations

import time
from pathlib import Path

from ferrydev.images.calculix import build_calculix
from ferrydev.images.common import (
    ALL,
    BUSYBOX_IMAGE,
    CALCULIX_IMAGE,
    LAMMPS_IMAGE,
    MPI_OPERATOR_IMAGE,
    OPENMPI_IMAGE,
    OPTIONAL,
    PAUSE_IMAGE,
    TOOLS_IMAGE,
    Built,
    ImageError,
    log,
    run,
)
from ferrydev.images.mpi import build_lammps, build_openmpi
from ferrydev.images.small import build_busybox, build_mpi_operator, build_pause
from ferrydev.images.tools import build_tools
from ferrydev.paths import IMAGES

__all__ = [
    "ALL",
    "BUILDERS",
    "BUSYBOX_IMAGE",
    "CALCULIX_IMAGE",
    "LAMMPS_IMAGE",
    "MPI_OPERATOR_IMAGE",
    "OPENMPI_IMAGE",
    "OPTIONAL",
    "PAUSE_IMAGE",
    "TOOLS_IMAGE",
    "Built",
    "ImageError",
    "build",
    "import_images",
]

BUILDERS = {
    PAUSE_IMAGE: build_pause,
    BUSYBOX_IMAGE: build_busybox,
    TOOLS_IMAGE: build_tools,
    MPI_OPERATOR_IMAGE: build_mpi_operator,
    OPENMPI_IMAGE: build_openmpi,
    LAMMPS_IMAGE: build_lammps,
    CALCULIX_IMAGE: build_calculix,
}


def build(names: tuple[str, ...] | list[str] = ALL) -> list[Built]:
    built = []
    for name in names:
        if name not in BUILDERS:
            raise ImageError(f"unknown image {name}; known: {', '.join(BUILDERS)}")
        b = BUILDERS[name]()
        log(f"{name}: {'cached' if b.cached else 'built'} in {b.seconds:.1f}s ({b.tarball.name})")
        built.append(b)
        _prune(b)
    return built


def _prune(keep: Built) -> None:
    """Drop older tarballs of the same image (their inputs changed)."""
    kind = keep.tarball.name.split("-", 1)[0]
    for old in IMAGES.glob(f"{kind}-*.oci.tar"):
        if old != keep.tarball and not old.name.startswith("tools-base-"):
            old.unlink(missing_ok=True)
            Path(str(old) + ".digest").unlink(missing_ok=True)


def ctr(address: str, *args: str) -> str:
    return run(["ctr", "--address", address, "--namespace", "k8s.io", *args]).stdout


def import_images(address: str, built: list[Built]) -> float:
    """Import into the containerd at `address` (namespace k8s.io) what it lacks; seconds spent."""
    t0 = time.monotonic()
    listing = ctr(address, "images", "ls")
    have = {
        (cols[0], cols[2]) for cols in (line.split() for line in listing.splitlines()[1:]) if cols
    }
    for b in built:
        if (b.name, b.manifest_digest) in have:
            continue
        ctr(address, "images", "import", str(b.tarball))
        log(f"imported {b.name}")
    return time.monotonic() - t0
