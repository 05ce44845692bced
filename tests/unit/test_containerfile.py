"""The top-level Containerfile and the Python builder of the tools image say the same thing
(ferrydev.images.containerfile): the committed file agrees, and every kind of drift is caught."""

from __future__ import annotations

import pytest

from ferrydev.images import containerfile, tools
from ferrydev.images.common import ImageError
from tests.conftest import ROOT

pytestmark = pytest.mark.unit

COMMITTED = (ROOT / "Containerfile").read_text()


def test_the_committed_containerfile_matches_the_builder() -> None:
    assert containerfile.mismatches(COMMITTED) == []
    containerfile.check()


def test_the_old_dockerfile_is_gone() -> None:
    assert not (ROOT / "operator" / "Dockerfile").exists()


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ("debian:bookworm-slim", "debian:trixie-slim", "base docker.io/library/debian:trixie"),
        ("golang:1.23-bookworm", "golang:1.22-bookworm", "launcher stage"),
        ("python3 python3-venv", "python3 python3-venv curl", "apt packages"),
        ('"PyYAML>=6" ', "", "dependencies' pip install"),
        ('"minio>=7.2,<8"', '"minio>=7.1,<8"', "dependencies' pip install"),
        ("--no-deps --no-build-isolation /tmp/ferry-src", "/tmp/ferry-src", "--no-deps"),
        ("COPY operator/ /tmp/ferry-src/operator/", "COPY operator/ hack/ /tmp/ferry-src/", "COPY"),
        ("-o /out/ferry-launch", "-o /out/ferry-launch", ""),  # unchanged: no problem
        ("/usr/local/bin/ferry-launch\n", "/usr/bin/ferry-launch\n", "launcher is not copied"),
        ("useradd -u 1000", "useradd -u 1001", "ferry user"),
        ("LANG=C.UTF-8", "LANG=C", "ENV"),
        ("WORKDIR /home/ferry", "WORKDIR /", "WORKDIR"),
        ("USER 1000:1000", "USER 0", "USER"),
        ('CMD ["python3", "-m", "ferry", "--help"]', 'CMD ["python3"]', "CMD"),
        ("CMD [", 'ENTRYPOINT ["python3", "-m", "ferry"]\nCMD [', "ENTRYPOINT"),
    ],
)
def test_drift_is_caught(old: str, new: str, problem: str) -> None:
    assert old in COMMITTED
    problems = containerfile.mismatches(COMMITTED.replace(old, new, 1))
    if not problem:
        assert problems == []
    else:
        assert any(problem in p for p in problems), problems


def test_a_dependency_added_to_pyproject_only_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    wanted = containerfile._expected_requirements()
    monkeypatch.setattr(containerfile, "_expected_requirements", lambda: [*wanted, "rich>=13"])
    assert any("dependencies" in p for p in containerfile.mismatches(COMMITTED))


def test_the_image_build_refuses_to_run_while_they_differ(monkeypatch: pytest.MonkeyPatch) -> None:
    changed = [*tools.TOOLS_CONFIG.env, "EXTRA=1"]
    monkeypatch.setattr(tools.TOOLS_CONFIG, "env", changed)
    with pytest.raises(ImageError, match=r"differs from ferrydev\.images\.tools"):
        tools.build_tools()


def test_parse_joins_continuations_and_tracks_stages() -> None:
    parsed = containerfile.parse("FROM a AS b\nRUN x \\\n  && y\n# c\nFROM d\nUSER 1\n")
    assert [(i.keyword, i.args, i.stage) for i in parsed] == [
        ("FROM", "a AS b", "b"),
        ("RUN", "x && y", "b"),
        ("FROM", "d", "final"),
        ("USER", "1", "final"),
    ]
