"""What every image build shares: the image names, errors, running a command, hashing inputs
and the cache directory of built images.

Owns: the fully qualified names of the node's images, `ImageError`, `Built` (one built image:
its tarball and manifest digest), running a build command (an `ImageError` with its output
on failure), the cache key of an image (a hash of its inputs: strings, bytes, files by
content, and the image code itself), looking a key up in ~/.cache/ferry/images and a scratch
directory there that is unmounted and removed afterwards.

Must not: build or import any image (the builders and `ferrydev.images` do).
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ferrydev.mounts import unmount_under
from ferrydev.paths import IMAGES, ROOT, versions

PAUSE_IMAGE = "localhost/ferry/pause:3.10"
# Debian bookworm's busybox-static is 1.35.0; the tag is the name Ferry's tests use.
BUSYBOX_IMAGE = "localhost/ferry/busybox:1.36"
TOOLS_IMAGE = "localhost/ferry/tools:0.1.0"
# The Kubeflow MPI Operator's controller (hack/build-tools.sh mpi-operator), tagged by its version.
MPI_OPERATOR_VERSION = versions()["MPI_OPERATOR_VERSION"]
MPI_OPERATOR_IMAGE = f"localhost/ferry/mpi-operator:{MPI_OPERATOR_VERSION}"
ALL = (PAUSE_IMAGE, BUSYBOX_IMAGE, TOOLS_IMAGE, MPI_OPERATOR_IMAGE)
#: The MPI images (`mpi`): built on demand (tests/e2e's `openmpi_image`), never by default.
OPENMPI_IMAGE = "localhost/ferry/openmpi:4.1.4"
LAMMPS_IMAGE = "localhost/ferry/lammps:20220106"
#: Debian's CalculiX (`calculix`): built on demand (tests/e2e's `calculix_image`).
CALCULIX_IMAGE = "localhost/ferry/calculix:2.20"
OPTIONAL = (OPENMPI_IMAGE, LAMMPS_IMAGE, CALCULIX_IMAGE)

PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Bump when the recipe of an image changes in a way its hashed inputs do not show.
RECIPE = "2"


class ImageError(RuntimeError):
    """An image could not be built or imported; the message says why."""


@dataclass
class Built:
    name: str
    tarball: Path
    manifest_digest: str
    cached: bool
    seconds: float


def log(msg: str) -> None:
    print(f"[images] {msg}", file=sys.stderr, flush=True)


def run(
    argv: list[str], cwd: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, text=True, capture_output=True, cwd=cwd, env=env)
    if proc.returncode != 0:
        raise ImageError(
            f"{' '.join(map(str, argv))} failed ({proc.returncode}):\n"
            f"{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
        )
    return proc


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def recipe_files() -> list[Path]:
    """The image code itself (this package's modules): a change to it rebuilds every image."""
    return sorted(Path(__file__).resolve().parent.glob("*.py"))


def inputs_hash(*parts: str | bytes | Path) -> str:
    """A short hash of strings, bytes and files (by content, and by their path inside the
    checkout: two clones of one commit share the cache, and two checkouts building at once
    do not sweep each other's layers); the cache key of an image."""
    h = hashlib.sha256(RECIPE.encode())
    for part in parts:
        if isinstance(part, Path):
            resolved = part.resolve()
            name = resolved.relative_to(ROOT) if resolved.is_relative_to(ROOT) else resolved
            h.update(name.as_posix().encode() + b"\0" + sha256_file(part).encode())
        elif isinstance(part, str):
            h.update(part.encode())
        else:
            h.update(part)
        h.update(b"\0")
    return h.hexdigest()[:20]


def cached(kind: str, key: str) -> tuple[Path, str | None]:
    """The tarball path for `key`, and its manifest digest if it was built already."""
    tarball = IMAGES / f"{kind}-{key}.oci.tar"
    digest_file = tarball.parent / (tarball.name + ".digest")
    if tarball.exists() and digest_file.exists():
        return tarball, digest_file.read_text().strip()
    return tarball, None


#: The scratch directories' prefix (`workdir`); never the start of a cached layer's name.
WORK_PREFIX = ".work-"


@contextlib.contextmanager
def workdir(prefix: str) -> Iterator[Path]:
    """A scratch directory under the image cache, removed afterwards. Its name starts with
    `WORK_PREFIX`, which no cached layer's name does: a build that sweeps its kind's stale
    layers (`tools-deps-*`) must not delete another build's scratch of the same kind (two
    checkouts building at once lost a rootfs mid-chroot that way)."""
    IMAGES.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=WORK_PREFIX + prefix, dir=IMAGES))
    try:
        yield work
    finally:
        unmount_under(work)
        shutil.rmtree(work, ignore_errors=True)
