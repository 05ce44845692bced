"""Output and input paths never escape the workspace: the archive's selection, fuzzed.

Random trees in a temporary workspace (odd names like `..a` and `...`, absolute and relative
symlinks pointing inside and outside, chains and loops, symlinked directories, FIFOs) are
selected with random globs; every file selected must resolve inside work/ and be named by a
clean relative path. No S3 involved: this checks `workspace.select` and `open_inside`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ferry.stager.errors import StagerError
from ferry.stager.inputs import _relative_key
from ferry.stager.workspace import UnsafePathError, inside, open_inside, select

pytestmark = pytest.mark.unit

SECRET = b"OUTSIDE-SECRET"

names = st.one_of(
    st.sampled_from(["a", "b", "..a", "...", "a..", "..", ".", ".hidden", "x y", "ü", "-"]),
    st.text(alphabet="ab.-_ ", min_size=1, max_size=5),
).filter(lambda n: n not in (".", ".."))
rel_paths = st.lists(names, min_size=1, max_size=3).map("/".join)

# A symlink target: (kind, path) resolved against the tree when the link is made.
targets = st.one_of(
    st.tuples(st.just("abs-inside"), rel_paths),
    st.tuples(st.just("abs-outside"), st.sampled_from(["secret", "dir", "dir/secret", "nope"])),
    st.tuples(
        st.just("relative"),
        st.tuples(st.integers(0, 5), rel_paths).map(lambda t: "../" * t[0] + t[1]),
    ),
    st.tuples(st.just("self"), st.just("")),
    st.tuples(st.just("root"), st.sampled_from(["/", "/etc/passwd", "/proc/self/environ"])),
)
ops = st.lists(
    st.one_of(
        st.tuples(st.just("dir"), rel_paths, st.just(("", ""))),
        st.tuples(st.just("file"), rel_paths, st.just(("", ""))),
        st.tuples(st.just("link"), rel_paths, targets),
        st.tuples(st.just("fifo"), rel_paths, st.just(("", ""))),
    ),
    min_size=1,
    max_size=25,
)
patterns = st.lists(
    st.sampled_from(
        [
            "**",
            "*",
            "a/**",
            "**/a",
            "../**",
            "../*",
            "/etc/**",
            "**/..*",
            "...",
            "**/secret",
            "[a.]*",
            "?",
            "**/*",
            "./**",
        ]
    ),
    min_size=1,
    max_size=3,
)


def _build(work: Path, outside: Path, plan: list[tuple[str, str, tuple[str, str]]]) -> None:
    for kind, rel, (tkind, tpath) in plan:
        path = work / rel
        if os.path.lexists(path):
            continue  # never write through an existing FIFO or symlink
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if kind == "dir":
                path.mkdir(exist_ok=True)
            elif kind == "file":
                path.write_bytes(b"inside:" + rel.encode())
            elif kind == "fifo":
                os.mkfifo(path)
            else:
                target = {
                    "abs-inside": str(work / tpath),
                    "abs-outside": str(outside / tpath),
                    "relative": tpath,
                    "self": str(path),
                    "root": tpath,
                }[tkind]
                os.symlink(target, path)
        except OSError:
            continue  # the random tree has a file where a directory was wanted, and so on


def _fresh_tree(
    plan: list[tuple[str, str, tuple[str, str]]],
) -> tuple[tempfile.TemporaryDirectory[str], Path, Path]:
    tmp = tempfile.TemporaryDirectory()
    base = Path(tmp.name)
    work = base / "ws" / "work"
    outside = base / "outside"
    work.mkdir(parents=True)
    (outside / "dir").mkdir(parents=True)
    (outside / "secret").write_bytes(SECRET)
    (outside / "dir" / "secret").write_bytes(SECRET)
    # Siblings of work/ in the workspace are outside work/ too.
    (base / "ws" / "logs").mkdir()
    (base / "ws" / "logs" / "secret").write_bytes(SECRET)
    _build(work, outside, plan)
    return tmp, work, outside


@settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(plan=ops, include=patterns, exclude=st.lists(st.sampled_from(["b/**", "*.x", "..a"])))
def test_selection_never_escapes_work(
    plan: list[tuple[str, str, tuple[str, str]]], include: list[str], exclude: list[str]
) -> None:
    tmp, work, _ = _fresh_tree(plan)
    with tmp:
        work_real = os.path.realpath(work)
        selection = select(work, include, exclude)
        escapes = []
        for entry in selection.files:
            parts = entry.path.split("/")
            clean = not entry.path.startswith("/") and all(p not in ("", ".", "..") for p in parts)
            lexical = os.path.normpath(os.path.join(work_real, entry.path))
            real = os.path.realpath(entry.source)
            if not (clean and inside(work_real, lexical) and inside(work_real, real)):
                escapes.append(entry)
                continue
            fd = open_inside(work, entry.source)
            with os.fdopen(fd, "rb") as fh:
                data = fh.read()
            if data == SECRET:
                escapes.append(entry)
        assert escapes == []
        selected = {e.path for e in selection.files}
        # Every selected path exists in the tree under work/ (as a file or a link to one).
        for path in selected:
            assert os.path.lexists(work / path)
        # Nothing is both selected and skipped, and skipped entries say why.
        assert not selected & {s.path for s in selection.skipped}
        assert all(s.reason for s in selection.skipped)


def test_symlink_policy(tmp_path: Path) -> None:
    work = tmp_path / "work"
    (work / "results").mkdir(parents=True)
    (work / "results" / "a.txt").write_text("a")
    (tmp_path / "secret").write_text("s")
    os.symlink("/etc/passwd", work / "results" / "abs-out")
    os.symlink("../../secret", work / "results" / "rel-out")
    os.symlink("a.txt", work / "results" / "rel-in")
    os.symlink(str(work / "results" / "a.txt"), work / "results" / "abs-in")
    os.symlink("loop", work / "results" / "loop")
    os.symlink("missing", work / "results" / "dangling")
    os.symlink(".", work / "results" / "dir-link")
    os.symlink(str(tmp_path), work / "escape-dir")
    os.mkfifo(work / "results" / "fifo")
    selection = select(work, ["**"])
    assert [e.path for e in selection.files] == [
        "results/a.txt",
        "results/abs-in",
        "results/rel-in",
    ]
    assert {e.source for e in selection.files} == {work.resolve() / "results" / "a.txt"}
    assert {s.path: s.reason for s in selection.skipped} == {
        "escape-dir": "symlink points outside the workspace",
        "results/abs-out": "symlink points outside the workspace",
        "results/rel-out": "symlink points outside the workspace",
        "results/loop": "symlink loop",
        "results/dangling": "broken symlink",
        "results/dir-link": "symlink to a directory (not followed)",
        "results/fifo": "not a regular file",
    }


def test_skipped_only_when_selected(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    os.symlink("/etc/passwd", work / "unrelated")
    assert select(work, ["*.out"]).skipped == []


def test_missing_or_symlinked_root_selects_nothing(tmp_path: Path) -> None:
    assert select(tmp_path / "absent", ["**"]).files == []
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "f").write_text("x")
    os.symlink(tmp_path / "real", tmp_path / "link")
    assert select(tmp_path / "link", ["**"]).files == []


def test_open_inside_refuses_outside_and_non_files(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "out").write_text("x")
    os.symlink(tmp_path / "out", root / "link")
    os.mkfifo(root / "fifo")
    with pytest.raises(UnsafePathError):
        open_inside(root, root / "link")
    with pytest.raises(UnsafePathError):
        open_inside(root, root / "fifo")
    with pytest.raises(UnsafePathError):
        open_inside(root, root / ".." / "out")


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("p/a.txt", "a.txt"),
        ("p/sub/b.txt", "sub/b.txt"),
        ("p/dir/", None),
        ("p/", None),
    ],
)
def test_object_keys_map_below_the_input(key: str, expected: str | None) -> None:
    assert _relative_key(key, "p/", "input 'x'") == expected


@pytest.mark.parametrize("key", ["p/../etc/passwd", "p/a/../../x", "p//a", "p/./a", "p/a/.."])
def test_object_keys_that_would_escape_are_refused(key: str) -> None:
    with pytest.raises(StagerError, match="refused"):
        _relative_key(key, "p/", "input 'x'")
