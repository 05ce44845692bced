"""The small images of the real node: the pod sandbox (pause), busybox and the MPI Operator.

Owns: `localhost/ferry/pause:3.10`, hack/pause (Go, static) built with the local Go
toolchain, containerd's sandbox image; `localhost/ferry/busybox:1.36`, Debian's
busybox-static with its applet symlinks, a passwd/group with root, user (1000) and nobody;
and `localhost/ferry/mpi-operator:<version>`, the Kubeflow MPI Operator's static controller
(hack/build-tools.sh builds it) with a passwd naming 65532, its user.

Must not: pull anything (no registry): the inputs are this repository, Debian's packages and
the Go-built binaries of ~/.cache/ferry/bin.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from ferrydev.images.common import (
    BUSYBOX_IMAGE,
    MPI_OPERATOR_IMAGE,
    MPI_OPERATOR_VERSION,
    PAUSE_IMAGE,
    Built,
    ImageError,
    cached,
    inputs_hash,
    recipe_files,
    run,
    workdir,
)
from ferrydev.images.oci import ImageConfig, tar_layer, write_oci_archive
from ferrydev.paths import BIN, HACK


def build_pause() -> Built:
    t0 = time.monotonic()
    src = HACK / "pause"
    go_version = run(["go", "env", "GOVERSION"]).stdout.strip()
    key = inputs_hash(src / "main.go", src / "go.mod", go_version, *recipe_files())
    tarball, digest = cached("pause", key)
    if digest:
        return Built(PAUSE_IMAGE, tarball, digest, True, time.monotonic() - t0)
    with workdir("pause-") as work:
        rootfs = work / "rootfs"
        rootfs.mkdir()
        env = {**os.environ, "CGO_ENABLED": "0", "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod"}
        run(
            ["go", "build", "-trimpath", "-ldflags", "-s -w", "-o", str(rootfs / "pause"), "."],
            cwd=str(src),
            env=env,
        )
        layer = work / "layer.tar"
        tar_layer(rootfs, layer)
        digest = write_oci_archive(
            PAUSE_IMAGE, [layer], ImageConfig(entrypoint=["/pause"], user="65535:65535"), tarball
        )
    return Built(PAUSE_IMAGE, tarball, digest, False, time.monotonic() - t0)


def build_busybox() -> Built:
    t0 = time.monotonic()
    busybox = Path("/bin/busybox")
    static = subprocess.run(["dpkg", "-s", "busybox-static"], capture_output=True).returncode == 0
    if not (static and busybox.exists()):
        raise ImageError("Debian's busybox-static is missing: apt-get install busybox-static")
    key = inputs_hash(busybox, *recipe_files())
    tarball, digest = cached("busybox", key)
    if digest:
        return Built(BUSYBOX_IMAGE, tarball, digest, True, time.monotonic() - t0)
    with workdir("busybox-") as work:
        rootfs = work / "rootfs"
        for d in ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "root", "home/user", "var"):
            (rootfs / d).mkdir(parents=True, exist_ok=True)
        (rootfs / "tmp").mkdir(mode=0o1777)
        os.chmod(rootfs / "tmp", 0o1777)  # noqa: S103 - /tmp of an image
        shutil.copy2(busybox, rootfs / "bin" / "busybox")
        applets = run([str(busybox), "--list-full"]).stdout.split()
        for applet in applets:
            link = rootfs / applet
            if applet == "bin/busybox" or link.exists() or link.is_symlink():
                continue
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to("/bin/busybox")
        (rootfs / "etc" / "passwd").write_text(
            "root:x:0:0:root:/root:/bin/sh\n"
            "user:x:1000:1000:user:/home/user:/bin/sh\n"
            "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
        )
        (rootfs / "etc" / "group").write_text("root:x:0:\nuser:x:1000:\nnogroup:x:65534:\n")
        os.chown(rootfs / "home" / "user", 1000, 1000)
        layer = work / "layer.tar"
        tar_layer(rootfs, layer)
        digest = write_oci_archive(BUSYBOX_IMAGE, [layer], ImageConfig(cmd=["sh"]), tarball)
    return Built(BUSYBOX_IMAGE, tarball, digest, False, time.monotonic() - t0)


def build_mpi_operator() -> Built:
    t0 = time.monotonic()
    binary = BIN / f"mpi-operator-{MPI_OPERATOR_VERSION}"
    if not binary.exists():
        raise ImageError(f"{binary} is missing: run hack/build-tools.sh mpi-operator")
    key = inputs_hash(binary, *recipe_files())
    tarball, digest = cached("mpioperator", key)
    if digest:
        return Built(MPI_OPERATOR_IMAGE, tarball, digest, True, time.monotonic() - t0)
    with workdir("mpioperator-") as work:
        rootfs = work / "rootfs"
        (rootfs / "etc").mkdir(parents=True)
        (rootfs / "tmp").mkdir(mode=0o1777)
        os.chmod(rootfs / "tmp", 0o1777)  # noqa: S103 - /tmp of an image
        shutil.copy2(binary, rootfs / "mpi-operator")
        (rootfs / "etc" / "passwd").write_text(
            "root:x:0:0:root:/:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/:/sbin/nologin\n"
        )
        (rootfs / "etc" / "group").write_text("root:x:0:\nnonroot:x:65532:\n")
        layer = work / "layer.tar"
        tar_layer(rootfs, layer)
        config = ImageConfig(entrypoint=["/mpi-operator"], user="65532:65532")
        digest = write_oci_archive(MPI_OPERATOR_IMAGE, [layer], config, tarball)
    return Built(MPI_OPERATOR_IMAGE, tarball, digest, False, time.monotonic() - t0)
