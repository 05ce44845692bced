"""The image archives users load into their own clusters (`make image`): one built image as an
OCI archive and as a docker-archive, side by side.

  <out>/<stem>.oci.tar     the OCI image layout tarball as built (`ferrydev.images.oci`):
                           `kind load image-archive`, `ctr images import`, `skopeo copy
                           oci-archive:…`, `podman load`
  <out>/<stem>.docker.tar  the same image in `docker save`'s format (manifest.json with
                           RepoTags, the config, one directory per layer): `docker load`,
                           `kind load image-archive`, `ctr images import`, `skopeo copy
                           docker-archive:…`

Both carry the same config and the same uncompressed layers, so the image ID (the config's
digest) is the same; only the manifest differs (OCI vs Docker media types).
tests/integration/test_image_archives.py checks both with skopeo and the docker-archive with
`ctr images import` on the real node's containerd.

Owns: reading an OCI layout tarball's single image (index → manifest → config, layers) and
writing the docker-archive of it, streamed (layers are hundreds of MB). Must not: build
images (`ferrydev.images` does) or talk to a container runtime.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ferrydev.images.common import Built, ImageError

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@dataclass(frozen=True)
class Archives:
    name: str
    oci: Path
    docker: Path
    config_digest: str


def stem(name: str) -> str:
    """localhost/ferry/tools:0.1.0 -> ferry-tools-0.1.0 (the file names of its archives)."""
    repository, _, tag = name.rpartition(":")
    parts = repository.split("/")
    return "-".join([*(parts[1:] or parts), tag])


def _blob(tar: tarfile.TarFile, digest: str) -> tarfile.TarInfo:
    algorithm, _, hexdigest = digest.partition(":")
    try:
        return tar.getmember(f"blobs/{algorithm}/{hexdigest}")
    except KeyError:
        raise ImageError(f"{os.fsdecode(tar.name or '')}: blob {digest} missing") from None


def _json(tar: tarfile.TarFile, member: tarfile.TarInfo | str) -> Any:
    f = tar.extractfile(member)
    if f is None:
        raise ImageError(f"{os.fsdecode(tar.name or '')}: {member} is not a file")
    return json.load(f)


def read_oci(tarball: Path) -> tuple[str, dict[str, Any], list[str], bytes]:
    """The image name, its manifest, its layer digests and its config bytes."""
    with tarfile.open(tarball) as tar:
        index = _json(tar, "index.json")
        manifests = [m for m in index["manifests"] if m["mediaType"] == OCI_MANIFEST]
        if len(manifests) != 1:
            raise ImageError(f"{tarball}: expected one image manifest, found {len(manifests)}")
        name = manifests[0].get("annotations", {}).get("io.containerd.image.name", "")
        if not name:
            raise ImageError(f"{tarball}: the index names no image (io.containerd.image.name)")
        manifest = _json(tar, _blob(tar, manifests[0]["digest"]))
        config_file = tar.extractfile(_blob(tar, manifest["config"]["digest"]))
        assert config_file is not None
        config = config_file.read()
        layers = [layer["digest"] for layer in manifest["layers"]]
    return name, manifest, layers, config


def write_docker_archive(oci_tarball: Path, out: Path) -> str:
    """Write the docker-archive of the OCI tarball's image; returns the config digest."""
    name, manifest, layers, config = read_oci(oci_tarball)
    config_digest: str = manifest["config"]["digest"]
    config_name = config_digest.partition(":")[2] + ".json"
    layer_names = [d.partition(":")[2] + "/layer.tar" for d in layers]
    repository, _, tag = name.rpartition(":")
    meta = {
        "manifest.json": [{"Config": config_name, "RepoTags": [name], "Layers": layer_names}],
        "repositories": {repository: {tag: layers[-1].partition(":")[2]}},
    }
    tmp = out.with_name(out.name + ".partial")
    with tarfile.open(oci_tarball) as src, tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as dst:
        _add(dst, config_name, config)
        written: set[str] = set()
        for digest, arcname in zip(layers, layer_names, strict=True):
            if arcname in written:
                continue
            written.add(arcname)
            member = _blob(src, digest)
            info = tarfile.TarInfo(arcname)
            info.size, info.mode = member.size, 0o644
            dst.addfile(info, src.extractfile(member))
        for meta_name, document in meta.items():
            _add(dst, meta_name, json.dumps(document, sort_keys=True).encode())
    tmp.rename(out)
    return config_digest


def _add(tar: tarfile.TarFile, arcname: str, data: bytes) -> None:
    info = tarfile.TarInfo(arcname)
    info.size, info.mode = len(data), 0o644
    tar.addfile(info, io.BytesIO(data))


def export(built: Built, out_dir: Path) -> Archives:
    """Both archives of a built image in `out_dir` (replaced when present)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    base = stem(built.name)
    oci, docker = out_dir / f"{base}.oci.tar", out_dir / f"{base}.docker.tar"
    tmp = oci.with_name(oci.name + ".partial")
    shutil.copyfile(built.tarball, tmp)
    tmp.rename(oci)
    config_digest = write_docker_archive(oci, docker)
    return Archives(built.name, oci, docker, config_digest)
