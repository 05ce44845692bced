"""The stager as a pod runs it: a subprocess against the real MinIO and real HTTP servers.

Each test runs `python -m ferry.stager …` with the container paths pointed into tmp_path and
checks what a pod would show: the exit code, the termination message, the staged files and
their records, and what landed in the bucket (downloaded and hashed again). The store-outage
tests start a MinIO of their own (ferrydev.minio), never touching the shared one.
"""

from __future__ import annotations

import errno
import hashlib
import http.server
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ferry.clients.s3 import S3Client
from ferrydev.minio import MinioServer

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str
    message: str

    def json(self) -> Any:
        """The summary, less `seconds` (checked here: a duration, so it differs run to run)."""
        data = json.loads(self.message)
        if isinstance(data, dict):
            seconds = data.pop("seconds")
            assert isinstance(seconds, int | float)
            assert seconds >= 0
        return data


@dataclass
class Pod:
    """The container's view: its root dirs under tmp_path and its environment."""

    root: Path
    env: dict[str, str]
    disk: Path | None = None

    @property
    def inputs(self) -> Path:
        return self.root / "ws" / "inputs"

    @property
    def logs(self) -> Path:
        return self.root / "ws" / "logs"

    @property
    def records(self) -> Path:
        return self.root / "ws" / "records"

    @property
    def workspace(self) -> Path:
        return self.root / "ws"

    @property
    def source(self) -> Path:
        return self.root / "source"

    @property
    def work(self) -> Path:
        return self.root / "ws" / "work"

    def record(self, name: str) -> Any:
        return json.loads((self.records / "inputs" / f"{name}.json").read_text())

    def run(self, *args: str, timeout: float = 120, **env: str) -> Result:
        """Run the stager; with `disk` set (a file system image), the inputs dir is that file
        system, mounted in a mount namespace of the stager's own (gone when it ends)."""
        disk = self.disk
        termination = self.root / f"termination-{uuid.uuid4().hex[:6]}"
        command = [sys.executable, "-m", "ferry.stager", *args]
        if disk is not None:
            self.inputs.mkdir(parents=True, exist_ok=True)
            command = [*in_namespace_with(disk, self.inputs), *command]
        proc = subprocess.run(
            command,
            env={**self.env, "FERRY_TERMINATION_LOG": str(termination), **env},
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=str(ROOT),
        )
        message = termination.read_text() if termination.exists() else ""
        return Result(proc.returncode, proc.stdout, proc.stderr, message)

    def stage(self, name: str, source: dict[str, Any], **env: str) -> Result:
        return self.run("stage-in", FERRY_INPUT=json.dumps({"name": name, "source": source}), **env)

    def archive(self, plan: dict[str, Any], **env: str) -> Result:
        return self.run("archive", FERRY_ARCHIVE=json.dumps(plan), **env)


def in_namespace_with(image: Path, mountpoint: Path) -> list[str]:
    """The command prefix that mounts the file system `image` at `mountpoint` in a new mount
    namespace, then runs the rest: nothing is mounted on the machine itself."""
    script = 'mount -o loop "$1" "$2" && shift 2 && exec "$@"'
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
            str(image), str(mountpoint)]  # fmt: skip


@pytest.fixture
def small_disk(tmp_path: Path) -> Path:
    """A 16 MiB ext4 file system, as an image file (mounted by `in_namespace_with`)."""
    image = tmp_path / "small-disk.img"
    with open(image, "wb") as out:
        out.truncate(16 * 1024 * 1024)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True, timeout=60)
    return image


