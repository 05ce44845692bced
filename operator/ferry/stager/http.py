"""Safe HTTP(S) download of an input: no SSRF into the node, the cluster's metadata, or loopback.

Owns: the fetch loop (at most
MAX_REDIRECTS redirects, every hop's resolved addresses checked), the pinned connections (the
socket goes to the address that was checked, so DNS cannot change between check and connect;
TLS still verifies and sends SNI for the URL's hostname), streaming to disk with a size limit and
SHA-256 verification, and one-line error messages that never show a URL's query string or user
info, each saying whether it is an outage (`FetchError.unavailable`) or a refusal. Which
addresses are refused is addresses.py's (`classify`, the same policy as S3 endpoints). Proxies
from the environment are not used.

FERRY_HTTP_ALLOW_CIDRS exempts addresses from these checks (never the metadata ones). It exists
only so tests can serve inputs from 127.0.0.x; a deployment must not set it.
"""

from __future__ import annotations

import http.client
import ipaddress
import os
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import SplitResult, urljoin, urlsplit

from ferry import __version__
from ferry.clients.hashcopy import copy_hashed, declared_length
from ferry.clients.s3 import Digest
from ferry.stager.addresses import METADATA_NAMES, IPAddress, classify
from ferry.stager.settings import HttpLimits, IPNetwork

MAX_REDIRECTS = 5
REDIRECTS = frozenset({301, 302, 303, 307, 308})


#: Answers that mean "the server cannot answer now", not "no": tried again later.
UNAVAILABLE_STATUSES = frozenset({408, 429})


class FetchError(Exception):
    """The download failed or was refused; the message is one line, without the input name.
    `unavailable`: the server could not be reached, timed out, broke off, answered 5xx (or
    408/429) or its name could not be resolved for now: an outage, worth trying again later.
    Refusals (an address, a scheme, a 404, a wrong checksum, too large) are not."""

    def __init__(self, message: str, *, unavailable: bool = False) -> None:
        super().__init__(message)
        self.unavailable = unavailable


def display(url: str) -> str:
    """The URL as it may appear in messages and records: no user info, no query, bounded."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<invalid URL>"
    text = f"{parts.scheme}://{host}{port}{parts.path or '/'}"
    if parts.query:
        text += "?…"
    return text if len(text) <= 200 else text[:199] + "…"


@dataclass(frozen=True)
class Target:
    """One hop, vetted: where to connect and what to ask for."""

    url: str
    scheme: str
    host: str  # as sent in Host and SNI (IDNA, no brackets)
    port: int
    request_path: str
    addresses: tuple[str, ...]


def _split(url: str) -> SplitResult:
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises on a bad port
    except ValueError as exc:
        raise FetchError(f"{display(url)} is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise FetchError(f"{display(url)}: only http and https URLs are allowed")
    if not parts.hostname:
        raise FetchError(f"{display(url)} has no host")
    if parts.username is not None or parts.password is not None:
        raise FetchError(f"{display(url)}: credentials in URLs are not supported")
    return parts


def vet(url: str, allow: Sequence[IPNetwork] = ()) -> Target:
    """Parse, resolve and check one hop; FetchError when it may not be fetched."""
    parts = _split(url)
    raw_host = (parts.hostname or "").rstrip(".").lower()
    try:
        host = raw_host.encode("idna").decode("ascii") if not raw_host.isascii() else raw_host
    except UnicodeError:
        raise FetchError(f"{display(url)}: invalid host name") from None
    if host in METADATA_NAMES or host.endswith(".metadata.google.internal"):
        raise FetchError(f"{display(url)} names a cloud-metadata host; refused")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        resolved: list[IPAddress] = [literal]
    else:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            # EAI_AGAIN: the resolver cannot answer now (a DNS outage); a name that does not
            # exist is the URL's fault.
            again = isinstance(exc, socket.gaierror) and exc.errno == socket.EAI_AGAIN
            raise FetchError(
                f"{display(url)}: cannot resolve host {host!r} ({exc})", unavailable=again
            ) from None
        resolved = []
        for info in infos:
            ip = ipaddress.ip_address(str(info[4][0]).split("%")[0])
            if ip not in resolved:
                resolved.append(ip)
    if not resolved:
        raise FetchError(f"{display(url)}: host {host!r} has no address")
    for ip in resolved:
        why = classify(ip, allow)
        if why is not None:
            article = "an" if why[0] in "aeiou" else "a"
            raise FetchError(f"{display(url)} resolves to {ip}, {article} {why} address; refused")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(
        url=url,
        scheme=parts.scheme,
        host=host,
        port=port,
        request_path=path,
        addresses=tuple(str(ip) for ip in resolved),
    )


def _connect(address: str, port: int, connect_timeout: float, read_timeout: float) -> socket.socket:
    sock = socket.create_connection((address, port), timeout=connect_timeout)
    sock.settimeout(read_timeout)
    return sock


class PinnedHTTPConnection(http.client.HTTPConnection):
    """Plain HTTP to `host`, whose socket goes to the vetted `address` only."""

    def __init__(
        self, host: str, port: int, address: str, connect_timeout: float, read_timeout: float
    ) -> None:
        super().__init__(host, port, timeout=connect_timeout)
        self.address = address
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout

    def connect(self) -> None:
        self.sock = _connect(self.address, self.port, self.connect_timeout, self.read_timeout)


class PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to `host` over a socket to the vetted `address`; the certificate is verified, and
    SNI sent, for `host` (the URL's name), not the address."""

    def __init__(
        self,
        host: str,
        port: int,
        address: str,
        connect_timeout: float,
        read_timeout: float,
        context: ssl.SSLContext,
    ) -> None:
        super().__init__(host, port, timeout=connect_timeout, context=context)
        self.address = address
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.tls = context

    def connect(self) -> None:
        sock = _connect(self.address, self.port, self.connect_timeout, self.read_timeout)
        try:
            self.sock = self.tls.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise


