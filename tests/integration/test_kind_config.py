"""kind-config.yaml (docs/install.md) checked with kind's own code: hack/kindcheck loads it as
`kind create cluster --config` does (strict decoding into kind's v1alpha4 Cluster, so an
unknown or misspelt field is an error; kind's defaults and conversion) and runs kind's
Cluster.Validate. Broken copies prove the check can fail."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ferrydev.paths import BIN, HACK
from tests.conftest import ROOT

pytestmark = pytest.mark.integration

KIND_CONFIG = ROOT / "kind-config.yaml"


@pytest.fixture(scope="module")
def kindcheck() -> Path:
    """The checker, (re)built from hack/kindcheck when its sources changed (cached: ~20 ms)."""
    proc = subprocess.run(
        [str(HACK / "build-tools.sh"), "kindcheck"], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, f"hack/build-tools.sh kindcheck: {proc.stderr}{proc.stdout}"
    return BIN / "kindcheck"


def check(kindcheck: Path, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(kindcheck), str(path)], capture_output=True, text=True, timeout=60)


def test_kind_config_is_valid_for_kind(kindcheck: Path) -> None:
    proc = check(kindcheck, KIND_CONFIG)
    assert proc.returncode == 0, proc.stderr
    assert 'valid kind config (cluster "ferry", 2 nodes)' in proc.stdout


@pytest.mark.parametrize(
    ("old", "new", "error"),
    [
        ("  - role: worker", "  - rol: worker", "field rol not found in type v1alpha4.Node"),
        ("networking:", "netwerking:", "field netwerking not found in type v1alpha4.Cluster"),
        ("role: worker", "role: leader", '"leader" is not a valid node role'),
        ("ipFamily: ipv4", "ipFamily: ipv5", "invalid ipFamily: ipv5"),
        ("kind.x-k8s.io/v1alpha4", "kind.x-k8s.io/v1alpha9", "unknown apiVersion"),
    ],
    ids=["misspelt-node-field", "misspelt-cluster-field", "bad-role", "bad-ip-family", "version"],
)
def test_a_broken_copy_is_refused(
    kindcheck: Path, tmp_path: Path, old: str, new: str, error: str
) -> None:
    text = KIND_CONFIG.read_text()
    assert old in text, f"kind-config.yaml no longer has {old!r}: update this test"
    broken = tmp_path / "kind-config.yaml"
    broken.write_text(text.replace(old, new, 1))
    proc = check(kindcheck, broken)
    assert proc.returncode == 1, proc.stdout
    assert error in proc.stderr