def _base_env(root: Path, endpoint: str, access: str, secret: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FERRY_", "MINIO_"))}
    env.update(
        PYTHONPATH=str(ROOT / "operator"),
        FERRY_INPUTS_DIR=str(root / "ws" / "inputs"),
        FERRY_RECORDS_DIR=str(root / "ws" / "records"),
        FERRY_SOURCE_DIR=str(root / "source"),
        FERRY_WORKSPACE=str(root / "ws"),
        FERRY_S3_ENDPOINT=endpoint,
        FERRY_S3_REGION="us-east-1",
        FERRY_S3_ACCESS_KEY=access,
        FERRY_S3_SECRET_KEY=secret,
        # The store is the default one, which the operator always lists as trusted (it is on
        # loopback here, which only a trusted store may use).
        FERRY_ALLOWED_STORE_ENDPOINTS=endpoint,
        FERRY_RETRY_BACKOFF_SECONDS="0.2",
    )
    return env


@pytest.fixture
def pod(tmp_path: Path, cluster: Any) -> Pod:
    root = tmp_path / "pod"
    (root / "ws" / "logs").mkdir(parents=True)
    (root / "ws" / "records").mkdir(parents=True)
    return Pod(
        root,
        _base_env(root, cluster.minio_endpoint, cluster.minio_access_key, cluster.minio_secret_key),
    )


# -- a local HTTP server --------------------------------------------------------------------


@dataclass
class Site:
    """A tiny HTTP server on one loopback address; routes map paths to responses."""

    host: str
    routes: dict[str, tuple[int, dict[str, str], bytes]] = field(default_factory=dict)
    hits: list[str] = field(default_factory=list)
    server: http.server.ThreadingHTTPServer | None = None

    @property
    def base(self) -> str:
        assert self.server is not None
        return f"http://{self.host}:{self.server.server_address[1]}"

    def start(self) -> Site:
        site = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                site.hits.append(self.path)
                status, headers, body = site.routes.get(self.path, (404, {}, b"no such file"))
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                # X-Cut-At: N sends the first N bytes of the body, then closes the connection.
                self.wfile.write(body[: int(headers.get("X-Cut-At", len(body)))])
                self.close_connection = "X-Cut-At" in headers

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer((self.host, 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@pytest.fixture
def site() -> Iterator[Site]:
    s = Site("127.0.0.1").start()
    yield s
    s.stop()


@pytest.fixture
def other_site() -> Iterator[Site]:
    s = Site("127.0.0.2").start()
    yield s
    s.stop()


LOCAL = "127.0.0.1/32"


# -- setup ----------------------------------------------------------------------------------


def test_setup_prepares_workspace_and_launcher(pod: Pod, tmp_path: Path) -> None:
    launcher = tmp_path / "ferry-launch-src"
    launcher.write_bytes(b'#!/bin/sh\nexec "$@"\n')
    bin_dir = tmp_path / "bin"
    res = pod.run("setup", "--bin", str(bin_dir), FERRY_LAUNCHER=str(launcher))
    assert res.code == 0, res.stderr
    for d in ("work", "inputs", "logs", "records", "records/inputs"):
        assert (pod.workspace / d).is_dir()
        assert (pod.workspace / d).stat().st_mode & 0o770 == 0o770
    copied = bin_dir / "ferry-launch"
    assert copied.read_bytes() == launcher.read_bytes()
    assert copied.stat().st_mode & 0o777 == 0o755
    again = pod.run("setup", "--bin", str(bin_dir), FERRY_LAUNCHER=str(launcher))
    assert again.code == 0, again.stderr


def test_setup_without_launcher_fails_clearly(pod: Pod, tmp_path: Path) -> None:
    res = pod.run("setup", "--bin", str(tmp_path / "bin"), FERRY_LAUNCHER="/nonexistent/launch")
    assert res.code == 1
    assert res.message == (
        "setup: launcher /nonexistent/launch not found (FERRY_LAUNCHER); "
        "the tools image is incomplete"
    )
    assert "Traceback" not in res.stderr


# -- stage-in: every source kind ------------------------------------------------------------


def test_s3_key(pod: Pod, store: S3Client, bucket: str) -> None:
    body = b"model frame\n" * 1000
    store.put_bytes(bucket, "models/frame.tcl", body)
    res = pod.stage("model", {"s3": {"bucket": bucket, "key": "models/frame.tcl"}})
    assert res.code == 0, res.stderr
    assert (pod.inputs / "model").read_bytes() == body
    record = pod.record("model")
    assert record["kind"] == "s3"
    assert record["source"]["key"] == "models/frame.tcl"
    assert record["files"] == [{"path": "model", "bytes": len(body), "sha256": sha(body)}]
    assert record["bytes"] == len(body)
    assert res.json() == {"input": "model", "files": 1, "bytes": len(body)}
    text = json.dumps(record)
    assert pod.env["FERRY_S3_SECRET_KEY"] not in text
    assert pod.env["FERRY_S3_ACCESS_KEY"] not in text


def test_s3_prefix(pod: Pod, store: S3Client, bucket: str) -> None:
    objects = {
        "runs/a/x.csv": b"x" * 10,
        "runs/a/sub/y.csv": b"y" * 20,
        "runs/a/sub/deeper/z.bin": os.urandom(3000),
        "runs/ab/not-me.csv": b"outside the prefix",
    }
    for key, data in objects.items():
        store.put_bytes(bucket, key, data)
    res = pod.stage("data", {"s3": {"bucket": bucket, "prefix": "runs/a"}})
    assert res.code == 0, res.stderr
    staged = {
        str(p.relative_to(pod.inputs / "data")): p.read_bytes()
        for p in (pod.inputs / "data").rglob("*")
        if p.is_file()
    }
    assert staged == {
        "x.csv": objects["runs/a/x.csv"],
        "sub/y.csv": objects["runs/a/sub/y.csv"],
        "sub/deeper/z.bin": objects["runs/a/sub/deeper/z.bin"],
    }
    record = pod.record("data")
    assert record["source"]["prefix"] == "runs/a/"
    assert {f["path"]: f["sha256"] for f in record["files"]} == {
        "data/x.csv": sha(objects["runs/a/x.csv"]),
        "data/sub/y.csv": sha(objects["runs/a/sub/y.csv"]),
        "data/sub/deeper/z.bin": sha(objects["runs/a/sub/deeper/z.bin"]),
    }


def test_s3_prefix_with_no_objects_fails(pod: Pod, bucket: str) -> None:
    res = pod.stage("data", {"s3": {"bucket": bucket, "prefix": "nothing-here/"}})
    assert res.code == 1
    assert res.message == f"input 'data': no objects under s3://{bucket}/nothing-here/"


def test_http_with_sha256(pod: Pod, site: Site) -> None:
    body = os.urandom(200_000)
    site.routes["/files/model.tcl?token=abc"] = (200, {}, body)
    url = f"{site.base}/files/model.tcl?token=abc"
    res = pod.stage(
        "model", {"http": {"url": url, "sha256": sha(body)}}, FERRY_HTTP_ALLOW_CIDRS=LOCAL
    )
    assert res.code == 0, res.stderr
    assert (pod.inputs / "model").read_bytes() == body
    record = pod.record("model")
    assert record["kind"] == "http"
    assert record["source"] == {"url": f"{site.base}/files/model.tcl?…", "sha256": sha(body)}
    assert "token=abc" not in json.dumps(record)
    assert record["files"][0]["sha256"] == sha(body)


def test_http_follows_an_allowed_redirect(pod: Pod, site: Site) -> None:
    site.routes["/old"] = (302, {"Location": "/new"}, b"")
    site.routes["/new"] = (200, {}, b"moved")
    res = pod.stage("doc", {"http": {"url": f"{site.base}/old"}}, FERRY_HTTP_ALLOW_CIDRS=LOCAL)
    assert res.code == 0, res.stderr
    assert (pod.inputs / "doc").read_bytes() == b"moved"
    assert site.hits == ["/old", "/new"]


def test_http_too_many_redirects(pod: Pod, site: Site) -> None:
    for i in range(10):
        site.routes[f"/r{i}"] = (307, {"Location": f"/r{i + 1}"}, b"")
    res = pod.stage("doc", {"http": {"url": f"{site.base}/r0"}}, FERRY_HTTP_ALLOW_CIDRS=LOCAL)
    assert res.code == 1
    assert res.message == f"input 'doc': {site.base}/r0: more than 5 redirects; refused"
    assert len(site.hits) == 6


def test_http_checksum_mismatch(pod: Pod, site: Site) -> None:
    body = b"the real content"
    site.routes["/m"] = (200, {}, body)
    wrong = "0" * 64
    res = pod.stage(
        "model", {"http": {"url": f"{site.base}/m", "sha256": wrong}}, FERRY_HTTP_ALLOW_CIDRS=LOCAL
    )
    assert res.code == 1
    assert res.message == (
        f"input 'model': sha256 mismatch for {site.base}/m: expected {wrong}, "
        f"got {sha(body)} ({len(body)} bytes)"
    )
    assert res.stderr.strip() == res.message
    assert not (pod.inputs / "model").exists()
    assert not list(pod.inputs.iterdir())  # no half-staged leftovers


def test_http_size_limit(pod: Pod, site: Site) -> None:
    site.routes["/big"] = (200, {}, b"x" * 5000)
    res = pod.stage(
        "big",
        {"http": {"url": f"{site.base}/big"}},
        FERRY_HTTP_ALLOW_CIDRS=LOCAL,
        FERRY_HTTP_MAX_BYTES="1000",
    )
    assert res.code == 1
    assert "over the 1000 B limit (FERRY_HTTP_MAX_BYTES)" in res.message


def test_http_not_found_and_unreachable(pod: Pod, site: Site) -> None:
    res = pod.stage("doc", {"http": {"url": f"{site.base}/missing"}}, FERRY_HTTP_ALLOW_CIDRS=LOCAL)
    assert (res.code, res.message) == (1, f"input 'doc': {site.base}/missing: HTTP 404 Not Found")
    port = site.server.server_address[1] if site.server else 0
    site.stop()
    res = pod.stage(
        "doc",
        {"http": {"url": f"http://127.0.0.1:{port}/x"}},
        FERRY_HTTP_ALLOW_CIDRS=LOCAL,
        FERRY_STAGE_RETRIES="1",
    )
    # An outage, not a refusal: exit 75, which the operator waits out.
    assert res.code == 75
    assert res.message == (
        f"input 'doc': http://127.0.0.1:{port}/x: cannot connect (connection refused) "
        "(gave up after 2 tries)"
    )


def test_http_server_errors_are_outages_and_are_retried(pod: Pod, site: Site) -> None:
    site.routes["/busy"] = (503, {}, b"try later")
    site.routes["/slow-down"] = (429, {}, b"too many")
    for path, words in (("/busy", "503 Service Unavailable"), ("/slow-down", "429 Too Many")):
        res = pod.stage(
            "doc",
            {"http": {"url": f"{site.base}{path}"}},
            FERRY_HTTP_ALLOW_CIDRS=LOCAL,
            FERRY_STAGE_RETRIES="2",
        )
        assert res.code == 75, res.message
        assert res.message.startswith(f"input 'doc': {site.base}{path}: HTTP {words}")
        assert res.message.endswith("(gave up after 3 tries)")
        assert site.hits.count(path) == 3
    # A refusal is not retried: one request, exit 1.
    site.routes["/gone"] = (410, {}, b"gone")
    res = pod.stage("doc", {"http": {"url": f"{site.base}/gone"}}, FERRY_HTTP_ALLOW_CIDRS=LOCAL)
    assert (res.code, site.hits.count("/gone")) == (1, 1)


def test_http_body_cut_short_is_an_outage_not_a_staged_input(pod: Pod, site: Site) -> None:
    # No checksum to catch it: the declared length is what tells a cut body from a whole one.
    site.routes["/cut"] = (200, {"X-Cut-At": "50000"}, os.urandom(200_000))
    res = pod.stage(
        "doc",
        {"http": {"url": f"{site.base}/cut"}},
        FERRY_HTTP_ALLOW_CIDRS=LOCAL,
        FERRY_STAGE_RETRIES="1",
    )
    assert res.code == 75, res.message
    assert res.message == (
        f"input 'doc': {site.base}/cut: download interrupted after 50000 of 200000 bytes "
        "(the connection ended) (gave up after 2 tries)"
    )
    assert site.hits.count("/cut") == 2
    assert not (pod.inputs / "doc").exists()


def test_a_full_disk_fails_an_http_input_at_once_and_names_the_file(
    pod: Pod, site: Site, small_disk: Path
) -> None:
    # A full disk is not an outage: trying again cannot help, and each try would fetch the
    # whole body again. The space is reserved before the body is read, so it fails at once.
    site.routes["/big"] = (200, {}, os.urandom(32 * 1024 * 1024))
    pod.disk = small_disk
    res = pod.stage(
        "big",
        {"http": {"url": f"{site.base}/big"}},
        FERRY_HTTP_ALLOW_CIDRS=LOCAL,
        FERRY_STAGE_RETRIES="3",
    )
    assert res.code == 1, res.message
    assert res.message == (
        f"input 'big': cannot write {pod.inputs}/.staging-big: No space left on device"
    )
    assert site.hits == ["/big"]


def test_a_refused_reservation_leaves_no_space_taken(small_disk: Path, tmp_path: Path) -> None:
    # ext4 keeps the blocks it allocated before it ran out; the reservation gives them back.
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    probe = (
        "import errno, json, os, sys\n"
        "from ferry.clients.hashcopy import reserve\n"
        "path = os.path.join(sys.argv[1], 'f')\n"
        "with open(path, 'wb') as out:\n"
        "    try:\n"
        "        reserve(out, 64 * 1024 * 1024)\n"
        "        raised = None\n"
        "    except OSError as exc:\n"
        "        raised = [exc.errno, exc.filename]\n"
        "print(json.dumps({'raised': raised, 'taken': os.stat(path).st_blocks * 512,\n"
        "    'path': path}))\n"
    )
    proc = subprocess.run(
        [*in_namespace_with(small_disk, mountpoint), sys.executable, "-c", probe, str(mountpoint)],
        env={**os.environ, "PYTHONPATH": str(ROOT / "operator")},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    got = json.loads(proc.stdout)
    assert got["raised"] == [errno.ENOSPC, got["path"]]
    assert got["taken"] == 0


def test_http_server_back_within_the_retries_stages(pod: Pod, site: Site) -> None:
    body = b"model"
    calls: list[int] = []

    class Flaky(dict[str, tuple[int, dict[str, str], bytes]]):
        def get(self, key: str, default: Any = None) -> Any:
            calls.append(1)
            if len(calls) < 3:
                return (502, {}, b"bad gateway")
            return (200, {}, body)

    site.routes = Flaky()
    res = pod.stage(
        "doc",
        {"http": {"url": f"{site.base}/m", "sha256": sha(body)}},
        FERRY_HTTP_ALLOW_CIDRS=LOCAL,
        FERRY_STAGE_RETRIES="3",
    )
    assert res.code == 0, res.message
    assert len(calls) == 3
    assert (pod.inputs / "doc").read_bytes() == body


def test_pvc_file(pod: Pod) -> None:
    claim = pod.source / "mesh" / "models"
    claim.mkdir(parents=True)
    (claim / "frame.tcl").write_bytes(b"pvc content")
    res = pod.stage("mesh", {"pvc": {"claimName": "data", "path": "models/frame.tcl"}})
    assert res.code == 0, res.stderr
    assert (pod.inputs / "mesh").read_bytes() == b"pvc content"
    assert pod.record("mesh")["source"] == {"claimName": "data", "path": "models/frame.tcl"}


def test_pvc_directory_keeps_symlinks_inside(pod: Pod, tmp_path: Path) -> None:
    root = pod.source / "tree"
    (root / "set" / "sub").mkdir(parents=True)
    (root / "set" / "a.txt").write_text("a")
    (root / "set" / "sub" / "b.txt").write_text("b")
    (root / "shared.txt").write_text("shared")
    (tmp_path / "host-secret").write_text("secret")
    os.symlink("../shared.txt", root / "set" / "inside-claim")
    os.symlink(str(tmp_path / "host-secret"), root / "set" / "outside")
    res = pod.stage("tree", {"pvc": {"claimName": "data", "path": "set"}})
    assert res.code == 0, res.stderr
    staged = {
        str(p.relative_to(pod.inputs / "tree")): p.read_text()
        for p in (pod.inputs / "tree").rglob("*")
        if p.is_file()
    }
    assert staged == {"a.txt": "a", "sub/b.txt": "b", "inside-claim": "shared"}
    record = pod.record("tree")
    assert [f["path"] for f in record["files"]] == [
        "tree/a.txt",
        "tree/inside-claim",
        "tree/sub/b.txt",
    ]
    assert record["skipped"] == [{"path": "outside", "reason": "symlink points outside the claim"}]


def test_pvc_missing_and_escaping_paths(pod: Pod, tmp_path: Path) -> None:
    (pod.source / "x").mkdir(parents=True)
    res = pod.stage("x", {"pvc": {"claimName": "data", "path": "nope.tcl"}})
    assert (res.code, res.message) == (1, "input 'x': pvc data: nope.tcl not found")
    os.symlink("/etc/passwd", pod.source / "x" / "link")
    res = pod.stage("x", {"pvc": {"claimName": "data", "path": "link"}})
    assert (res.code, res.message) == (
        1,
        "input 'x': pvc data: link resolves outside the claim; refused",
    )


def test_config_map(pod: Pod) -> None:
    # The kubelet projects a key as content -> ..data/content -> ..2024_01_01/content.
    vol = pod.source / "cfg"
    (vol / "..2024_01_01").mkdir(parents=True)
    (vol / "..2024_01_01" / "content").write_text("solver = direct\n")
    os.symlink("..2024_01_01", vol / "..data")
    os.symlink("..data/content", vol / "content")
    res = pod.stage("cfg", {"configMap": {"name": "settings", "key": "solver.ini"}})
    assert res.code == 0, res.stderr
    assert (pod.inputs / "cfg").read_text() == "solver = direct\n"
    record = pod.record("cfg")
    assert record["kind"] == "configMap"
    assert record["source"] == {"name": "settings", "key": "solver.ini"}


def test_inline(pod: Pod) -> None:
    text = "small text ✓\n"
    res = pod.stage("note", {"inline": text})
    assert res.code == 0, res.stderr
    assert (pod.inputs / "note").read_text() == text
    record = pod.record("note")
    assert record["files"] == [
        {"path": "note", "bytes": len(text.encode()), "sha256": sha(text.encode())}
    ]
    assert record["source"] == {"bytes": len(text.encode())}


def test_restaging_replaces_the_input(pod: Pod) -> None:
    assert pod.stage("note", {"inline": "one"}).code == 0
    assert pod.stage("note", {"inline": "two"}).code == 0
    assert (pod.inputs / "note").read_text() == "two"
    assert sorted(p.name for p in pod.inputs.iterdir()) == ["note"]


# -- stage-in: failures ---------------------------------------------------------------------


def test_missing_key(pod: Pod, bucket: str) -> None:
    res = pod.stage("model", {"s3": {"bucket": bucket, "key": "frame.tcl"}})
    assert res.code == 1
    assert res.message.startswith(f"input 'model': s3://{bucket}/frame.tcl not found (NoSuchKey")
    assert res.stderr.strip() == res.message
    assert "Traceback" not in res.stderr
    assert not (pod.inputs / "model").exists()


def test_missing_bucket(pod: Pod) -> None:
    res = pod.stage("model", {"s3": {"bucket": "no-such-bucket-here", "key": "k"}})
    assert res.code == 1
    assert res.message.startswith(
        "input 'model': s3://no-such-bucket-here/k not found: the bucket does not exist"
    )


@pytest.mark.parametrize(
    ("override", "code"),
    [
        ({"FERRY_S3_ACCESS_KEY": "nobody"}, "InvalidAccessKeyId"),
        ({"FERRY_S3_SECRET_KEY": "wrong-secret-key"}, "SignatureDoesNotMatch"),
    ],
)
def test_bad_credentials(pod: Pod, bucket: str, override: dict[str, str], code: str) -> None:
    res = pod.stage("model", {"s3": {"bucket": bucket, "key": "k"}}, **override)
    assert res.code == 1
    assert res.message.startswith(f"input 'model': s3://{bucket}/k: access denied ({code}")
    assert "wrong-secret-key" not in res.message + res.stderr


def test_unreachable_store(pod: Pod, bucket: str) -> None:
    from ferrydev.processes import free_port

    port = free_port()
    res = pod.stage(
        "model",
        {"s3": {"bucket": bucket, "key": "k"}},
        FERRY_S3_ENDPOINT=f"http://127.0.0.1:{port}",
        FERRY_ALLOWED_STORE_ENDPOINTS=f"http://127.0.0.1:{port}",
        FERRY_STAGE_RETRIES="1",
    )
    assert res.code == 75  # an outage: the operator tries again later
    assert res.message == (
        f"input 'model': s3://{bucket}/k: cannot reach http://127.0.0.1:{port}: "
        "connection refused (gave up after 2 tries)"
    )


def test_invalid_input_spec(pod: Pod) -> None:
    res = pod.run("stage-in", FERRY_INPUT='{"name": "x", "source": {}}')
    assert res.code == 1
    assert res.message.startswith("FERRY_INPUT is not a valid input")


# -- stage-in: SSRF -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
            "input 'x': http://169.254.169.254/latest/meta-data/iam/security-credentials/ "
            "resolves to 169.254.169.254, a link-local/metadata address; refused",
        ),
        (
            "http://metadata.google.internal/computeMetadata/v1/?recursive=true",
            "input 'x': http://metadata.google.internal/computeMetadata/v1/?… names a "
            "cloud-metadata host; refused",
        ),
        (
            "http://[fe80::1]/x",
            "input 'x': http://[fe80::1]/x resolves to fe80::1, a link-local address; refused",
        ),
        (
            "http://[fd00:ec2::254]/latest",
            "input 'x': http://[fd00:ec2::254]/latest resolves to fd00:ec2::254, a "
            "cloud-metadata address; refused",
        ),
    ],
)
def test_ssrf_targets_are_refused(pod: Pod, url: str, message: str) -> None:
    res = pod.stage("x", {"http": {"url": url}})
    assert res.code == 1
    assert res.message == message
    assert res.stderr.strip() == message


def test_loopback_is_refused_without_the_allow_list(pod: Pod, site: Site) -> None:
    site.routes["/secret"] = (200, {}, b"node-local secret")
    res = pod.stage("x", {"http": {"url": f"{site.base}/secret"}})
    assert res.code == 1
    assert res.message == (
        f"input 'x': {site.base}/secret resolves to 127.0.0.1, a loopback address; refused"
    )
    assert site.hits == []  # refused before connecting


def test_localhost_by_name_is_refused(pod: Pod, site: Site) -> None:
    port = site.server.server_address[1] if site.server else 0
    res = pod.stage("x", {"http": {"url": f"http://localhost:{port}/"}})
    assert res.code == 1
    assert "a loopback address; refused" in res.message
    assert site.hits == []


def test_redirect_to_loopback_is_refused(pod: Pod, site: Site, other_site: Site) -> None:
    """The allowed server (127.0.0.2) redirects to 127.0.0.1, which is not allowed."""
    site.routes["/secret"] = (200, {}, b"node-local secret")
    other_site.routes["/go"] = (302, {"Location": f"{site.base}/secret"}, b"")
    res = pod.stage(
        "x", {"http": {"url": f"{other_site.base}/go"}}, FERRY_HTTP_ALLOW_CIDRS="127.0.0.2/32"
    )
    assert res.code == 1
    assert res.message == (
        f"input 'x': {site.base}/secret resolves to 127.0.0.1, a loopback address; refused "
        f"(redirected from {other_site.base}/go)"
    )
    assert other_site.hits == ["/go"]
    assert site.hits == []


def test_redirect_to_metadata_is_refused(pod: Pod, other_site: Site) -> None:
    other_site.routes["/go"] = (
        301,
        {"Location": "http://169.254.169.254/latest/meta-data/"},
        b"",
    )
    res = pod.stage(
        "x", {"http": {"url": f"{other_site.base}/go"}}, FERRY_HTTP_ALLOW_CIDRS="127.0.0.2/32"
    )
    assert res.code == 1
    assert res.message == (
        "input 'x': http://169.254.169.254/latest/meta-data/ resolves to 169.254.169.254, "
        f"a link-local/metadata address; refused (redirected from {other_site.base}/go)"
    )


# -- archive --------------------------------------------------------------------------------


EXTRA = {
    "job": {"name": "frame-001", "namespace": "ns", "uid": "u-1", "attempt": 1},
    "app": {"name": "opensees", "version": "3.5.0", "image": "img:1", "specHash": "abc"},
    "parameters": {"steps": 500, "solver": "direct"},
    "outcome": "Succeeded",
}


def _workspace(pod: Pod, tmp_path: Path) -> dict[str, bytes]:
    """A finished attempt's workspace; returns what should be archived under outputs/."""
    work = pod.work
    files = {
        "results/summary.csv": b"step,disp\n1,0.1\n",
        "results/deep/nested/data.bin": os.urandom(50_000),
        "results/big.bin": os.urandom(70 * 1024 * 1024),  # multipart (over 64 MiB)
        "run.out": b"converged\n",
        "manifest.json": b'{"the app\'s own": "manifest"}',
        "results/tmp/scratch.dat": b"excluded",
        "notes.txt": b"not included",
        "results/skip.partial": b"excluded by glob",
    }
    for rel, data in files.items():
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).write_bytes(data)
    (tmp_path / "host-secret").write_bytes(b"secret")
    os.symlink(str(tmp_path / "host-secret"), work / "results" / "stolen")
    os.symlink("../../run.out", work / "results" / "deep" / "link-to-run.out")
    os.symlink("/proc/self/environ", work / "results" / "env")
    (pod.logs / "app.log").write_bytes(b"step 1\nstep 2\ndone\n")
    # Staging records, as stage-in leaves them.
    assert pod.stage("note", {"inline": "hello"}).code == 0
    expected = {
        k: v
        for k, v in files.items()
        if k not in ("results/tmp/scratch.dat", "notes.txt", "results/skip.partial")
    }
    expected["results/deep/link-to-run.out"] = files["run.out"]
    return expected


