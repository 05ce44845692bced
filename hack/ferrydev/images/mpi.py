"""The MPI images: `localhost/ferry/openmpi:4.1.4` (OpenMPI, sshd and mpi4py, for MPI
Operator launchers and workers) and `localhost/ferry/lammps:20220106` (the same plus Debian's
LAMMPS), built from Debian bookworm packages without a container engine.

Layers: the tools image's base (Debian bookworm minbase + python3, debootstrap, shared with
`localhost/ferry/tools` so a node stores it once), then what `apt-get install` adds to it
(openmpi-bin, openssh-server, python3-mpi4py; no recommends, docs, man pages or locales),
then for LAMMPS what `apt-get install lammps` adds on top (without the compilers that
libkim-api2 asks for: `_lammps_step`). Each layer holds only the paths
the step created or changed (by ctime), with OCI whiteouts for what it removed, and each is
cached by a hash of its inputs (the base, the package list, the files written, this code).

What the Kubeflow MPI Operator (v2beta1, `build/base` of v0.8.2) expects of its images, and
what these give under Pod Security `restricted` (uid 1000, no capabilities, no_new_privs):
- the user `mpiuser` (1000:1000, home /home/mpiuser), the image's default user and workdir;
- sshd for a non-root user on port 2222: /etc/ssh/sshd_config (and ~/.sshd_config, a link to
  it, as the operator's examples start it with `-f`) has the host key at the mounted
  `~/.ssh/id_rsa`, `StrictModes no` (the Secret's files are root's), no PAM, no password,
  `PidFile none`; both `sshd -De` (the operator's default worker command) and `sshd -De -f
  /home/mpiuser/.sshd_config` work. The image's default command runs it. No host key is
  baked in (openssh-server's generated keys are removed).
- the ssh client connects to port 2222, without known_hosts (the .ssh directory is the
  operator's read-only Secret at `sshAuthMountPath: /home/mpiuser/.ssh`: id_rsa, id_rsa.pub,
  authorized_keys), in batch mode and quietly (no "Permanently added" line per rank).
- OpenMPI's shared-memory transport without cross-memory attach
  (OMPI_MCA_btl_vader_single_copy_mechanism=none: process_vm_readv between ranks needs
  ptrace rights that Yama or seccomp may refuse in a container).
Ferry's launcher needs nothing here: the run pod's setup container copies it in.

Must not: bake in any private key, or use the network except through apt (Debian's mirror).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from ferrydev.images.common import (
    LAMMPS_IMAGE,
    OPENMPI_IMAGE,
    PATH_ENV,
    Built,
    ImageError,
    cached,
    inputs_hash,
    log,
    recipe_files,
    run,
    workdir,
)
from ferrydev.images.oci import ImageConfig, write_oci_archive
from ferrydev.images.tools import DEBIAN_MIRROR, base_rootfs
from ferrydev.mounts import unmount_under
from ferrydev.paths import IMAGES

MPI_USER, MPI_UID, MPI_HOME = "mpiuser", 1000, "/home/mpiuser"
SSH_PORT = 2222
OPENMPI_PACKAGES = ("openmpi-bin", "openssh-server", "python3-mpi4py")
LAMMPS_PACKAGES = ("lammps",)
#: The OpenMPI series and LAMMPS release the tags promise; the build checks what apt installed.
OPENMPI_SERIES = "4.1."
LAMMPS_VERSION = "20220106"
#: Stands in for gfortran-12 in libkim-api2's `gfortran-12 | gfortran-mod-15`: LAMMPS runs
#: without a compiler; only building OpenKIM models (kim-api-collections-management) needs one.
KIM_STUB_CONTROL = """\
Package: ferry-kim-api-no-fortran
Version: 1.0
Architecture: all
Maintainer: Ferry <ferry@localhost>
Provides: gfortran-mod-15
Description: satisfies libkim-api2's Fortran dependency without a compiler
 LAMMPS runs without gfortran; building OpenKIM models needs it.
