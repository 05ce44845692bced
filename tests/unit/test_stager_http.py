"""SSRF guard of HTTP inputs: which addresses and URLs are refused, before any connection."""

from __future__ import annotations

import ipaddress

import pytest

from ferry.stager.http import FetchError, classify, display, vet

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("169.254.169.254", "link-local/metadata"),
        ("169.254.170.2", "link-local/metadata"),
        ("169.254.1.1", "link-local"),
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("fe80::1", "link-local"),
        ("fd00:ec2::254", "cloud-metadata"),
        ("100.100.100.200", "cloud-metadata"),
        ("0.0.0.0", "unspecified"),  # noqa: S104 - an address under test, not a bind
        ("0.1.2.3", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("255.255.255.255", "broadcast"),
        # IPv4 inside IPv6 is unwrapped
        ("::ffff:169.254.169.254", "link-local/metadata"),
        ("::ffff:127.0.0.1", "loopback"),
        ("64:ff9b::a9fe:a9fe", "link-local/metadata"),
        ("2002:7f00:1::", "loopback"),
        # allowed: private and public addresses
        ("10.0.0.1", None),
        ("172.16.5.4", None),
        ("192.168.1.1", None),
        ("8.8.8.8", None),
        ("2001:4860:4860::8888", None),
        ("100.64.0.1", None),
        ("fd12:3456::1", None),
    ],
)
def test_address_classification(address: str, reason: str | None) -> None:
    assert classify(ipaddress.ip_address(address)) == reason


def test_allow_list_exempts_only_what_it_names() -> None:
    allow = [ipaddress.ip_network("127.0.0.1/32")]
    assert classify(ipaddress.ip_address("127.0.0.1"), allow) is None
    assert classify(ipaddress.ip_address("127.0.0.2"), allow) == "loopback"
    everything = [ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")]
    # Metadata addresses stay refused whatever the allow-list says.
    assert classify(ipaddress.ip_address("169.254.169.254"), everything) == "link-local/metadata"
    assert classify(ipaddress.ip_address("fd00:ec2::254"), everything) == "cloud-metadata"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "http://169.254.169.254/latest/meta-data/",
            "http://169.254.169.254/latest/meta-data/ resolves to 169.254.169.254, "
            "a link-local/metadata address; refused",
        ),
        ("http://127.0.0.1:8080/x", "resolves to 127.0.0.1, a loopback address; refused"),
        ("http://localhost/x", "a loopback address; refused"),
        ("http://[::1]/x", "resolves to ::1, a loopback address; refused"),
        ("http://[fe80::1]/x", "resolves to fe80::1, a link-local address; refused"),
        ("http://0.0.0.0/", "an unspecified address; refused"),
        ("http://metadata.google.internal/computeMetadata/v1/", "cloud-metadata host; refused"),
        ("http://METADATA.google.internal./", "cloud-metadata host; refused"),
        ("http://metadata/", "cloud-metadata host; refused"),
        ("ftp://example.org/x", "only http and https"),
        ("http://user:pw@example.org/x", "credentials in URLs are not supported"),
        ("http://example.org:99999/x", "not a valid URL"),
    ],
)
def test_vet_refuses(url: str, message: str) -> None:
    with pytest.raises(FetchError, match=None) as info:
        vet(url)
    assert message in str(info.value)
    assert "pw" not in str(info.value)


def test_vet_accepts_public_literal_without_resolving() -> None:
    target = vet("https://8.8.8.8:8443/a/b?sig=secret")
    assert target.addresses == ("8.8.8.8",)
    assert (target.host, target.port, target.request_path) == ("8.8.8.8", 8443, "/a/b?sig=secret")


def test_display_hides_query_and_credentials() -> None:
    assert display("https://u:p@example.org/f.bin?X-Amz-Signature=abc") == (
        "https://example.org/f.bin?…"
    )
    assert display("http://[::1]:81/") == "http://[::1]:81/"