def _plan(bucket: str, prefix: str) -> dict[str, Any]:
    return {
        "destination": f"s3://{bucket}/{prefix}",
        "include": ["results/**", "*.out", "manifest.json"],
        "exclude": ["results/tmp/**", "**/*.partial"],
        "extra": EXTRA,
    }


def _listing(store: S3Client, bucket: str, prefix: str) -> dict[str, int]:
    return {o.key[len(prefix) :]: o.size for o in store.list_objects(bucket, prefix)}


def test_archive_workspace(pod: Pod, store: S3Client, bucket: str, tmp_path: Path) -> None:
    expected = _workspace(pod, tmp_path)
    prefix = f"ns/frame-001/{uuid.uuid4().hex}/attempt-1/"
    res = pod.archive(_plan(bucket, prefix))
    assert res.code == 0, res.stderr
    log = (pod.logs / "app.log").read_bytes()
    total = sum(len(v) for v in expected.values()) + len(log)
    summary = res.json()
    assert summary == {
        "uri": f"s3://{bucket}/{prefix}",
        "files": len(expected) + 1,
        "bytes": total,
        "manifest": f"s3://{bucket}/{prefix}manifest.json",
    }
    assert len(res.message.encode()) < 4096

    listing = _listing(store, bucket, prefix)
    assert set(listing) == {f"outputs/{p}" for p in expected} | {"logs/app.log", "manifest.json"}

    manifest = json.loads(store.get_bytes(bucket, prefix + "manifest.json"))
    assert manifest["destination"] == f"s3://{bucket}/{prefix}"
    assert manifest["tool"] == {"name": "ferry.stager", "version": "0.1.0"}
    for key in ("job", "app", "parameters", "outcome"):
        assert manifest[key] == EXTRA[key]
    assert [f["path"] for f in manifest["files"]] == sorted(expected)
    for entry in manifest["files"]:
        data = expected[entry["path"]]
        assert entry["key"] == "outputs/" + entry["path"]
        assert entry["bytes"] == len(data)
        assert entry["sha256"] == sha(data)
        # What is in the bucket is what the manifest says.
        assert sha(store.get_bytes(bucket, prefix + entry["key"])) == entry["sha256"]
    assert manifest["log"] == {
        "path": "logs/app.log",
        "key": "logs/app.log",
        "bytes": len(log),
        "sha256": sha(log),
    }
    assert store.get_bytes(bucket, prefix + "logs/app.log") == log
    assert manifest["skipped"] == [
        {"path": "results/env", "reason": "symlink points outside the workspace"},
        {"path": "results/stolen", "reason": "symlink points outside the workspace"},
    ]
    assert manifest["inputs"] == [pod.record("note")]
    assert manifest["inputs"][0]["files"][0]["sha256"] == sha(b"hello")
    assert manifest["totals"] == {"files": len(expected) + 1, "bytes": total}


