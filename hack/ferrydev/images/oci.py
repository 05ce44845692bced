"""OCI image-layout tarballs, written directly: layer tars, the image config, the manifest and
the index, in the form `ctr -n k8s.io images import` accepts.

Owns: `ImageConfig` (Entrypoint/Cmd/Env/WorkingDir/User), making a layer tar of a directory
(numeric owners, sorted, xattrs), and writing one image's archive (uncompressed layers,
fixed creation time, so equal inputs give equal digests) with its manifest digest beside it.

Must not: decide what goes into an image (the builders do), or talk to containerd.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from ferrydev.images.common import PATH_ENV, run, sha256_file


@dataclass
class ImageConfig:
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    env: list[str] = field(default_factory=lambda: [PATH_ENV])
    workdir: str = "/"
    user: str = ""


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
            "history": [{"created_by": "ferrydev.images"} for _ in layer_descs],
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
