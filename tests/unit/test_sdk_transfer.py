"""Downloads and waits against fakes of the client modules: resume, skip, corruption,
empty files, unsafe paths; watch restarts, deletions and deadlines."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ferry.clients.user import WatchExpiredError
from ferry.sdk import query, transfer, watching
from ferry.sdk.errors import IntegrityError, NotFoundError, WaitTimeoutError
from ferry.sdk.outputs import OutputFile, Outputs

pytestmark = pytest.mark.unit


class FakeStore:
    def __init__(self, objects: dict[str, bytes]) -> None:
        self.objects = objects
        self.reads: list[tuple[str, int]] = []

    def append_object(self, bucket: str, key: str, part: Path, offset: int, on_bytes: Any) -> int:
        self.reads.append((key, offset))
        data = self.objects[key][offset:]
        with open(part, "ab") as out:
            out.write(data)
        on_bytes(len(data))
        return len(data)


def outputs(files: dict[str, bytes], manifest_files: dict[str, bytes] | None = None) -> Outputs:
    listed = manifest_files or files
    entries = [
        OutputFile(p, f"outputs/{p}", len(d), hashlib.sha256(d).hexdigest())
        for p, d in sorted(listed.items())
    ]
    return Outputs("s3://b/p/", "b", "p/", entries, None)


def fetch(store: FakeStore, outs: Outputs, dest: Path, *globs: str) -> transfer.DownloadResult:
    return transfer.download(store, outs, dest, list(globs))  # type: ignore[arg-type]


def test_download_verifies_skips_and_resumes(tmp_path: Path) -> None:
    files = {"a.txt": b"alpha", "dir/big.bin": bytes(range(256)) * 100, "empty": b""}
    store = FakeStore({f"p/outputs/{k}": v for k, v in files.items()})
    outs = outputs(files)
    got = fetch(store, outs, tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in got.files) == sorted(files)
    assert (tmp_path / "empty").read_bytes() == b""
    assert ("p/outputs/empty", 0) not in store.reads  # nothing to fetch for an empty file
    again = fetch(store, outs, tmp_path)
    assert again.already_present == 3
    assert again.downloaded_bytes == 0
    (tmp_path / "dir/big.bin").unlink()
    (tmp_path / "dir/big.bin.part").write_bytes(files["dir/big.bin"][:1000])
    store.reads.clear()
    resumed = fetch(store, outs, tmp_path, "dir/*")
    assert store.reads == [("p/outputs/dir/big.bin", 1000)]
    assert resumed.resumed == 1
    assert (tmp_path / "dir/big.bin").read_bytes() == files["dir/big.bin"]


def test_a_damaged_partial_file_is_fetched_again_once(tmp_path: Path) -> None:
    files = {"a.bin": b"0123456789" * 10}
    store = FakeStore({"p/outputs/a.bin": files["a.bin"]})
    (tmp_path / "a.bin.part").write_bytes(b"XXXXX")  # not the object's first bytes
    fetch(store, outputs(files), tmp_path)
    assert store.reads == [("p/outputs/a.bin", 5), ("p/outputs/a.bin", 0)]
    assert (tmp_path / "a.bin").read_bytes() == files["a.bin"]


def test_an_object_that_does_not_match_the_manifest_is_refused(tmp_path: Path) -> None:
    store = FakeStore({"p/outputs/a.txt": b"tampered"})
    with pytest.raises(IntegrityError, match=r"a\.txt: the store's copy does not match"):
        fetch(store, outputs({}, {"a.txt": b"original"}), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_every_path_is_checked_before_anything_is_written(tmp_path: Path) -> None:
    files = {"a.txt": b"a", "../../etc/x": b"x"}
    store = FakeStore({f"p/outputs/{k}": v for k, v in files.items()})
    with pytest.raises(IntegrityError, match="escape"):
        fetch(store, outputs(files), tmp_path / "dest")
    assert store.reads == []
    assert not (tmp_path / "dest" / "a.txt").exists()


def test_a_glob_that_matches_nothing_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match=r"no archived file matches \*\.csv"):
        fetch(FakeStore({}), outputs({"a.txt": b"a"}), tmp_path, "*.csv")


class FakeKube:
    """get() returns the next scripted object; watch() yields scripted event lists (or
    raises what is scripted)."""

    def __init__(self, gets: list[dict[str, Any]], watches: list[Any]) -> None:
        self.gets = gets
        self.watches = watches
        self.watch_calls: list[str] = []

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        return self.gets.pop(0) if len(self.gets) > 1 else self.gets[0]

    def watch(self, kind: str, namespace: str | None, rv: str, **kw: Any) -> Iterator[Any]:
        self.watch_calls.append(rv)
        script = self.watches.pop(0) if self.watches else []
        if isinstance(script, Exception):
            raise script
        yield from script


def job(state: str, rv: str) -> dict[str, Any]:
    return {"metadata": {"name": "j", "resourceVersion": rv}, "status": {"state": state}}


def test_until_follows_the_watch_and_restarts_when_it_expires() -> None:
    kube = FakeKube(
        [job("Running", "1"), job("Running", "5")],
        [
            [("BOOKMARK", {"metadata": {"resourceVersion": "3"}}),
             ("MODIFIED", job("Running", "4"))],
            WatchExpiredError("too old"),
            [("MODIFIED", job("Archiving", "6")), ("MODIFIED", job("Finished", "7"))],
        ],
    )  # fmt: skip
    done = watching.until(kube, "ns", "j", query.is_terminal, None)  # type: ignore[arg-type]
    assert done["metadata"]["resourceVersion"] == "7"
    assert kube.watch_calls == ["1", "5", "5"]


def test_until_reports_a_deleted_job_and_a_deadline() -> None:
    kube = FakeKube([job("Running", "1")], [[("DELETED", job("Running", "2"))]])
    with pytest.raises(NotFoundError, match="was deleted"):
        watching.until(kube, "ns", "j", query.is_terminal, None)  # type: ignore[arg-type]
    kube = FakeKube([job("Queued", "1")], [])
    with pytest.raises(WaitTimeoutError, match=r"Job j is still Queued after 0\.2s"):
        watching.until(kube, "ns", "j", query.is_terminal, 0.2)  # type: ignore[arg-type]


def test_import_ferry_stays_light_and_client_is_lazy() -> None:
    code = (
        "import sys, ferry\n"
        "assert 'kubernetes' not in sys.modules and 'ferry.sdk' not in sys.modules\n"
        "from ferry import Client\n"
        "from ferry.sdk import Client as C\n"
        "assert Client is C and 'kubernetes' in sys.modules\n"
    )
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True,
        env={"PYTHONPATH": str(root / "operator")},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