def test_the_app_cannot_forge_its_inputs_provenance(
    pod: Pod, store: S3Client, bucket: str, tmp_path: Path
) -> None:
    """The app's container mounts logs/ (its launcher writes logs/app.log there) but not
    records/: a staging record it writes under logs/ is not what the manifest reports."""
    _workspace(pod, tmp_path)
    forged = {"name": "note", "kind": "inline", "files": [{"path": "note", "sha256": "0" * 64}]}
    (pod.logs / "inputs").mkdir(exist_ok=True)
    (pod.logs / "inputs" / "note.json").write_text(json.dumps(forged))
    (pod.logs / "inputs" / "extra.json").write_text(json.dumps({**forged, "name": "extra"}))
    prefix = f"ns/frame-001/{uuid.uuid4().hex}/attempt-1/"
    res = pod.archive(_plan(bucket, prefix))
    assert res.code == 0, res.stderr
    manifest = json.loads(store.get_bytes(bucket, prefix + "manifest.json"))
    assert manifest["inputs"] == [pod.record("note")]
    assert manifest["inputs"][0]["files"][0]["sha256"] == sha(b"hello")


def test_rearchive_is_idempotent(pod: Pod, store: S3Client, bucket: str, tmp_path: Path) -> None:
    _workspace(pod, tmp_path)
    prefix = f"ns/frame-001/{uuid.uuid4().hex}/attempt-2/"
    first = pod.archive(_plan(bucket, prefix))
    assert first.code == 0, first.stderr
    listing1 = _listing(store, bucket, prefix)
    manifest1 = json.loads(store.get_bytes(bucket, prefix + "manifest.json"))
    second = pod.archive(_plan(bucket, prefix))
    assert second.code == 0, second.stderr
    assert second.json() == first.json()
    assert _listing(store, bucket, prefix) == listing1
    manifest2 = json.loads(store.get_bytes(bucket, prefix + "manifest.json"))
    assert manifest1.pop("createdAt") != manifest2.pop("createdAt")
    assert manifest1 == manifest2


