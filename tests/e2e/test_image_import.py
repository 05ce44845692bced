"""`make image`'s archives imported into the real node's containerd exactly as `kind load
image-archive` loads a kind node (kind v0.30.0, pkg/cluster/nodeutils.LoadImageArchive:
`ctr images import --all-platforms --digests --snapshotter=<the node's> -`, the archive on
stdin) and run there: the image unpacks, starts as uid 1000 and has Ferry's stager and launcher.

The import goes to a containerd namespace of this test's own, never `k8s.io` (the node's
images, which the kubelet uses and other tests share), and is removed afterwards; the layers'
content is the same as the node's tools image, so nothing new is stored.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ferrydev.cluster import ClusterState
from ferrydev.images import TOOLS_IMAGE
from tests.integration.test_image_archives import make_image

pytestmark = pytest.mark.e2e

#: kind v0.30.0's LoadImageArchive; the real node's containerd uses overlayfs, as kind's does.
KIND_IMPORT = ("images", "import", "--all-platforms", "--digests", "--snapshotter=overlayfs")


class Ctr:
    """ctr against the real node's containerd, in one containerd namespace."""

    def __init__(self, socket: str, namespace: str) -> None:
        self.socket, self.namespace = socket, namespace

    def __call__(
        self, *args: str, stdin: Path | None = None, check: bool = True, namespace: str = ""
    ) -> subprocess.CompletedProcess[bytes]:
        argv = ["ctr", "--address", self.socket, "--namespace", namespace or self.namespace]
        with (stdin or Path(os.devnull)).open("rb") as f:
            proc = subprocess.run([*argv, *args], stdin=f, capture_output=True, timeout=300)
        if check:
            assert proc.returncode == 0, f"ctr {' '.join(args)}: {proc.stderr!r} {proc.stdout!r}"
        return proc

    def kind_load(self, archive: Path, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        """What `kind load image-archive` runs on each node."""
        return self(*KIND_IMPORT, "-", stdin=archive, check=check)

    def images(self) -> list[str]:
        return self("images", "ls", "-q").stdout.decode().split()


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_image(tmp_path_factory.mktemp("image"))


@pytest.fixture
def ctr(real_cluster: ClusterState) -> Iterator[Ctr]:
    assert real_cluster.containerd_socket, "the real node's containerd socket is not recorded"
    client = Ctr(real_cluster.containerd_socket, f"ferry-import-{uuid.uuid4().hex[:8]}")
    yield client
    client("tasks", "rm", "-f", "probe", check=False)
    client("containers", "rm", "probe", check=False)
    for image in client.images():
        client("images", "rm", image, check=False)
    client("namespaces", "rm", client.namespace, namespace="default", check=False)


@pytest.mark.parametrize("kind", ["docker", "oci"])
def test_kind_style_import_then_run(ctr: Ctr, archives: dict[str, Path], kind: str) -> None:
    ctr.kind_load(archives[kind])
    assert TOOLS_IMAGE in ctr.images()
    proc = ctr(
        "run", "--rm", TOOLS_IMAGE, "probe",
        "sh", "-c",
        "id -u; python3 -c 'import ferry, ferry.stager; print(ferry.__version__)';"
        " test -x /usr/local/bin/ferry-launch && echo launcher",
    )  # fmt: skip
    assert proc.stdout.decode().split() == ["1000", "0.1.0", "launcher"], proc.stdout


def test_a_truncated_archive_is_refused(
    ctr: Ctr, archives: dict[str, Path], tmp_path: Path
) -> None:
    """The check can fail: half an archive does not import."""
    truncated = tmp_path / "half.docker.tar"
    with archives["docker"].open("rb") as src, truncated.open("wb") as dst:
        dst.write(src.read(archives["docker"].stat().st_size // 2))
    proc = ctr.kind_load(truncated, check=False)
    assert proc.returncode != 0
    assert TOOLS_IMAGE not in ctr.images()
