#!/usr/bin/env python3
"""Container images for Ferry's local real node, built without Docker or a registry.

Each image is written as an OCI image-layout tarball (oci-layout, index.json, blobs: one
uncompressed layer tar per layer, an image config with Entrypoint/Cmd/Env/WorkingDir/User and
a manifest) that `ctr -n k8s.io images import` accepts, and is cached under
~/.cache/ferry/images keyed by a hash of its inputs, so a warm run only checks hashes.

Images (fully qualified names; pods use them with imagePullPolicy: Never):
  localhost/ferry/pause:3.10    hack/pause (Go, static): the pod sandbox; containerd's
                                sandbox_image names it
  localhost/ferry/busybox:1.36  Debian's busybox-static with its applet symlinks
  localhost/ferry/tools:0.1.0   Debian bookworm minbase (debootstrap) + python3, a venv at
                                /opt/ferry with Ferry installed from this repository and
                                /usr/local/bin/ferry-launch (`make launcher`); runs as 1000

Usage:
  hack/images.py build [NAME ...]           build (or reuse) images; prints their tarballs
  hack/images.py import --address SOCK      build if needed and import into a containerd

Needs root (debootstrap, chroot), go, GNU tar, ctr, busybox-static and debootstrap
(hack/install-deps.sh installs them with FERRY_WITH_NODE=1).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

HACK = Path(__file__).resolve().parent
ROOT = HACK.parent
CACHE = Path(os.environ.get("FERRY_CACHE", Path.home() / ".cache" / "ferry"))
IMAGES = CACHE / "images"

PAUSE_IMAGE = "localhost/ferry/pause:3.10"
# Debian bookworm's busybox-static is 1.35.0; the tag is the name Ferry's tests use.
BUSYBOX_IMAGE = "localhost/ferry/busybox:1.36"
TOOLS_IMAGE = "localhost/ferry/tools:0.1.0"
ALL = (PAUSE_IMAGE, BUSYBOX_IMAGE, TOOLS_IMAGE)

DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = os.environ.get("FERRY_DEBIAN_MIRROR", "http://deb.debian.org/debian")
TOOLS_PACKAGES = ("python3", "python3-venv")
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Bump when the recipe of an image changes in a way its hashed inputs do not show.
RECIPE = "2"


class ImageError(RuntimeError):
    """An image could not be built or imported; the message says why."""


@dataclass
class ImageConfig:
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    env: list[str] = field(default_factory=lambda: [PATH_ENV])
    workdir: str = "/"
    user: str = ""


@dataclass
class Built:
    name: str
    tarball: Path
    manifest_digest: str
    cached: bool
    seconds: float


def log(msg: str) -> None:
    print(f"[images] {msg}", file=sys.stderr, flush=True)


def run(argv: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, text=True, capture_output=True, **kw)  # type: ignore[call-overload]
    if proc.returncode != 0:
        raise ImageError(
            f"{' '.join(map(str, argv))} failed ({proc.returncode}):\n"
            f"{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
        )
    return proc  # type: ignore[no-any-return]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def inputs_hash(*parts: str | bytes | Path) -> str:
    """A short hash of strings, bytes and files (by content); the cache key of an image."""
    h = hashlib.sha256(RECIPE.encode())
    for part in parts:
        if isinstance(part, Path):
            h.update(part.as_posix().encode() + b"\0" + sha256_file(part).encode())
        elif isinstance(part, str):
            h.update(part.encode())
        else:
            h.update(part)
        h.update(b"\0")
    return h.hexdigest()[:20]


def tar_layer(src: Path, out: Path, members: list[str] | None = None) -> None:
    """A layer tar of `src` (all of it, or the listed relative paths), numeric owners kept."""
    argv = ["tar", "--create", "--file", str(out), "--numeric-owner", "--sort=name"]
    argv += ["--xattrs", "--anchored", "-C", str(src)]
    if members is None:
        for skip in ("dev/*", "proc/*", "sys/*", "run/*", "tmp/*"):
            argv += ["--exclude", f"./{skip}"]
        argv.append(".")
    else:
        argv += members
    run(argv)


def write_oci_archive(name: str, layers: list[Path], config: ImageConfig, out: Path) -> str:
    """Write the OCI layout tarball of one image; returns its manifest digest."""
    layer_descs = []
    for layer in layers:
        digest = "sha256:" + sha256_file(layer)
        layer_descs.append(
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": digest,
                "size": layer.stat().st_size,
            }
        )
    image_config: dict[str, object] = {
        "Env": config.env,
        "WorkingDir": config.workdir,
    }
    if config.entrypoint:
        image_config["Entrypoint"] = config.entrypoint
    if config.cmd:
        image_config["Cmd"] = config.cmd
    if config.user:
        image_config["User"] = config.user
    cfg = json.dumps(
        {
            "created": "1970-01-01T00:00:00Z",
            "architecture": "amd64",
            "os": "linux",
            "config": image_config,
            "rootfs": {"type": "layers", "diff_ids": [d["digest"] for d in layer_descs]},
            "history": [{"created_by": "hack/images.py"} for _ in layer_descs],
        },
        sort_keys=True,
    ).encode()
    cfg_digest = "sha256:" + hashlib.sha256(cfg).hexdigest()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": cfg_digest,
                "size": len(cfg),
            },
            "layers": layer_descs,
        },
        sort_keys=True,
    ).encode()
    manifest_digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": manifest_digest,
                    "size": len(manifest),
                    "platform": {"architecture": "amd64", "os": "linux"},
                    "annotations": {
                        "io.containerd.image.name": name,
                        "org.opencontainers.image.ref.name": name.rsplit(":", 1)[1],
                    },
                }
            ],
        },
        sort_keys=True,
    ).encode()

    def add_bytes(tar: tarfile.TarFile, arcname: str, data: bytes) -> None:
        info = tarfile.TarInfo(arcname)
        info.size = len(data)
        info.mode = 0o644
        tar.addfile(info, fileobj=_BytesReader(data))

    tmp = out.with_suffix(".partial")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        add_bytes(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        add_bytes(tar, "index.json", index)
        add_bytes(tar, f"blobs/sha256/{manifest_digest[7:]}", manifest)
        add_bytes(tar, f"blobs/sha256/{cfg_digest[7:]}", cfg)
        seen = set()
        for layer, desc in zip(layers, layer_descs, strict=True):
            if desc["digest"] in seen:
                continue
            seen.add(desc["digest"])
            tar.add(str(layer), arcname=f"blobs/sha256/{str(desc['digest'])[7:]}")
    tmp.rename(out)
    (out.parent / (out.name + ".digest")).write_text(manifest_digest)
    return manifest_digest


class _BytesReader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def read(self, n: int = -1) -> bytes:
        end = len(self.data) if n < 0 else self.pos + n
        chunk = self.data[self.pos : end]
        self.pos += len(chunk)
        return chunk


def _cached(kind: str, key: str) -> tuple[Path, str | None]:
    tarball = IMAGES / f"{kind}-{key}.oci.tar"
    digest_file = tarball.parent / (tarball.name + ".digest")
    if tarball.exists() and digest_file.exists():
        return tarball, digest_file.read_text().strip()
    return tarball, None


@contextlib.contextmanager
def _workdir(prefix: str) -> Iterator[Path]:
    IMAGES.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=prefix, dir=IMAGES))
    try:
        yield work
    finally:
        unmount_under(work)
        shutil.rmtree(work, ignore_errors=True)


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


# ---------------------------------------------------------------------------- pause


def build_pause() -> Built:
    t0 = time.monotonic()
    src = HACK / "pause"
    go_version = run(["go", "env", "GOVERSION"]).stdout.strip()
    key = inputs_hash(src / "main.go", src / "go.mod", go_version, Path(__file__))
    tarball, digest = _cached("pause", key)
    if digest:
        return Built(PAUSE_IMAGE, tarball, digest, True, time.monotonic() - t0)
    with _workdir("pause-") as work:
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


# ---------------------------------------------------------------------------- busybox


def build_busybox() -> Built:
    t0 = time.monotonic()
    busybox = Path("/bin/busybox")
    static = subprocess.run(["dpkg", "-s", "busybox-static"], capture_output=True).returncode == 0
    if not (static and busybox.exists()):
        raise ImageError("Debian's busybox-static is missing: apt-get install busybox-static")
    key = inputs_hash(busybox, Path(__file__))
    tarball, digest = _cached("busybox", key)
    if digest:
        return Built(BUSYBOX_IMAGE, tarball, digest, True, time.monotonic() - t0)
    with _workdir("busybox-") as work:
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


# ---------------------------------------------------------------------------- tools


def _base_rootfs() -> tuple[Path, Path]:
    """Debian minbase + python3 (debootstrap), cached as a directory and its layer tar."""
    key = inputs_hash(DEBIAN_SUITE, DEBIAN_MIRROR, ",".join(TOOLS_PACKAGES), "minbase")
    base = IMAGES / f"tools-base-{key}"
    rootfs, layer = base / "rootfs", base / "layer.tar"
    if layer.exists() and rootfs.is_dir():
        return rootfs, layer
    if shutil.which("debootstrap") is None:
        raise ImageError("debootstrap missing: apt-get install debootstrap")
    log(f"debootstrap {DEBIAN_SUITE} minbase + {' '.join(TOOLS_PACKAGES)} (about a minute)")
    with _workdir("tools-base-") as work:
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
            "pyproject.toml",
            "README.md",
            "operator",
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


def _deps_rootfs(base_rootfs: Path) -> tuple[Path, Path]:
    """The venv at /opt/ferry with Ferry's dependencies (and its build backend), the ferry
    user; cached by pyproject.toml, so that a change to Ferry's code rebuilds only the top
    layer (seconds, offline)."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    requirements = [
        *pyproject["project"]["dependencies"],
        *pyproject["build-system"]["requires"],
    ]
    key = inputs_hash(base_rootfs.parent.name, "\n".join(requirements), Path(__file__))
    cached = IMAGES / f"tools-deps-{key}"
    if (cached / "layer.tar").exists() and (cached / "rootfs").is_dir():
        return cached / "rootfs", cached / "layer.tar"
    log("building the dependencies layer (venv + pip install)")
    with _workdir("tools-deps-") as work:
        rootfs = work / "rootfs"
        run(["cp", "-a", str(base_rootfs), str(rootfs)])
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
        if cached.exists():
            shutil.rmtree(cached)
        out.rename(cached)
    for old in IMAGES.glob("tools-deps-*"):
        if old != cached:
            shutil.rmtree(old, ignore_errors=True)
    return cached / "rootfs", cached / "layer.tar"