def test_archive_without_outputs_or_log(pod: Pod, store: S3Client, bucket: str) -> None:
    pod.work.mkdir(parents=True)
    prefix = f"empty/{uuid.uuid4().hex}/attempt-1/"
    res = pod.archive({"destination": f"s3://{bucket}/{prefix}", "include": ["**"]})
    assert res.code == 0, res.stderr
    assert res.json()["files"] == 0
    manifest = json.loads(store.get_bytes(bucket, prefix + "manifest.json"))
    assert (manifest["files"], manifest["log"]) == ([], None)


def test_archive_to_missing_bucket(pod: Pod) -> None:
    pod.work.mkdir(parents=True)
    (pod.work / "a.out").write_text("a")
    res = pod.archive({"destination": "s3://no-such-bucket-here/p/", "include": ["**"]})
    assert res.code == 1
    assert res.message.startswith(
        "archive: s3://no-such-bucket-here/p/outputs/a.out not found: the bucket does not exist"
    )
    assert "Traceback" not in res.stderr


def test_archive_with_bad_credentials(pod: Pod, bucket: str) -> None:
    pod.work.mkdir(parents=True)
    (pod.work / "a.out").write_text("a")
    res = pod.archive(
        {"destination": f"s3://{bucket}/p/", "include": ["**"]}, FERRY_S3_ACCESS_KEY="nobody"
    )
    assert res.code == 1
    assert res.message.startswith(f"archive: s3://{bucket}/p/outputs/a.out: access denied")


