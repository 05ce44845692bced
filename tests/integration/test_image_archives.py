"""`make image`: the operator/tools image as an OCI archive and a docker-archive, checked with a
real image tool (skopeo, Debian's) rather than by reading our own tar files back: both
inspect as the same image (same config, so the same image ID; same layers), a round trip
through skopeo keeps it, and a broken archive is refused. tests/e2e/test_image_import.py
imports the docker-archive into the real node's containerd with `ctr images import` and runs it.

Needs the image built (root: `FERRY_WITH_NODE=1 hack/install-deps.sh`, or `make image`).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from ferrydev.images import TOOLS_IMAGE
from ferrydev.images.tools import TOOLS_CONFIG
from tests.conftest import ROOT

pytestmark = pytest.mark.integration

STEM = "ferry-tools-0.1.0"


def skopeo(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("skopeo")
    assert binary, "skopeo missing: apt-get install skopeo (hack/install-deps.sh, as root)"
    proc = subprocess.run([binary, *args], capture_output=True, text=True, timeout=300)
    if check:
        assert proc.returncode == 0, f"skopeo {' '.join(args)}: {proc.stderr}"
    return proc


def inspect(ref: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(skopeo("inspect", ref).stdout)
    return result


def config(ref: str) -> bytes:
    """The image config exactly as stored (its sha256 is the image ID)."""
    return subprocess.run(
        ["skopeo", "inspect", "--config", "--raw", ref], capture_output=True, check=True
    ).stdout


def make_image(out: Path) -> dict[str, Path]:
    """`make image` into `out` (the same target users run); its two archives."""
    proc = subprocess.run(
        ["make", "-C", str(ROOT), "image", f"PY={sys.executable}", f"IMAGE_OUT={out}"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, f"make image: {proc.stderr}{proc.stdout}"
    found = {"oci": out / f"{STEM}.oci.tar", "docker": out / f"{STEM}.docker.tar"}
    assert all(p.exists() for p in found.values()), sorted(out.iterdir())
    return found


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_image(tmp_path_factory.mktemp("image"))


def test_skopeo_reads_both_archives_as_the_same_image(archives: dict[str, Path]) -> None:
    oci, docker = f"oci-archive:{archives['oci']}", f"docker-archive:{archives['docker']}"
    a, b = inspect(oci), inspect(docker)
    assert a["Layers"] == b["Layers"]
    assert len(a["Layers"]) == 3
    assert config(oci) == config(docker)  # the same image ID
    for seen in (a, b):
        assert (seen["Os"], seen["Architecture"]) == ("linux", "amd64")
        assert seen["Env"] == TOOLS_CONFIG.env
    image = json.loads(config(docker))["config"]
    assert (image["User"], image["WorkingDir"], image["Cmd"]) == (
        TOOLS_CONFIG.user,
        TOOLS_CONFIG.workdir,
        TOOLS_CONFIG.cmd,
    )
    manifests = json.loads(skopeo("inspect", "--raw", docker).stdout)
    assert manifests["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"


def test_the_archives_name_the_image_for_docker_load_and_ctr_import(
    archives: dict[str, Path],
) -> None:
    with tarfile.open(archives["docker"]) as tar:
        f = tar.extractfile("manifest.json")
        assert f is not None
        (entry,) = json.load(f)
    assert entry["RepoTags"] == [TOOLS_IMAGE]
    with tarfile.open(archives["oci"]) as tar:
        f = tar.extractfile("index.json")
        assert f is not None
        (manifest,) = json.load(f)["manifests"]
    assert manifest["annotations"]["io.containerd.image.name"] == TOOLS_IMAGE


def test_a_skopeo_round_trip_keeps_the_image(archives: dict[str, Path], tmp_path: Path) -> None:
    """OCI archive -> docker-archive -> OCI archive, each written by skopeo, then compared."""
    via_docker = tmp_path / "via.docker.tar"
    back = tmp_path / "back.oci.tar"
    skopeo(
        "copy", "-q", f"oci-archive:{archives['oci']}", f"docker-archive:{via_docker}:{TOOLS_IMAGE}"
    )
    skopeo("copy", "-q", f"docker-archive:{via_docker}", f"oci-archive:{back}:{TOOLS_IMAGE}")
    # skopeo re-serializes the config on the way (the bytes, so the image ID, may change);
    # what the image is - its runtime config and its layers' content - must not.
    original = json.loads(config(f"oci-archive:{archives['oci']}"))
    for ref in (f"docker-archive:{via_docker}", f"oci-archive:{back}"):
        copied = json.loads(config(ref))
        assert copied["config"] == original["config"], ref
        assert copied["rootfs"] == original["rootfs"], ref  # the layers' diff_ids
    # (skopeo gzips layers into an OCI archive: the blobs' digests differ, their content not)
    assert len(inspect(f"oci-archive:{back}")["Layers"]) == len(original["rootfs"]["diff_ids"])


def test_a_docker_archive_missing_a_layer_is_refused(
    archives: dict[str, Path], tmp_path: Path
) -> None:
    """The check can fail: skopeo refuses an archive whose manifest names a missing layer."""
    broken = tmp_path / "broken.docker.tar"
    with tarfile.open(archives["docker"]) as src, tarfile.open(broken, "w") as dst:
        dropped = False
        for member in src:
            if member.name.endswith("/layer.tar") and not dropped and member.size < 50_000_000:
                dropped = True
                continue
            dst.addfile(member, src.extractfile(member) if member.isfile() else None)
    assert dropped
    proc = skopeo("copy", "-q", f"docker-archive:{broken}", f"oci:{tmp_path / 'out'}", check=False)
    assert proc.returncode != 0
    assert "layer tarfiles are missing" in proc.stderr, proc.stderr
