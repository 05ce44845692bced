"""Ferry is no confused deputy, on the real node: a Job author cannot make Ferry's pods reach a
metadata or loopback address through an S3 endpoint, nor send a Secret's value anywhere.

The exfiltration test runs a small HTTP server of its own on the pod bridge's address (where
pods reach the host, as they reach MinIO) that records every request's headers: the Jobs point
their S3 input at it, and it must never see a credential.
"""

from __future__ import annotations

import http.server
import secrets
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from ferrydev.cluster import POD_GATEWAY
from tests.conftest import Kube
from tests.e2e.conftest import RealNodeOperator
from tests.e2e.test_ferry_e2e import apply_example, conditions, wait_state, walk_job

pytestmark = pytest.mark.e2e


class _Recorder(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__((POD_GATEWAY, 0), _Handler)
        self.seen: list[str] = []  # each request: its request line and headers, as sent

    @property
    def endpoint(self) -> str:
        return f"http://{POD_GATEWAY}:{self.server_address[1]}"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Recorder

    def _answer(self) -> None:
        self.server.seen.append(f"{self.requestline}\n{self.headers}")
        body = (
            b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code>'
            b"<Message>Access Denied.</Message></Error>"
        )
        self.send_response(403)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = _answer  # noqa: N815 - http.server's naming
    do_HEAD = _answer  # noqa: N815
    do_PUT = _answer  # noqa: N815
    do_POST = _answer  # noqa: N815

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[_Recorder]:
    server = _Recorder()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _failed(kube: Kube, ns: str, name: str, op: RealNodeOperator) -> dict[str, Any]:
    job = wait_state(kube, ns, name, {"Failed"}, op, timeout=240)
    assert job["status"]["reason"] == "StageInFailed", job["status"]
    assert conditions(job)["InputsStaged"] == "False"
    return job


@pytest.mark.parametrize(
    ("endpoint", "refusal"),
    [
        (
            "http://169.254.169.254",
            "connecting to 169.254.169.254 (port 80), a link-local/metadata address; refused",
        ),
        (
            "http://127.0.0.1:9000",
            "connecting to 127.0.0.1 (port 9000), a loopback address; refused",
        ),
    ],
    ids=["metadata", "loopback"],
)
def test_s3_input_endpoint_at_a_forbidden_address_fails_stage_in_naming_it(
    ferry_kube: Kube,
    ferry_namespace: str,
    real_operator: RealNodeOperator,
    endpoint: str,
    refusal: str,
) -> None:
    kube, ns = ferry_kube, ferry_namespace
    apply_example(kube, ns, "simulation", "app.yaml")
    source = {"s3": {"bucket": "ferry", "key": "any/config.txt", "endpoint": endpoint}}
    kube.apply(walk_job("walk-ssrf", source), "-n", ns)
    job = _failed(kube, ns, "walk-ssrf", real_operator)
    message = job["status"]["message"]
    assert f"source.s3.endpoint {endpoint}: {refusal}" in message, message
    assert "input 'config'" in message


def test_secret_ref_to_another_key_is_refused_at_admission(
    ferry_kube: Kube, ferry_namespace: str
) -> None:
    kube, ns = ferry_kube, ferry_namespace
    for field in ("accessKeyKey", "secretKeyKey"):
        source = {
            "s3": {
                "bucket": "ferry",
                "key": "k",
                "endpoint": "https://s3.example.org",
                "secretRef": {"name": "db", field: "password"},
            }
        }
        proc = kube.apply(walk_job("walk-key", source), "-n", ns, check=False)
        assert proc.returncode != 0
        assert f"spec.inputs[0].source.s3.secretRef.{field}: Unsupported value" in proc.stderr
        assert "password" in proc.stderr
    assert kube.run("get", "jobs.ferry.dev", "walk-key", "-n", ns, check=False).returncode != 0


def test_no_secret_value_reaches_an_endpoint_the_author_controls(
    ferry_kube: Kube,
    ferry_namespace: str,
    real_operator: RealNodeOperator,
    recorder: _Recorder,
) -> None:
    """A secretRef to an unrelated Secret (with the fixed key names), and the default store's
    Secret, with the endpoint of a server the author runs: the server is reached (anonymous
    requests) but sees neither Secret's values."""
    kube, ns = ferry_kube, ferry_namespace
    state = kube.state
    access, secret = f"AKIA{secrets.token_hex(8)}", secrets.token_hex(20)
    kube.run(
        "create", "secret", "generic", "someone-elses", "-n", ns,
        f"--from-literal=accessKey={access}", f"--from-literal=secretKey={secret}",
    )  # fmt: skip
    apply_example(kube, ns, "simulation", "app.yaml")
    named = {"bucket": "loot", "key": "k", "endpoint": recorder.endpoint}
    kube.apply(
        walk_job("walk-named", {"s3": {**named, "secretRef": {"name": "someone-elses"}}}), "-n", ns
    )
    kube.apply(walk_job("walk-default", {"s3": named}), "-n", ns)
    for name in ("walk-named", "walk-default"):
        job = _failed(kube, ns, name, real_operator)
        assert "access denied (AccessDenied" in job["status"]["message"]
    assert len(recorder.seen) >= 2, recorder.seen  # both Jobs' stagers reached the server
    everything = "\n".join(recorder.seen)
    for value in (access, secret, state.minio_access_key, state.minio_secret_key):
        assert value not in everything
    assert "authorization:" not in everything.lower()  # anonymous requests
