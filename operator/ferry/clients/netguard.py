"""Connections that vet the address they connect to: the urllib3 pool manager of the S3 client.

Owns: resolving a connection's host once, asking a guard about every resolved address before
any socket connects, connecting to exactly a vetted address (a second resolution, as in DNS
rebinding, is never made), and asking the guard again about the connected socket's peer. Every
connection the client opens goes through it: the first, a reconnect, and one to another host.
Must not: decide which addresses are allowed (the caller's guard does) or retry.
"""

from __future__ import annotations

import ipaddress
import socket
import sys
from collections.abc import Callable
from typing import Any

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util import connection as util_connection

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: (scheme, host, port, address) → why the connection is refused, or None when it may be made.
#: Asked with address None before the host is resolved (for refusals by name), then about
#: every resolved address, then about the connected socket's peer.
Guard = Callable[[str, str, int, IPAddress | None], str | None]


class AddressRefusedError(Exception):
    """A connection was refused by the guard; str() is the guard's sentence. Not an OSError,
    so that urllib3 neither retries nor wraps it."""


def _address(sockaddr: Any) -> IPAddress:
    return ipaddress.ip_address(str(sockaddr[0]).split("%")[0])


def _guarded_conn(conn: HTTPConnection, scheme: str, guard: Guard) -> socket.socket:
    host = conn._dns_host  # what urllib3 itself resolves: no brackets, no trailing dot
    port = int(conn.port or (443 if scheme == "https" else 80))
    why = guard(scheme, host, port, None)
    if why is not None:
        raise AddressRefusedError(why)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise NameResolutionError(conn.host, conn, exc) from exc
    addresses: list[IPAddress] = []
    for info in infos:
        ip = _address(info[4])
        why = guard(scheme, host, port, ip)
        if why is not None:
            raise AddressRefusedError(why)
        if ip not in addresses:
            addresses.append(ip)
    if not addresses:
        raise NewConnectionError(conn, f"Failed to establish a new connection: {host} has none")
    last: OSError | None = None
    for ip in addresses:
        try:
            sock = util_connection.create_connection(
                (ip.compressed, port),
                conn.timeout,
                source_address=conn.source_address,
                socket_options=conn.socket_options,
            )
        except TimeoutError as exc:
            raise ConnectTimeoutError(
                conn, f"Connection to {conn.host} timed out. (connect timeout={conn.timeout})"
            ) from exc
        except OSError as exc:
            last = exc
            continue
        peer = _address(sock.getpeername())
        why = guard(scheme, host, port, peer)
        if why is not None:
            sock.close()
            raise AddressRefusedError(why)
        sys.audit("http.client.connect", conn, conn.host, conn.port)
        return sock
    raise NewConnectionError(conn, f"Failed to establish a new connection: {last}")


def guarded_pool_manager(guard: Guard, **kwargs: Any) -> urllib3.PoolManager:
    """A PoolManager (kwargs as urllib3's) whose every connection is vetted by `guard`."""

    class GuardedHTTPConnection(HTTPConnection):
        def _new_conn(self) -> socket.socket:
            return _guarded_conn(self, "http", guard)

    class GuardedHTTPSConnection(HTTPSConnection):
        def _new_conn(self) -> socket.socket:
            return _guarded_conn(self, "https", guard)

    class GuardedHTTPConnectionPool(HTTPConnectionPool):
        ConnectionCls = GuardedHTTPConnection

    class GuardedHTTPSConnectionPool(HTTPSConnectionPool):
        ConnectionCls = GuardedHTTPSConnection

    manager = urllib3.PoolManager(**kwargs)
    manager.pool_classes_by_scheme = {
        "http": GuardedHTTPConnectionPool,
        "https": GuardedHTTPSConnectionPool,
    }
    return manager
