"""Glob patterns of outputs: `*` within a segment, `**` across segments, `?`, classes."""

from __future__ import annotations

import fnmatch

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ferry.stager import globs

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        # * stays within one segment
        ("*.out", "run.out", True),
        ("*.out", "sub/run.out", False),
        ("*", "a", True),
        ("*", "a/b", False),
        ("*", ".hidden", True),
        ("results/*", "results/a.txt", True),
        ("results/*", "results/sub/a.txt", False),
        ("results/*.csv", "results/a.csv", True),
        ("results/*.csv", "results/a.csv.bak", False),
        ("a*b", "ab", True),
        ("a*b", "axxb", True),
        ("a*b", "a/b", False),
        # ** crosses segments
        ("**", "a", True),
        ("**", "a/b/c.txt", True),
        ("**", ".git/config", True),
        ("results/**", "results/a.txt", True),
        ("results/**", "results/sub/deep/a.txt", True),
        ("results/**", "results", False),
        ("results/**", "other/a.txt", False),
        ("results/**", "resultsx/a.txt", False),
        ("**/*.out", "run.out", True),
        ("**/*.out", "a/b/run.out", True),
        ("**/*.out", "a/b/run.out.txt", False),
        ("a/**/b", "a/b", True),
        ("a/**/b", "a/x/b", True),
        ("a/**/b", "a/x/y/b", True),
        ("a/**/b", "a/xb", False),
        ("**/tmp/**", "tmp/x", True),
        ("**/tmp/**", "a/tmp/x/y", True),
        ("**/tmp/**", "a/tmpx/y", False),
        ("**.log", "a/b.log", True),
        # ?
        ("?.txt", "a.txt", True),
        ("?.txt", "ab.txt", False),
        ("a?b", "a/b", False),
        # character classes
        ("[abc].txt", "b.txt", True),
        ("[abc].txt", "d.txt", False),
        ("[a-c].txt", "c.txt", True),
        ("[!a-c].txt", "d.txt", True),
        ("[!a-c].txt", "a.txt", False),
        ("[^a-c].txt", "a.txt", False),
        ("x[!a]y", "x/y", False),
        ("x[/]y", "x/y", False),
        # a class never spans a segment: `[!/]` is the literal segments "[!" and "]"
        ("[!/]", "_", False),
        ("[!/]", "[!/]", True),
        ("[]].txt", "].txt", True),
        ("[.txt", "[.txt", True),  # an unclosed [ is literal
        ("file[0-9][0-9].dat", "file42.dat", True),
        ("file[0-9][0-9].dat", "file4x.dat", False),
        # regex metacharacters are literal
        ("a+b(c).txt", "a+b(c).txt", True),
        ("a.txt", "abtxt", False),
        ("$x^", "$x^", True),
        # leading ./ and / are ignored: patterns are relative to the workdir
        ("./results/*", "results/a", True),
        ("/results/*", "results/a", True),
        # never anything outside the workdir
        ("../*", "a", False),
        ("../**", "x/y", False),
        ("", "a", False),
    ],
)
def test_glob_table(pattern: str, path: str, expected: bool) -> None:
    assert globs.match(path, pattern) is expected


def test_selected_needs_an_include_and_no_exclude() -> None:
    include = ["results/**", "*.out"]
    exclude = ["results/tmp/**", "*.partial.out"]
    assert globs.selected("results/a.csv", include, exclude)
    assert globs.selected("run.out", include, exclude)
    assert not globs.selected("results/tmp/a", include, exclude)
    assert not globs.selected("x.partial.out", include, exclude)
    assert not globs.selected("notes.txt", include, exclude)
    assert not globs.selected("anything", [], [])


segment = st.text(alphabet="ab.-_x[]!?*", min_size=1, max_size=6)
plain = st.text(alphabet="ab.-_x", min_size=1, max_size=6)
simple_pattern = st.text(alphabet="ab.x*?", min_size=0, max_size=6)


@settings(max_examples=300, deadline=None, database=None)
@given(pattern=simple_pattern, name=plain)
def test_single_segment_agrees_with_fnmatch(pattern: str, name: str) -> None:
    """Within one segment, `*` and `?` mean what fnmatch means."""
    assert globs.match(name, pattern) == fnmatch.fnmatchcase(name, pattern)


@settings(max_examples=300, deadline=None, database=None)
@given(parts=st.lists(plain, min_size=1, max_size=5), pattern=st.lists(segment, max_size=4))
def test_star_never_crosses_a_segment(parts: list[str], pattern: list[str]) -> None:
    """Without `**`, a pattern of k segments only matches paths of k segments."""
    pat = "/".join(p.replace("**", "*") for p in pattern)
    path = "/".join(parts)
    # Documented: a leading "./" or "/" is ignored (patterns are relative to the workdir).
    relative = pat.strip()
    while relative.startswith("./"):
        relative = relative[2:]
    relative = relative.lstrip("/")
    if globs.match(path, pat):
        assert len(parts) == len(relative.split("/"))


def test_a_leading_slash_is_ignored() -> None:
    assert globs.match("a", "/a")
    assert globs.match("a/b", "/*/b")
    assert not globs.match("a/b", "/a")


@settings(max_examples=200, deadline=None, database=None)
@given(parts=st.lists(plain, min_size=1, max_size=6))
def test_double_star_matches_every_depth(parts: list[str]) -> None:
    path = "/".join(parts)
    assert globs.match(path, "**")
    assert globs.match(path, "**/" + parts[-1])
    assert globs.match("top/" + path, "top/**")
