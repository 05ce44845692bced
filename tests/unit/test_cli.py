"""`ferry` parsing, one-line errors and exit codes, without a cluster (click's CliRunner and
main())."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from ferry.cli.base import cli
from ferry.cli.main import main
from ferry.sdk.errors import EXIT_CODES

pytestmark = pytest.mark.unit


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_bad_label_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "submit", "-l", "foo", "hello")
    assert code == 2
    assert err == "ferry: label 'foo': expected KEY=VALUE\n"


def test_unknown_option_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "list", "--bogus")
    assert code == 2
    assert err.count("\n") == 1
    assert err.startswith("ferry list: No such option '--bogus'")


def test_missing_kubeconfig_is_named(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "nope"))
    code, _, err = run(capsys, "list")
    assert code == 8
    assert err == f"ferry: kubeconfig {tmp_path / 'nope'} does not exist (from KUBECONFIG)\n"
    code, _, err = run(capsys, "--kubeconfig", str(tmp_path / "other"), "list")
    assert (code, err) == (8, f"ferry: kubeconfig {tmp_path / 'other'} does not exist\n")
    monkeypatch.delenv("KUBECONFIG")
    monkeypatch.setenv("HOME", str(tmp_path))
    code, _, err = run(capsys, "get", "x")
    assert code == 8
    assert "no kubeconfig: set KUBECONFIG or pass --kubeconfig" in err
    assert "Traceback" not in err


def test_unreachable_apiserver_is_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "kubeconfig"
    config.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: k, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: c, context: {cluster: k, user: u, namespace: lab}}]\n"
    )
    monkeypatch.setenv("KUBECONFIG", str(config))
    code, _, err = run(capsys, "list")
    assert code == 1
    assert err.startswith("ferry: cannot reach the apiserver at https://127.0.0.1:1")
    assert err.count("\n") == 1


def test_local_input_that_does_not_exist(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "nope"))
    code, _, err = run(capsys, "submit", "hello", "-i", "model=./missing.tcl")
    # The kubeconfig is looked at first: the client is made before inputs are read.
    assert code in (2, 8)
    assert err.count("\n") == 1


def test_durations_and_waits_need_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "wait")
    assert (code, err) == (2, "ferry: wait: name a JOB or --sweep\n")
    code, _, err = run(capsys, "extend", "job", "soon")
    assert code == 2
    assert "duration 'soon'" in err


def test_help_lists_every_verb() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for verb in (
        "submit", "sweep", "list", "get", "wait", "logs", "outputs", "download", "cancel",
        "suspend", "resume", "extend", "rerun", "timeline", "events", "apps", "operator",
    ):  # fmt: skip
        assert f"  {verb} " in result.output
    run_help = CliRunner().invoke(cli, ["operator", "run", "--help"])
    assert "--namespace" in run_help.output
    assert "--verbose" in run_help.output


def test_exit_codes_are_distinct_and_documented() -> None:
    codes = list(EXIT_CODES.values())
    assert len(codes) == len(set(codes))
    doc = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text()
    for meaning, code in EXIT_CODES.items():
        assert f"| {code} |" in doc, meaning


def test_shell_completion_script() -> None:
    result = CliRunner().invoke(cli, [], prog_name="ferry", env={"_FERRY_COMPLETE": "bash_source"})
    assert "_ferry_completion" in result.output