def _tls_context() -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=os.environ.get("SSL_CERT_FILE") or None)
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def _open(
    target: Target, limits: HttpLimits
) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    last: BaseException | None = None
    for address in target.addresses:
        conn: http.client.HTTPConnection
        if target.scheme == "https":
            conn = PinnedHTTPSConnection(
                target.host,
                target.port,
                address,
                limits.connect_timeout,
                limits.read_timeout,
                _tls_context(),
            )
        else:
            conn = PinnedHTTPConnection(
                target.host, target.port, address, limits.connect_timeout, limits.read_timeout
            )
        try:
            conn.request(
                "GET",
                target.request_path,
                headers={
                    "User-Agent": f"ferry-stager/{__version__}",
                    "Accept-Encoding": "identity",
                    "Connection": "close",
                },
            )
            return conn, conn.getresponse()
        except ssl.SSLCertVerificationError as exc:
            conn.close()
            raise FetchError(
                f"{display(target.url)}: TLS certificate not valid for {target.host} "
                f"({exc.verify_message})"
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            last = exc
    raise FetchError(f"{display(target.url)}: cannot connect ({_reason(last)})", unavailable=True)


def _reason(exc: BaseException | None) -> str:
    if exc is None:
        return "no address"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def _save(
    response: http.client.HTTPResponse, target: Target, dest: Path, limits: HttpLimits
) -> Digest:
    length = declared_length(response.getheader("Content-Length"))
    if length is not None and length > limits.max_bytes:
        raise FetchError(
            f"{display(target.url)} is {_human(length)}, over the "
            f"{_human(limits.max_bytes)} limit (FERRY_HTTP_MAX_BYTES)"
        )
    read = [0]

    def within_limit(count: int) -> None:
        read[0] = count
        if count > limits.max_bytes:
            raise FetchError(
                f"{display(target.url)} is larger than the "
                f"{_human(limits.max_bytes)} limit (FERRY_HTTP_MAX_BYTES)"
            )

    try:
        with open(dest, "wb") as out:
            count, sha256 = copy_hashed(response, out, size_hint=length, check=within_limit)
    except (OSError, http.client.HTTPException) as exc:
        if isinstance(exc, OSError) and exc.filename:
            raise FetchError(f"cannot write {exc.filename}: {exc.strerror}") from None
        raise FetchError(
            f"{display(target.url)}: download interrupted after {read[0]} bytes ({_reason(exc)})",
            unavailable=True,
        ) from None
    if length is not None and count != length:
        # http.client ends a body the server cut short without a word: the declared length
        # is what tells it from a whole one (there may be no checksum to catch it).
        raise FetchError(
            f"{display(target.url)}: download interrupted after {count} of {length} bytes "
            "(the connection ended)",
            unavailable=True,
        )
    return Digest(count, sha256)


def fetch(url: str, dest: Path, limits: HttpLimits, sha256: str | None = None) -> Digest:
    """Download `url` into `dest`, following at most MAX_REDIRECTS redirects, each hop vetted
    before connecting. Raises FetchError (and leaves no `dest`) on any failure."""
    current = url
    try:
        for hop in range(MAX_REDIRECTS + 1):
            try:
                target = vet(current, limits.allow)
            except FetchError as exc:
                if hop == 0:
                    raise
                raise FetchError(f"{exc} (redirected from {display(url)})") from None
            conn, response = _open(target, limits)
            try:
                if response.status in REDIRECTS:
                    location = response.getheader("Location")
                    if not location:
                        raise FetchError(
                            f"{display(current)}: HTTP {response.status} without a Location"
                        )
                    if hop == MAX_REDIRECTS:
                        raise FetchError(
                            f"{display(url)}: more than {MAX_REDIRECTS} redirects; refused"
                        )
                    current = urljoin(current, location.strip())
                    continue
                if response.status != 200:
                    status = response.status
                    raise FetchError(
                        f"{display(current)}: HTTP {status} {response.reason}".rstrip(),
                        unavailable=status >= 500 or status in UNAVAILABLE_STATUSES,
                    )
                got = _save(response, target, dest, limits)
            finally:
                response.close()
                conn.close()
            if sha256 is not None and got.sha256 != sha256.lower():
                raise FetchError(
                    f"sha256 mismatch for {display(url)}: expected {sha256.lower()}, "
                    f"got {got.sha256} ({got.bytes} bytes)"
                )
            return got
        raise FetchError(f"{display(url)}: more than {MAX_REDIRECTS} redirects; refused")
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
