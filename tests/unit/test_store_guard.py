"""S3 endpoints get the address policy of HTTP inputs, at connect time, on every connection.

The stager's S3 client vets the address each socket is about to connect to (loopback,
link-local, metadata, ... are refused, whatever spelling the endpoint uses); endpoints on the
operator's allow-list of trusted stores (FERRY_ALLOWED_STORE_ENDPOINTS, which holds the default
store) may use loopback and link-local addresses but never a metadata one, and only they get
credentials. The local servers here count every connection they accept, so "refused" means no
connection was made at all.
"""

from __future__ import annotations

import http.server
import ipaddress
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ferry.api.job import JobInput
from ferry.stager import settings as settings_mod
from ferry.stager.errors import StagerError
from ferry.stager.inputs import stage

pytestmark = pytest.mark.unit


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self.server.requests.append((self.path, dict(self.headers)))
        location = self.server.redirects.get(self.path)
        self.send_response(302 if location else 404)
        if location:
            self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(http.server.ThreadingHTTPServer):
    """Counts every accepted connection (before any byte is read) and records requests."""

    daemon_threads = True

    def __init__(self, host: str) -> None:
        super().__init__((host, 0), _Handler)
        self.connections = 0
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.redirects: dict[str, str] = {}

    def verify_request(self, request: Any, client_address: Any) -> bool:
        self.connections += 1
        return True

    @property
    def port(self) -> int:
        return int(self.server_address[1])


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server("127.0.0.1")
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def pod_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> settings_mod.Settings:
    for key in list(__import__("os").environ):
        if key.startswith("FERRY_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("FERRY_INPUTS_DIR", str(tmp_path / "inputs"))
    monkeypatch.setenv("FERRY_LOGS_DIR", str(tmp_path / "logs"))
    monkeypatch.setenv("FERRY_S3_REGION", "us-east-1")
    monkeypatch.setenv("FERRY_S3_ACCESS_KEY", "AKIA-the-access-key")
    monkeypatch.setenv("FERRY_S3_SECRET_KEY", "the-secret-key-value")
    monkeypatch.setenv("FERRY_STAGE_RETRIES", "0")
    return settings_mod.load()


def _stage(endpoint: str, settings: settings_mod.Settings, monkeypatch: pytest.MonkeyPatch) -> str:
    """Stage an S3 input from `endpoint` (as the builder sets it); the stager's message."""
    monkeypatch.setenv("FERRY_S3_ENDPOINT", endpoint)
    item = JobInput.model_validate(
        {"name": "model", "source": {"s3": {"bucket": "models", "key": "k", "endpoint": endpoint}}}
    )
    with pytest.raises(StagerError) as caught:
        stage(item, settings)
    return str(caught.value)


# -------------------------------------------------------------------------- refused spellings


@pytest.mark.parametrize(
    ("endpoint", "address", "why"),
    [
        ("http://127.0.0.1:{port}", "127.0.0.1", "a loopback address"),
        ("http://localhost:{port}", "127.0.0.1", "a loopback address"),  # a name → loopback
        ("http://2130706433:{port}", "127.0.0.1", "a loopback address"),  # decimal IPv4
        ("http://0177.0.0.1:{port}", "127.0.0.1", "a loopback address"),  # octal IPv4
        ("http://0x7f.1:{port}", "127.0.0.1", "a loopback address"),  # hex, short form
        ("http://[::ffff:127.0.0.1]:{port}", "::ffff:127.0.0.1", "a loopback address"),
        ("http://[::1]:{port}", "::1", "a loopback address"),
        ("http://[fe80::1]:{port}", "fe80::1", "a link-local address"),
        ("http://169.254.169.254", "169.254.169.254", "a link-local/metadata address"),
        (
            "http://[::ffff:169.254.169.254]",
            "::ffff:169.254.169.254",
            "a link-local/metadata address",
        ),
        ("http://0.0.0.0:{port}", "0.0.0.0", "an unspecified address"),  # noqa: S104
    ],
)
def test_s3_endpoint_at_a_forbidden_address_is_refused_before_connecting(
    endpoint: str,
    address: str,
    why: str,
    server: _Server,
    pod_env: settings_mod.Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = endpoint.format(port=server.port)
    message = _stage(url, pod_env, monkeypatch)
    assert message.startswith(f"input 'model': s3://models/k: source.s3.endpoint {url}: ")
    assert f"connecting to {address} " in message
    assert f"{why}; refused" in message
    assert "gave up" not in message  # a refusal is final, not retried as an outage
    assert server.connections == 0
    assert "the-secret-key-value" not in message
    assert "AKIA-the-access-key" not in message


def test_allow_listed_store_may_be_on_loopback_and_gets_the_credentials(
    server: _Server, pod_env: settings_mod.Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"http://127.0.0.1:{server.port}"
    monkeypatch.setenv("FERRY_ALLOWED_STORE_ENDPOINTS", f"http://minio.example:9000, {url}")
    message = _stage(url, pod_env, monkeypatch)
    assert "refused" not in message
    assert "Response code: 404" in message  # the store answered
    assert server.connections >= 1
    (_, headers), *_ = server.requests
    assert "Credential=AKIA-the-access-key/" in headers["Authorization"]


def test_allow_list_matches_scheme_host_and_port(
    server: _Server, pod_env: settings_mod.Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"http://127.0.0.1:{server.port}"
    for other in (
        f"https://127.0.0.1:{server.port}",
        "http://127.0.0.1",
        f"http://[::1]:{server.port}",
    ):
        monkeypatch.setenv("FERRY_ALLOWED_STORE_ENDPOINTS", other)
        assert "a loopback address; refused" in _stage(url, pod_env, monkeypatch)
    assert server.connections == 0


def test_allow_list_never_opens_a_metadata_address(
    pod_env: settings_mod.Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = "http://169.254.169.254"
    monkeypatch.setenv("FERRY_ALLOWED_STORE_ENDPOINTS", url)
    assert "a link-local/metadata address; refused" in _stage(url, pod_env, monkeypatch)


def test_metadata_host_names_are_refused(
    pod_env: settings_mod.Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    message = _stage("http://metadata.google.internal", pod_env, monkeypatch)
    assert "metadata.google.internal is a cloud-metadata host; refused" in message


# -------------------------------------------------------------------------- credentials


def test_credentials_only_for_trusted_stores(
    pod_env: settings_mod.Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ferry.stager.store import client_from_env

    monkeypatch.setenv("FERRY_S3_ENDPOINT", "https://s3.attacker.example")
    assert client_from_env("source.s3.endpoint").anonymous
    monkeypatch.setenv(
        "FERRY_ALLOWED_STORE_ENDPOINTS",
        "http://minio.ferry-system.svc:9000,https://s3.attacker.example:443",
    )
    assert not client_from_env("source.s3.endpoint").anonymous


# -------------------------------------------------------------------------- every connection


def test_a_second_connection_to_another_host_is_vetted_too(server: _Server) -> None:
    from ferry.clients.netguard import AddressRefusedError, guarded_pool_manager
    from ferry.stager.addresses import StoreGuard

    store = f"http://127.0.0.1:{server.port}"
    manager = guarded_pool_manager(StoreGuard.build(store, "archive.s3.endpoint", [store]))
    assert manager.request("GET", f"{store}/a").status == 404
    with pytest.raises(AddressRefusedError, match=r"connecting to 127\.0\.0\.1 .*loopback"):
        manager.request("GET", f"http://localhost:{server.port}/b")
    assert [p for p, _ in server.requests] == ["/a"]


def test_a_redirect_to_a_forbidden_address_is_refused(server: _Server) -> None:
    from ferry.clients.netguard import AddressRefusedError, guarded_pool_manager
    from ferry.stager.addresses import StoreGuard

    store = f"http://127.0.0.1:{server.port}"
    server.redirects["/go"] = f"http://127.0.0.2:{server.port}/inside"
    manager = guarded_pool_manager(StoreGuard.build(store, "source.s3.endpoint", [store]))
    with pytest.raises(AddressRefusedError, match=r"connecting to 127\.0\.0\.2 .*loopback"):
        manager.request("GET", f"{store}/go", redirect=True)
    assert [p for p, _ in server.requests] == ["/go"]


def test_the_socket_goes_to_the_vetted_address_with_one_resolution(
    server: _Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: a name that answers 127.0.0.1 first and 127.0.0.9 next is resolved once,
    and the socket connects to the address the guard saw (and the guard sees its peer)."""
    from ferry.clients.netguard import guarded_pool_manager

    real = socket.getaddrinfo
    answers = iter(["127.0.0.1", "127.0.0.9", "127.0.0.9"])
    lookups: list[str] = []

    def fake(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "rebind.test":
            lookups.append(host)
            return real(next(answers), port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    seen: list[str] = []

    def guard(scheme: str, host: str, port: int, ip: Any) -> str | None:
        if ip is None:  # asked about the name first
            return None
        seen.append(str(ip))
        return None if ip == ipaddress.ip_address("127.0.0.1") else f"{ip} refused"

    manager = guarded_pool_manager(guard)
    assert manager.request("GET", f"http://rebind.test:{server.port}/x").status == 404
    assert lookups == ["rebind.test"]
    assert seen == ["127.0.0.1", "127.0.0.1"]  # the resolved address, then the socket's peer
    assert server.requests[0][1]["Host"] == f"rebind.test:{server.port}"
