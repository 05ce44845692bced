"""The tools image, `localhost/ferry/tools:0.1.0`: Ferry itself, for the stager and archive
pods on the real node.

Owns: three cached layers: Debian bookworm minbase + python3 (debootstrap), a venv at
/opt/ferry with Ferry's dependencies and build backend (keyed by pyproject.toml), and Ferry
installed from this tree (`pip install --no-deps` of pyproject.toml, README.md and operator/
only) plus /usr/local/bin/ferry-launch (`make launcher`); it runs as 1000. The top-level
Containerfile builds the same image with a container engine; `containerfile` keeps the two in
step and a build refuses to start while they differ.

Must not: put anything but the `ferry` package into the image (no hack/, so no `ferrydev`;
no tests), or use the network except through pip and debootstrap.
"""

from __future__ import annotations

import os
import shutil
import time
import tomllib
from pathlib import Path

from ferrydev.images.common import (
    TOOLS_IMAGE,
    Built,
    ImageError,
    cached,
    inputs_hash,
    log,
    recipe_files,
    run,
    workdir,
)
from ferrydev.images.oci import ImageConfig, tar_layer, write_oci_archive
from ferrydev.mounts import unmount_under
from ferrydev.paths import IMAGES, ROOT

DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = os.environ.get("FERRY_DEBIAN_MIRROR", "http://deb.debian.org/debian")
TOOLS_PACKAGES = ("python3", "python3-venv")
#: What `pip install .` of Ferry reads; the operator's package only (never hack/ferrydev).
FERRY_SOURCES = ("pyproject.toml", "README.md", "operator")
VENV = Path("/opt/ferry")
#: The image config; the top-level Containerfile says the same (`containerfile`).
TOOLS_CONFIG = ImageConfig(
    cmd=["python3", "-m", "ferry", "--help"],
    env=[
        "PATH=/opt/ferry/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "VIRTUAL_ENV=/opt/ferry",
        "PYTHONUNBUFFERED=1",
        "PYTHONDONTWRITEBYTECODE=1",
        "HOME=/home/ferry",
        "LANG=C.UTF-8",
    ],
    workdir="/home/ferry",
    user="1000:1000",
)


def base_rootfs() -> tuple[Path, Path]:
    """Debian minbase + python3 (debootstrap), cached as a directory and its layer tar."""
    key = inputs_hash(DEBIAN_SUITE, DEBIAN_MIRROR, ",".join(TOOLS_PACKAGES), "minbase")
    base = IMAGES / f"tools-base-{key}"
    rootfs, layer = base / "rootfs", base / "layer.tar"
    if layer.exists() and rootfs.is_dir():
        return rootfs, layer
    if shutil.which("debootstrap") is None:
        raise ImageError("debootstrap missing: apt-get install debootstrap")
    log(f"debootstrap {DEBIAN_SUITE} minbase + {' '.join(TOOLS_PACKAGES)} (about a minute)")
    with workdir("tools-base-") as work:
        target = work / "rootfs"
        try:
            run(
                [
                    "debootstrap",
                    "--variant=minbase",
                    f"--include={','.join(TOOLS_PACKAGES)}",
                    DEBIAN_SUITE,
                    str(target),
                    DEBIAN_MIRROR,
                ]
            )
        finally:
            unmount_under(target)
        for junk in (
            "var/cache/apt/archives",
            "var/lib/apt/lists",
            "usr/share/doc",
            "usr/share/man",
            "usr/share/info",
            "var/log",
        ):
            path = target / junk
            if path.is_dir():
                for child in path.iterdir():
                    if child.is_dir() and not child.is_symlink():
                        shutil.rmtree(child)
                    elif child.name != "lock":
                        child.unlink()
        for cache in target.glob("var/cache/apt/*.bin"):
            cache.unlink()
        (target / "etc" / "resolv.conf").write_text("")
        out = work / "out"
        out.mkdir()
        tar_layer(target, out / "layer.tar")
        target.rename(out / "rootfs")
        if base.exists():
            shutil.rmtree(base)
        out.rename(base)
    return rootfs, layer


def _ferry_sources() -> list[Path]:
    """The files `pip install .` reads: tracked or untracked-but-not-ignored, as the tree is."""
    listed = run(
        [
            "git",
            "-C",
            str(ROOT),
            "ls-files",
            "--cached",
            "--others",
            "--exclude-standard",
            *FERRY_SOURCES,
        ]
    ).stdout.split("\n")
    return sorted(ROOT / p for p in listed if p and (ROOT / p).is_file())


def _chroot_env(rootfs: Path) -> dict[str, str]:
    """Environment for pip inside the chroot (this machine's CA bundle and resolver)."""
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_CACHE_DIR": "1",
        "PIP_DEFAULT_TIMEOUT": os.environ.get("PIP_DEFAULT_TIMEOUT", "120"),
    }
    for var in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "HTTP_PROXY", "HTTPS_PROXY"):
        if os.environ.get(var):
            env[var] = os.environ[var]
    ca = Path(os.environ.get("PIP_CERT", "/etc/ssl/certs/ca-certificates.crt"))
    if ca.exists():
        shutil.copy2(ca, rootfs / "tmp" / "ca.crt")
        env["PIP_CERT"] = "/tmp/ca.crt"  # noqa: S108 - inside the chroot
    shutil.copy2("/etc/resolv.conf", rootfs / "etc" / "resolv.conf")
    return env