"""

#: dpkg leaves these out of every package installed from here on (copyright files kept).
DPKG_NODOC = """\
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
path-exclude=/usr/share/lintian/*
path-exclude=/usr/share/bug/*
"""
#: sshd for the non-root user (the MPI Operator's build/base/sshd_config, completed).
SSHD_CONFIG = f"""\
# sshd run as {MPI_USER} ({MPI_UID}) with no capabilities: `sshd -De` or
# `sshd -De -f {MPI_HOME}/.sshd_config` (the same file). The MPI Operator mounts its ssh Secret
# at {MPI_HOME}/.ssh (sshAuthMountPath): id_rsa, id_rsa.pub, authorized_keys.
Port {SSH_PORT}
HostKey {MPI_HOME}/.ssh/id_rsa
AuthorizedKeysFile .ssh/authorized_keys
PidFile none
# The Secret's files belong to root, readable by the pod's group.
StrictModes no
UsePAM no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
X11Forwarding no
PrintMotd no
"""
#: The ssh client mpirun uses to start its daemons on the workers.
SSH_CLIENT_CONFIG = f"""\
# mpirun's ssh to the MPI workers: their sshd listens on {SSH_PORT}; the .ssh directory is a
# read-only Secret, so no known_hosts; no prompts; no "Permanently added" line per rank.
Host *
    Port {SSH_PORT}
    StrictHostKeyChecking no
    UserKnownHostsFile /dev/null
    BatchMode yes
    LogLevel ERROR
"""
MPI_ENV = [
    PATH_ENV,
    f"HOME={MPI_HOME}",
    "LANG=C.UTF-8",
    "PYTHONUNBUFFERED=1",
    "OMPI_MCA_btl_vader_single_copy_mechanism=none",
]
OPENMPI_CONFIG = ImageConfig(
    cmd=["/usr/sbin/sshd", "-De", "-f", f"{MPI_HOME}/.sshd_config"],
    env=MPI_ENV,
    workdir=MPI_HOME,
    user=f"{MPI_UID}:{MPI_UID}",
)
LAMMPS_CONFIG = OPENMPI_CONFIG
#: What apt and dpkg leave behind that no image needs.
JUNK = (
    "var/lib/apt/lists",
    "var/cache/apt/archives",
    "var/log",
    "tmp",
)
JUNK_FILES = (
    "var/cache/apt/pkgcache.bin",
    "var/cache/apt/srcpkgcache.bin",
    "var/cache/debconf/config.dat-old",
    "var/cache/debconf/templates.dat-old",
    "var/lib/dpkg/status-old",
    "etc/group-",
    "etc/gshadow-",
    "etc/passwd-",
    "etc/shadow-",
    "usr/sbin/policy-rc.d",
)


def _apt_env() -> dict[str, str]:
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "DEBIAN_FRONTEND": "noninteractive",
    }
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        if os.environ.get(var):
            env[var] = os.environ[var]
    return env


def _apt_install(rootfs: Path, packages: tuple[str, ...]) -> None:
    """apt-get update and install (no recommends) in a chroot; services are not started."""
    shutil.copy2("/etc/resolv.conf", rootfs / "etc" / "resolv.conf")
    policy = rootfs / "usr" / "sbin" / "policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    env = _apt_env()
    chroot = ["chroot", str(rootfs)]
    for attempt in range(3):
        try:
            run([*chroot, "apt-get", "-q", "update"], env=env)
            run(
                [*chroot, "apt-get", "-q", "-y", "install", "--no-install-recommends", *packages],
                env=env,
            )
            return
        except ImageError:
            if attempt == 2:
                raise
            time.sleep(5 * (attempt + 1))


def _clean(rootfs: Path) -> None:
    for junk in JUNK:
        path = rootfs / junk
        if path.is_dir():
            for child in path.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                elif child.name != "lock":
                    child.unlink()
    for name in JUNK_FILES:
        (rootfs / name).unlink(missing_ok=True)
    (rootfs / "etc" / "resolv.conf").write_text("")


def _tree(rootfs: Path) -> set[str]:
    """Every path under rootfs (relative), but the kernel's and the scratch directories'."""
    out: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(rootfs):
        rel = Path(dirpath).relative_to(rootfs)
        if rel.parts and rel.parts[0] in ("proc", "sys", "dev", "run", "tmp"):
            dirnames[:] = []
            continue
        for name in [*dirnames, *filenames]:
            out.add((rel / name).as_posix())
    return out


def whiteouts(before: set[str], after: set[str]) -> list[str]:
    """The OCI whiteouts (`<dir>/.wh.<name>`) a layer needs for the paths of `before` absent
    from `after`: one for each removed path whose parent is still there (a removed
    directory's whiteout hides what was under it)."""
    gone = before - after
    return sorted(
        os.path.join(os.path.dirname(p), f".wh.{os.path.basename(p)}")
        for p in gone
        if os.path.dirname(p) not in gone
    )


def _diff_layer(lower: Path, rootfs: Path, since: float, out: Path) -> None:
    """The layer of what changed in rootfs (a copy of lower) since `since`: new or changed
    paths by ctime (a copy keeps them fresh, so the step must start after it), and the
    whiteouts of what the step removed from lower."""
    before, after = _tree(lower), _tree(rootfs)
    changed = sorted(p for p in after if (rootfs / p).lstat().st_ctime >= since)
    listing = out.parent / (out.name + ".members")
    listing.write_text("".join(f"{p}\n" for p in changed))
    run(
        [
            "tar", "--create", "--file", str(out), "--numeric-owner", "--no-recursion",
            "--xattrs", "-C", str(rootfs), "--verbatim-files-from", "--files-from", str(listing),
        ]
    )  # fmt: skip
    listing.unlink()
    names = whiteouts(before, after)
    if names:
        marks = out.parent / (out.name + ".wh")
        for name in names:
            (marks / name).parent.mkdir(parents=True, exist_ok=True)
            (marks / name).touch()
        run(["tar", "--append", "--file", str(out), "--numeric-owner", "-C", str(marks), *names])
        shutil.rmtree(marks)


def _layer(kind: str, lower: Path, key: str, step: Callable[[Path], None]) -> tuple[Path, Path]:
    """Run `step` on a copy of `lower`; cache the result (rootfs and its layer) by `key`."""
    cached_dir = IMAGES / f"{kind}-{key}"
    rootfs, layer = cached_dir / "rootfs", cached_dir / "layer.tar"
    if layer.exists() and rootfs.is_dir():
        return rootfs, layer
    with workdir(f"build-{kind}-") as work:
        target = work / "rootfs"
        run(["cp", "-a", str(lower), str(target)])
        # ctimes come from a coarse clock: wait past the copy before the step's cut-off.
        time.sleep(0.2)
        since = time.time() - 0.05
        try:
            step(target)
        finally:
            unmount_under(target)
        _clean(target)
        out = work / "out"
        out.mkdir()
        _diff_layer(lower, target, since, out / "layer.tar")
        target.rename(out / "rootfs")
        if cached_dir.exists():
            shutil.rmtree(cached_dir)
        out.rename(cached_dir)
    for old in IMAGES.glob(f"{kind}-*"):
        if old.is_dir() and old != cached_dir:
            shutil.rmtree(old, ignore_errors=True)
    return rootfs, layer


def _installed_version(rootfs: Path, package: str) -> str:
    return run(["chroot", str(rootfs), "dpkg-query", "-W", "-f=${Version}", package]).stdout.strip()


def _openmpi_step(rootfs: Path) -> None:
    dpkg_cfg = rootfs / "etc" / "dpkg" / "dpkg.cfg.d" / "ferry-nodoc"
    dpkg_cfg.write_text(DPKG_NODOC)
    _apt_install(rootfs, OPENMPI_PACKAGES)
    version = _installed_version(rootfs, "openmpi-bin")
    if not version.startswith(OPENMPI_SERIES):
        raise ImageError(f"openmpi-bin {version} installed, the image promises {OPENMPI_SERIES}x")
    etc = rootfs / "etc"
    for key in (etc / "ssh").glob("ssh_host_*"):
        key.unlink()  # openssh-server's postinst made them; sshd uses the mounted key
    (etc / "ssh" / "sshd_config").write_text(SSHD_CONFIG)
    (etc / "ssh" / "ssh_config.d" / "ferry-mpi.conf").write_text(SSH_CLIENT_CONFIG)
    with (etc / "passwd").open("a") as f:
        f.write(f"{MPI_USER}:x:{MPI_UID}:{MPI_UID}:MPI user:{MPI_HOME}:/bin/bash\n")
    with (etc / "group").open("a") as f:
        f.write(f"{MPI_USER}:x:{MPI_UID}:\n")
    with (etc / "shadow").open("a") as f:
        f.write(f"{MPI_USER}:*:0:0:99999:7:::\n")
    with (etc / "gshadow").open("a") as f:
        f.write(f"{MPI_USER}:!::\n")
    home = rootfs / MPI_HOME.lstrip("/")
    home.mkdir(parents=True)
    (home / ".sshd_config").symlink_to("/etc/ssh/sshd_config")
    # The operator mounts its Secret here; without one, an empty directory of the user's.
    (home / ".ssh").mkdir(mode=0o700)
    for path in (home, home / ".ssh"):
        os.chown(path, MPI_UID, MPI_UID)
    os.lchown(home / ".sshd_config", MPI_UID, MPI_UID)


def _lammps_step(rootfs: Path) -> None:
    """LAMMPS without the C and Fortran compilers (190 MB) that libkim-api2 depends on to
    build OpenKIM models: a local package provides the Fortran module ABI it asks for."""
    stub = rootfs / "tmp" / "kim-stub"
    (stub / "DEBIAN").mkdir(parents=True)
    (stub / "DEBIAN" / "control").write_text(KIM_STUB_CONTROL)
    chroot, deb = ["chroot", str(rootfs)], "/tmp/kim.deb"  # noqa: S108 - inside the chroot
    run([*chroot, "dpkg-deb", "--root-owner-group", "--build", f"/{stub.relative_to(rootfs)}", deb])
    run([*chroot, "dpkg", "-i", deb], env=_apt_env())
    _apt_install(rootfs, LAMMPS_PACKAGES)
    version = _installed_version(rootfs, "lammps")
    if not version.startswith(LAMMPS_VERSION):
        raise ImageError(f"lammps {version} installed, the image promises {LAMMPS_VERSION}")


def _image(
    name: str,
    kind: str,
    layers: list[tuple[str, tuple[str, ...], Callable[[Path], None], str]],
    config: ImageConfig,
) -> Built:
    t0 = time.monotonic()
    base, base_layer = base_rootfs()
    lower, key, layer_tars = base, base.parent.name, [base_layer]
    for layer_kind, packages, step, text in layers:
        key = inputs_hash(key, DEBIAN_MIRROR, ",".join(packages), text, *recipe_files())
        if not (IMAGES / f"{layer_kind}-{key}" / "layer.tar").exists():
            log(f"{name}: apt-get install {' '.join(packages)} (a minute or two)")
        lower, layer = _layer(layer_kind, lower, key, step)
        layer_tars.append(layer)
    tarball, digest = cached(kind, inputs_hash(key, repr(config)))
    if digest:
        return Built(name, tarball, digest, True, time.monotonic() - t0)
    digest = write_oci_archive(name, layer_tars, config, tarball)
    return Built(name, tarball, digest, False, time.monotonic() - t0)


_OPENMPI_LAYER = (
    "openmpi-rootfs",
    OPENMPI_PACKAGES,
    _openmpi_step,
    DPKG_NODOC + SSHD_CONFIG + SSH_CLIENT_CONFIG,
)


def build_openmpi() -> Built:
    return _image(OPENMPI_IMAGE, "openmpi", [_OPENMPI_LAYER], OPENMPI_CONFIG)


def build_lammps() -> Built:
    lammps_layer = ("lammps-rootfs", LAMMPS_PACKAGES, _lammps_step, KIM_STUB_CONTROL)
    return _image(LAMMPS_IMAGE, "lammps", [_OPENMPI_LAYER, lammps_layer], LAMMPS_CONFIG)
