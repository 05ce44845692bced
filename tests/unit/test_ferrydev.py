"""ferrydev's own invariants: where it finds the repository, and the parts of it that must run
with nothing but the standard library (hack/cluster under the system's Python, the host-path
watcher run by file)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import ferrydev
from ferrydev import paths
from ferrydev.cluster import hostpath

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def test_paths_name_this_checkout() -> None:
    assert paths.ROOT == ROOT
    assert paths.KWOK_STAGES.is_file()
    assert Path(ferrydev.__file__).resolve().is_relative_to(ROOT / "hack")


def test_versions_env_is_read() -> None:
    versions = paths.versions()
    assert versions["KUBERNETES_VERSION"].startswith("v1.")
    assert set(versions) >= {"ETCD_VERSION", "KWOK_VERSION", "MINIO_VERSION", "HELM_VERSION"}


def test_the_hostpath_watcher_imports_only_the_standard_library() -> None:
    tree = ast.parse(Path(hostpath.__file__).read_text())
    names = {
        (node.module or "") if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    roots = {name.split(".")[0] for name in names}
    assert roots <= sys.stdlib_module_names | {"__future__"}, roots


def test_hack_cluster_needs_no_third_party_package() -> None:
    """hack/cluster's imports stay within the standard library (it runs under any Python)."""
    code = (
        "import sys\n"
        "import ferrydev.cli\n"
        "loaded = {m.split('.')[0] for m in sys.modules}\n"
        "print(sorted(loaded & {'kubernetes', 'minio', 'ferry', 'yaml', 'pydantic', 'kopf'}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT / "hack",
    ).stdout
    assert out.strip() == "[]"


def test_a_layer_whites_out_what_its_step_removed() -> None:
    from ferrydev.images.mpi import whiteouts

    before = {
        "etc",
        "etc/passwd-",
        "etc/passwd",
        "var",
        "var/log",
        "var/log/a",
        "var/log/b",
        "var/log/b/c",
    }
    after = {"etc", "etc/passwd", "var"}
    # A removed directory hides its contents with one whiteout; kept paths need none.
    assert whiteouts(before, after) == ["etc/.wh.passwd-", "var/.wh.log"]
    assert whiteouts({"x"}, set()) == [".wh.x"]
    assert whiteouts(before, before | {"new"}) == []


def test_an_image_builds_scratch_is_out_of_reach_of_every_cache_sweep(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A build sweeps its kind's stale layers (`tools-deps-*`, `<kind>-*`) when it is done; a
    # second checkout building the same kind at that moment must keep its scratch directory.
    from ferrydev.images import common

    monkeypatch.setattr(common, "IMAGES", tmp_path)
    sweeps = {  # a scratch prefix → the globs of the sweeps that could reach it
        "tools-deps-": ["tools-deps-*", "tools-*"],
        "tools-base-": ["tools-base-*", "tools-*"],
        "build-lammps-": ["lammps-*", "build-*"],
        "busybox-": ["busybox-*"],
    }
    for prefix, globs in sweeps.items():
        with common.workdir(prefix) as work:
            assert work.parent == tmp_path
            assert work.is_dir()
            for pattern in globs:
                assert work not in set(tmp_path.glob(pattern)), (prefix, pattern)
        assert not work.exists()


def test_an_images_key_is_the_same_in_every_clone_of_a_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # CI builds in a fresh clone elsewhere: the keys (and so the cached layers) must not
    # depend on where the checkout is, only on what is in it.
    from ferrydev.images import common

    keys = []
    for clone in ("a", "b"):
        root = tmp_path / clone
        (root / "hack").mkdir(parents=True)
        (root / "hack" / "recipe.py").write_text("print('layer')\n")
        monkeypatch.setattr(common, "ROOT", root)
        keys.append(common.inputs_hash("bookworm", root / "hack" / "recipe.py"))
    assert keys[0] == keys[1]
    (tmp_path / "b" / "hack" / "recipe.py").write_text("print('another layer')\n")
    assert common.inputs_hash("bookworm", tmp_path / "b" / "hack" / "recipe.py") != keys[1]


def test_a_kueue_this_run_started_is_alive_while_it_execs_its_way_to_kueue(
    tmp_path: Path,
) -> None:
    """Kueue starts as `unshare … sh -c … kueue`: until the last exec its cmdline is another
    program's (or empty, mid-exec), so a cmdline check called a starting Kueue dead and the
    fixture stopped it (CI: "kueue exited; its log ends:" with an empty log)."""
    from ferrydev.cluster import kueue as kq
    from ferrydev.cluster.state import ClusterState

    proc = subprocess.Popen(["sh", "-c", "sleep 0.3; exec sleep 30"], start_new_session=True)
    state = ClusterState(root=str(tmp_path))
    process = kq.KueueProcess(state, proc.pid, 0, 0, 0, tmp_path / "kueue.log", popen=proc)
    try:
        assert process.alive()
        assert not kq.KueueProcess(state, proc.pid, 0, 0, 0, tmp_path / "kueue.log").alive(), (
            "a pid from state.json that is not a Kueue is not taken for one"
        )
    finally:
        proc.kill()
        proc.wait()
    assert not process.alive()