# -- archive: the store goes down -----------------------------------------------------------


@pytest.fixture
def own_minio(tmp_path: Path) -> Iterator[MinioServer]:
    server = MinioServer(tmp_path / "minio-data")
    server.start()
    yield server
    server.stop()


def _many_files(work: Path, count: int, size: int) -> dict[str, bytes]:
    files = {}
    for i in range(count):
        rel = f"out/{i // 100:02d}/f{i:05d}.dat"
        data = os.urandom(size)
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).write_bytes(data)
        files[rel] = data
    return files


def test_archive_survives_store_restart(pod: Pod, own_minio: MinioServer) -> None:
    client = S3Client(own_minio.endpoint, own_minio.access_key, own_minio.secret_key)
    client.make_bucket("results")
    files = _many_files(pod.work, 1500, 32 * 1024)
    env = {
        **_base_env(pod.root, own_minio.endpoint, own_minio.access_key, own_minio.secret_key),
        "FERRY_TERMINATION_LOG": str(pod.root / "termination"),
        "FERRY_ARCHIVE": json.dumps({"destination": "s3://results/run/", "include": ["**"]}),
        "FERRY_ARCHIVE_PARALLEL": "2",
        "FERRY_ARCHIVE_RETRIES": "6",  # 0.5+1+2+4+8+16 s: longer than a restart takes
        "FERRY_RETRY_BACKOFF_SECONDS": "0.5",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "ferry.stager", "archive"],
        env=env,
        cwd=str(ROOT),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Wait until the archive is well under way, then pull the plug.
        deadline = time.monotonic() + 60
        uploaded = 0
        while time.monotonic() < deadline:
            uploaded = len(client.list_objects("results", "run/"))
            if uploaded >= 100:
                break
            time.sleep(0.05)
        assert 100 <= uploaded < len(files), f"{uploaded} uploaded before the kill"
        own_minio.kill()
        time.sleep(2)
        assert proc.poll() is None, "the archive gave up while the store was down"
        own_minio.start()
        _, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    summary = json.loads((pod.root / "termination").read_text())
    assert summary["files"] == len(files)
    manifest = json.loads(client.get_bytes("results", "run/manifest.json"))
    assert {f["path"] for f in manifest["files"]} == set(files)
    listing = _listing(client, "results", "run/")
    assert set(listing) == {f"outputs/{p}" for p in files} | {"manifest.json"}
    for entry in manifest["files"]:
        assert entry["sha256"] == sha(files[entry["path"]])
        assert sha(client.get_bytes("results", "run/" + entry["key"])) == entry["sha256"]


def test_archive_gives_up_when_store_stays_down(pod: Pod, own_minio: MinioServer) -> None:
    client = S3Client(own_minio.endpoint, own_minio.access_key, own_minio.secret_key)
    client.make_bucket("results")
    _many_files(pod.work, 20, 1024)
    own_minio.kill()
    started = time.monotonic()
    env = _base_env(pod.root, own_minio.endpoint, own_minio.access_key, own_minio.secret_key)
    pod.env = env
    res = pod.archive(
        {"destination": "s3://results/run/", "include": ["**"]},
        FERRY_ARCHIVE_RETRIES="2",
        FERRY_RETRY_BACKOFF_SECONDS="0.2",
    )
    assert time.monotonic() - started < 30
    assert res.code == 75  # an outage: the operator tries again later, the workspace kept
    assert res.message.startswith("archive: s3://results/run/outputs/out/00/f000")
    assert res.message.endswith(
        f"cannot reach {own_minio.endpoint}: connection refused (gave up after 3 tries)"
    )
    assert "Traceback" not in res.stderr
