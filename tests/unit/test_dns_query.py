"""`ferrydev.cluster.dns.query_a`, the cluster's DNS readiness check and the e2e tests' direct
question to CoreDNS: the answer read as a resolver reads it (question echoed, names compressed
by pointers, records of other types skipped), against a responder on loopback."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator

import pytest

from ferrydev.cluster.dns import _encode_name, answered_already, query_a

pytestmark = pytest.mark.unit


def _answer(query: bytes, rcode: int, records: list[tuple[int, bytes]]) -> bytes:
    """A response to `query`: its id and question, then each record named by a pointer to the
    question's name (offset 12), as CoreDNS writes them."""
    qid = query[:2]
    question = query[12:]
    head = qid + struct.pack(">HHHHH", 0x8180 | rcode, 1, len(records), 0, 0)
    body = b""
    for rtype, rdata in records:
        body += b"\xc0\x0c" + struct.pack(">HHIH", rtype, 1, 5, len(rdata)) + rdata
    return head + question + body


Reply = tuple[int, list[tuple[int, bytes]]]  # rcode, records (type, rdata)


@pytest.fixture
def responder() -> Iterator[tuple[int, list[Reply]]]:
    """A UDP responder on loopback answering one query; the test sets the reply in the list."""
    replies: list[Reply] = []
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)

    def serve() -> None:
        try:
            query, peer = sock.recvfrom(512)
        except OSError:
            return
        rcode, records = replies[0] if replies else (0, [])
        sock.sendto(_answer(query, rcode, records), peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    port: int = sock.getsockname()[1]
    yield port, replies
    thread.join(timeout=5)
    sock.close()


def test_a_records_are_read_and_other_records_skipped(responder: tuple[int, list[Reply]]) -> None:
    port, replies = responder
    cname = _encode_name("web.ns.svc.cluster.local")
    replies.append(
        (0, [(5, cname), (1, socket.inet_aton("10.88.0.12")), (1, socket.inet_aton("10.88.0.13"))])
    )
    assert query_a("127.0.0.1", "w.ns.svc.cluster.local", port=port) == (
        0,
        ["10.88.0.12", "10.88.0.13"],
    )


def test_a_refusal_is_its_rcode_with_no_addresses(responder: tuple[int, list[Reply]]) -> None:
    port, replies = responder
    replies.append((5, []))
    assert query_a("127.0.0.1", "example.org", port=port) == (5, [])


def test_a_server_already_answering_is_found(responder: tuple[int, list[Reply]]) -> None:
    port, replies = responder
    replies.append((2, []))  # SERVFAIL: a stale CoreDNS whose apiserver is gone
    assert answered_already("127.0.0.1", port) == "rcode 2"


def test_nothing_answering_is_nothing() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never answers
        assert answered_already("127.0.0.1", port) == ""
