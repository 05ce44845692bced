"""The SDK's pure parts: labels and selectors, list filters and order, grids, durations,
store settings, manifest parsing, glob selection and path safety."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ferry.sdk import query
from ferry.sdk.errors import ConfigError, IntegrityError, NotFoundError, UsageError
from ferry.sdk.outputs import (
    OutputFile,
    attempt_uri,
    check_relative,
    parse_manifest,
    select,
    split_uri,
    target,
)
from ferry.sdk.settings import StoreSettings
from ferry.sdk.sources import LocalInput, classify, local_files

pytestmark = pytest.mark.unit


def job(name: str, created: str, state: str = "", app: str = "sim") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ns", "creationTimestamp": created},
        "spec": {"appRef": {"name": app}},
        "status": {"state": state} if state else {},
    }


def test_labels_parse_and_refuse_malformed() -> None:
    assert query.parse_labels(["project=bridge", "ferry.dev/sweep=s1"]) == {
        "project": "bridge",
        "ferry.dev/sweep": "s1",
    }
    with pytest.raises(UsageError, match="label 'foo': expected KEY=VALUE"):
        query.parse_labels(["foo"])
    with pytest.raises(UsageError, match="not a valid label value"):
        query.parse_labels(["a=has space"])
    assert query.selector({"b": "2", "a": "1"}) == "a=1,b=2"


def test_list_filters_newest_first_and_last_n() -> None:
    items = [
        job("a", "2026-01-01T00:00:01Z", "Finished"),
        job("b", "2026-01-01T00:00:03Z", "Failed"),
        job("c", "2026-01-01T00:00:02Z", "Finished", app="other"),
        job("d", "2026-01-01T00:00:04Z"),
    ]
    names = lambda xs: [x["metadata"]["name"] for x in xs]  # noqa: E731
    assert names(query.filter_jobs(items)) == ["d", "b", "c", "a"]
    assert names(query.filter_jobs(items, states=["finished"])) == ["c", "a"]
    assert names(query.filter_jobs(items, states=["Finished"], app="sim")) == ["a"]
    assert names(query.filter_jobs(items, last_n=2)) == ["d", "b"]
    with pytest.raises(UsageError, match="one of Pending"):
        query.filter_jobs(items, states=["done"])
    assert query.counts_by_state(items) == {"Pending": 1, "Finished": 2, "Failed": 1}


def test_grid_expands_first_key_slowest_and_names_fit() -> None:
    grid = {"steps": [10, 20], "seed": [1, 2, 3], "mode": "fast"}
    sets = query.expand_grid(grid)
    assert len(sets) == 6
    assert sets[0] == {"steps": 10, "seed": 1, "mode": "fast"}
    assert sets[3] == {"steps": 20, "seed": 1, "mode": "fast"}
    assert query.parse_grid(["steps=10,20", "tol=1e-3"]) == {"steps": [10, 20], "tol": [1e-3]}
    names = query.sweep_names("x" * 60, 12)
    assert names[0].endswith("-001")
    assert names[-1].endswith("-012")
    assert all(len(n) <= 52 for n in names)
    with pytest.raises(UsageError):
        query.expand_grid({"a": []})


@pytest.mark.parametrize(
    ("text", "seconds"), [("600", 600), ("90s", 90), ("30m", 1800), ("1h30m", 5400), ("1d", 86400)]
)
def test_durations(text: str, seconds: int) -> None:
    assert query.parse_duration(text) == seconds


def test_bad_duration() -> None:
    with pytest.raises(UsageError, match="duration"):
        query.parse_duration("soon")


def test_store_settings_name_what_is_missing() -> None:
    with pytest.raises(ConfigError) as err:
        StoreSettings.from_env({"FERRY_S3_ENDPOINT": "http://127.0.0.1:9000"})
    text = str(err.value)
    assert "FERRY_S3_ACCESS_KEY or AWS_ACCESS_KEY_ID" in text
    assert "FERRY_S3_SECRET_KEY or AWS_SECRET_ACCESS_KEY" in text
    assert "ENDPOINT" not in text
    s = StoreSettings.from_env(
        {"AWS_ENDPOINT_URL": "http://e:9000", "AWS_ACCESS_KEY_ID": "a",
         "AWS_SECRET_ACCESS_KEY": "b", "FERRY_S3_UPLOAD_PREFIX": "in"}
    )  # fmt: skip
    assert (s.endpoint, s.access_key, s.bucket, s.upload_prefix) == (
        "http://e:9000", "a", "ferry", "in/",
    )  # fmt: skip


def manifest(files: list[dict[str, Any]]) -> bytes:
    return json.dumps(
        {"kind": "ArchiveManifest", "files": files, "log": None, "outcome": "Succeeded"}
    ).encode()


def test_manifest_listing_and_selection() -> None:
    entry = {
        "path": "results/a.txt",
        "key": "outputs/results/a.txt",
        "bytes": 3,
        "sha256": "A" * 64,
    }
    outs = parse_manifest(
        manifest([entry, {**entry, "path": "b.dat", "key": "outputs/b.dat"}]),
        "s3://ferry/ns/j/uid/attempt-2/",
    )
    assert (outs.bucket, outs.prefix) == ("ferry", "ns/j/uid/attempt-2/")
    assert outs.files[0] == OutputFile("results/a.txt", "outputs/results/a.txt", 3, "a" * 64)
    assert [f.path for f in select(outs.files, ["results/**"])] == ["results/a.txt"]
    assert len(select(outs.files, None)) == 2
    with pytest.raises(IntegrityError):
        parse_manifest(b"{}", "s3://b/p/")
    assert attempt_uri("s3://b/ns/j/u/attempt-2/", 1) == "s3://b/ns/j/u/attempt-1/"
    with pytest.raises(NotFoundError):
        split_uri("https://x")


@pytest.mark.parametrize(
    "path", ["../evil", "/etc/passwd", "a/../../b", "a\\b", "", "a//b", "./a", "x\x00"]
)
def test_paths_that_would_escape_are_refused(path: str) -> None:
    with pytest.raises(IntegrityError, match="escape"):
        check_relative(path)


def test_target_refuses_symlinks_out_of_dest(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "link").symlink_to(tmp_path)
    with pytest.raises(IntegrityError, match="outside"):
        target(dest, "link/x.txt")
    assert target(dest, "results/a.txt") == dest / "results" / "a.txt"


def test_inputs_are_sources_or_local_paths(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.txt").write_text("a")
    (tmp_path / "data" / "sub").mkdir()
    (tmp_path / "data" / "sub" / "b.txt").write_text("b")
    assert classify("m", "s3://b/k") == {"s3": {"bucket": "b", "key": "k"}}
    assert classify("m", {"inline": "x"}) == {"inline": "x"}
    local = classify("d", "data", base=tmp_path)
    assert isinstance(local, LocalInput)
    assert local.is_dir
    assert [r for r, _ in local_files(local.path)] == ["a.txt", "sub/b.txt"]
    with pytest.raises(UsageError, match="not a file or directory here"):
        classify("d", "missing", base=tmp_path)
    with pytest.raises(UsageError, match="SOURCE is s3://"):
        classify("d", "ftp://x/y")


def test_rerun_copies_the_spec_and_the_users_labels_only() -> None:
    from ferry.sdk.derive import rerun_body

    old = {
        "metadata": {
            "name": "frame-1", "namespace": "ns",
            "labels": {"project": "bridge", "ferry.dev/sweep": "s",
                       "app.kubernetes.io/managed-by": "x"},
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}", "note": "n"},
        },
        "spec": {"appRef": {"name": "opensees"}, "suspend": True, "cancel": True,
                 "maxRunSeconds": 5},
    }  # fmt: skip
    body = rerun_body(old, "frame-2")
    assert body["spec"] == {"appRef": {"name": "opensees"}, "maxRunSeconds": 5}
    assert body["metadata"] == {
        "name": "frame-2",
        "labels": {"project": "bridge", "ferry.dev/rerun-of": "frame-1"},
        "annotations": {"note": "n"},
    }
    assert rerun_body(old)["metadata"]["name"].startswith("frame-1-r")


def test_events_of_a_job_are_its_own_and_its_childrens() -> None:
    from ferry.sdk.derive import job_events

    def ev(kind: str, name: str, when: str, reason: str = "R") -> dict[str, Any]:
        return {"involvedObject": {"kind": kind, "name": name}, "lastTimestamp": when,
                "reason": reason, "type": "Normal", "message": "a\n b"}  # fmt: skip

    items = [
        ev("Job", "s-1", "2026-01-01T00:00:03Z", "Finished"),
        ev("Pod", "s-1-1", "2026-01-01T00:00:01Z", "Scheduled"),
        ev("Pod", "s-1-1-archive-1", "2026-01-01T00:00:02Z", "Started"),
        ev("Pod", "s-1-again-1", "2026-01-01T00:00:02Z"),
        ev("Job", "s-10", "2026-01-01T00:00:02Z"),
    ]
    got = job_events(items, "s-1")
    assert [(e.object, e.reason) for e in got] == [
        ("pod/s-1-1", "Scheduled"), ("pod/s-1-1-archive-1", "Started"), ("job/s-1", "Finished"),
    ]  # fmt: skip
    assert got[0].message == "a b"