def build_tools() -> Built:
    t0 = time.monotonic()
    base_rootfs, base_layer = _base_rootfs()
    deps_rootfs, deps_layer = _deps_rootfs(base_rootfs)
    sources = _ferry_sources()
    key = inputs_hash(deps_rootfs.parent.name, Path(__file__), *sources)
    tarball, digest = _cached("tools", key)
    if digest:
        return Built(TOOLS_IMAGE, tarball, digest, True, time.monotonic() - t0)
    log("building the Ferry layer (pip install --no-deps + ferry-launch)")
    run(["make", "-C", str(ROOT), "launcher"])
    launcher = ROOT / "build" / "ferry-launch"
    with _workdir("tools-") as work:
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
        since = time.time() - 1
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
        config = ImageConfig(
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
        digest = write_oci_archive(TOOLS_IMAGE, [base_layer, deps_layer, layer], config, tarball)
    return Built(TOOLS_IMAGE, tarball, digest, False, time.monotonic() - t0)


# ---------------------------------------------------------------------------- public

BUILDERS = {PAUSE_IMAGE: build_pause, BUSYBOX_IMAGE: build_busybox, TOOLS_IMAGE: build_tools}


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


def ctr(address: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run(["ctr", "--address", address, "--namespace", "k8s.io", *args])


def import_images(address: str, built: list[Built]) -> float:
    """Import into the containerd at `address` (namespace k8s.io) what it lacks; seconds spent."""
    t0 = time.monotonic()
    listing = ctr(address, "images", "ls").stdout
    have = {
        (cols[0], cols[2]) for cols in (line.split() for line in listing.splitlines()[1:]) if cols
    }
    for b in built:
        if (b.name, b.manifest_digest) in have:
            continue
        ctr(address, "images", "import", str(b.tarball))
        log(f"imported {b.name}")
    return time.monotonic() - t0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("command", choices=["build", "import"])
    parser.add_argument("names", nargs="*", help="images (default: all)")
    parser.add_argument("--address", help="containerd socket for `import`")
    args = parser.parse_args()
    try:
        built = build(args.names or ALL)
        if args.command == "import":
            if not args.address:
                parser.error("import needs --address")
            import_images(args.address, built)
    except ImageError as exc:
        print(f"images: {exc}", file=sys.stderr)
        return 1
    for b in built:
        print(f"{b.name}\t{b.tarball}\t{b.manifest_digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