def _pip(rootfs: Path, env: dict[str, str], *args: str) -> None:
    for attempt in range(3):
        try:
            run(["chroot", str(rootfs), "/opt/ferry/bin/pip", "install", "-q", *args], env=env)
            return
        except ImageError:
            if attempt == 2:
                raise
            time.sleep(5 * (attempt + 1))


def _deps_rootfs(base: Path) -> tuple[Path, Path]:
    """The venv at /opt/ferry with Ferry's dependencies (and its build backend), the ferry
    user; cached by pyproject.toml, so that a change to Ferry's code rebuilds only the top
    layer (seconds, offline)."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    requirements = [
        *pyproject["project"]["dependencies"],
        *pyproject["build-system"]["requires"],
    ]
    key = inputs_hash(base.parent.name, "\n".join(requirements), *recipe_files())
    cached_dir = IMAGES / f"tools-deps-{key}"
    if (cached_dir / "layer.tar").exists() and (cached_dir / "rootfs").is_dir():
        return cached_dir / "rootfs", cached_dir / "layer.tar"
    log("building the dependencies layer (venv + pip install)")
    with workdir("tools-deps-") as work:
        rootfs = work / "rootfs"
        run(["cp", "-a", str(base), str(rootfs)])
        env = _chroot_env(rootfs)
        try:
            run(["chroot", str(rootfs), "python3", "-m", "venv", "/opt/ferry"], env=env)
            _pip(rootfs, env, *requirements)
        finally:
            unmount_under(rootfs)
        with (rootfs / "etc" / "passwd").open("a") as f:
            f.write("ferry:x:1000:1000:ferry:/home/ferry:/bin/sh\n")
        with (rootfs / "etc" / "group").open("a") as f:
            f.write("ferry:x:1000:\n")
        (rootfs / "home" / "ferry").mkdir(parents=True, exist_ok=True)
        os.chown(rootfs / "home" / "ferry", 1000, 1000)
        out = work / "out"
        out.mkdir()
        tar_layer(rootfs, out / "layer.tar", ["opt/ferry", "etc/passwd", "etc/group", "home/ferry"])
        rootfs.rename(out / "rootfs")
        if cached_dir.exists():
            shutil.rmtree(cached_dir)
        out.rename(cached_dir)
    for old in IMAGES.glob("tools-deps-*"):
        if old != cached_dir:
            shutil.rmtree(old, ignore_errors=True)
    return cached_dir / "rootfs", cached_dir / "layer.tar"


def build_tools() -> Built:
    from ferrydev.images import containerfile

    t0 = time.monotonic()
    containerfile.check()  # the Containerfile says what this builds, or nothing is built
    base, base_layer = base_rootfs()
    deps_rootfs, deps_layer = _deps_rootfs(base)
    sources = _ferry_sources()
    key = inputs_hash(deps_rootfs.parent.name, *recipe_files(), *sources)
    tarball, digest = cached("tools", key)
    if digest:
        return Built(TOOLS_IMAGE, tarball, digest, True, time.monotonic() - t0)
    log("building the Ferry layer (pip install --no-deps + ferry-launch)")
    run(["make", "-C", str(ROOT), "launcher"])
    launcher = ROOT / "build" / "ferry-launch"
    with workdir("tools-") as work:
        rootfs = work / "rootfs"
        run(["cp", "-a", str(deps_rootfs), str(rootfs)])
        src = rootfs / "tmp" / "ferry-src"
        for path in sources:
            rel = path.relative_to(ROOT)
            if rel.parts[:2] == ("operator", "launcher"):
                continue
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, src / rel)
        env = _chroot_env(rootfs)
        venv = rootfs / "opt" / "ferry"
        # The copies above must fall before `since`, pip's files after it. ctimes come from a
        # coarse clock (a few ms behind): wait past it, then allow a little for it. (`since`
        # one second back took in the tail of the venv copy, so the Ferry layer held part of
        # the dependencies, more or less from one build to the next.)
        time.sleep(0.2)
        since = time.time() - 0.05
        try:
            _pip(rootfs, env, "--no-deps", "--no-build-isolation", "/tmp/ferry-src")  # noqa: S108
            run(["chroot", str(rootfs), "/opt/ferry/bin/python3", "-c", "import ferry.stager"])
        finally:
            unmount_under(rootfs)
        # The layer: what pip added or changed in the venv (by ctime, which copies keep fresh).
        changed = [
            p.relative_to(rootfs).as_posix()
            for p in sorted(venv.rglob("*"))
            if p.lstat().st_ctime >= since
        ]
        (rootfs / "usr" / "local" / "bin").mkdir(parents=True, exist_ok=True)
        shutil.copy2(launcher, rootfs / "usr" / "local" / "bin" / "ferry-launch")
        listing = work / "members"
        listing.write_text("\n".join([*changed, "usr/local/bin/ferry-launch"]) + "\n")
        layer = work / "ferry-layer.tar"
        run(
            [
                "tar", "--create", "--file", str(layer), "--numeric-owner", "--no-recursion",
                "-C", str(rootfs), "--verbatim-files-from", "--files-from", str(listing),
            ]
        )  # fmt: skip
        digest = write_oci_archive(
            TOOLS_IMAGE, [base_layer, deps_layer, layer], TOOLS_CONFIG, tarball
        )
    return Built(TOOLS_IMAGE, tarball, digest, False, time.monotonic() - t0)
