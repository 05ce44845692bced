"""Which addresses Ferry's data containers may connect to: one policy for HTTP inputs and S3.

Owns: address classification (`classify`: loopback, link-local, unspecified, multicast,
broadcast and the cloud-metadata addresses and names below, also when embedded in an
IPv4-mapped / NAT64 / 6to4 IPv6 address), and `StoreGuard`, the check the S3 client runs on
every connection, on the very address its socket is about to connect to (see
ferry.clients.netguard). Endpoints on the operator's allow-list of trusted stores
(FERRY_ALLOWED_STORE_ENDPOINTS, which always holds the default store) may reach any address
but a metadata one; every other endpoint gets the same checks as an HTTP input. Must not: do
any I/O (the connection resolves and connects; this module only judges).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from ferry.api.endpoints import EndpointKey, endpoint_key
from ferry.stager.settings import IPNetwork

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, ...
        "169.254.170.2",  # AWS ECS task metadata
        "fd00:ec2::254",  # AWS IMDS over IPv6
        "100.100.100.200",  # Alibaba Cloud
    )
)
METADATA_NAMES = frozenset(
    {"metadata.google.internal", "metadata", "metadata.goog", "metadata.azure.internal"}
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")
_BROADCAST = ipaddress.ip_address("255.255.255.255")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if int(ip) >> 32 == 0 and int(ip) > 1:  # deprecated IPv4-compatible ::a.b.c.d
        return ipaddress.IPv4Address(int(ip))
    return None


def classify(ip: IPAddress, allow: Sequence[IPNetwork] = ()) -> str | None:
    """Why an input may not be fetched from `ip` ("loopback", "link-local/metadata", …), or
    None when it may. `allow` (tests only) exempts addresses, except metadata ones."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            ip = ipaddress.IPv6Address(ip.compressed.split("%")[0])
        inner = _embedded_ipv4(ip)
        if inner is not None:
            why = classify(inner, allow)
            if why is not None:
                return why
    if ip in METADATA_ADDRESSES:
        return "link-local/metadata" if ip.is_link_local else "cloud-metadata"
    if any(ip.version == net.version and ip in net for net in allow):
        return None
    if ip.is_unspecified or (isinstance(ip, ipaddress.IPv4Address) and ip in _THIS_NETWORK):
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if ip == _BROADCAST:
        return "broadcast"
    return None


_EVERYWHERE: tuple[IPNetwork, ...] = (
    ipaddress.ip_network("0.0.0.0/0"),
    ipaddress.ip_network("::/0"),
)


def is_metadata_name(host: str) -> bool:
    name = host.rstrip(".").lower()
    return name in METADATA_NAMES or name.endswith(".metadata.google.internal")


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


@dataclass(frozen=True)
class StoreGuard:
    """The address policy of one S3 client: `endpoint` as configured for `field` (named in
    refusals, e.g. "source.s3.endpoint"), `allowed` the trusted stores' endpoints."""

    endpoint: str
    field: str
    allowed: frozenset[EndpointKey]

    @classmethod
    def build(cls, endpoint: str, field: str, allowed: Sequence[str]) -> StoreGuard:
        keys: set[EndpointKey] = set()
        for entry in allowed:
            try:
                keys.add(endpoint_key(entry))
            except ValueError:
                continue  # the operator checks its settings; a bad entry allows nothing
        return cls(endpoint, field, frozenset(keys))

    @property
    def trusted(self) -> bool:
        """Whether the configured endpoint is a trusted store (it may receive credentials)."""
        try:
            return endpoint_key(self.endpoint) in self.allowed
        except ValueError:
            return False

    def __call__(self, scheme: str, host: str, port: int, ip: IPAddress | None) -> str | None:
        """Why this connection may not be made, as one sentence; None when it may. `ip` None:
        before resolving, only the name is judged."""
        where = f"{self.field} {self.endpoint}"
        name = host.strip("[]").rstrip(".").lower()
        if is_metadata_name(name):
            return f"{where}: {name} is a cloud-metadata host; refused"
        if ip is None:
            return None
        exempt = (scheme, name, port) in self.allowed
        why = classify(ip, _EVERYWHERE if exempt else ())
        if why is None:
            return None
        shown = show(ip)
        target = f"port {port}" if _same_address(name, ip) else f"{name}:{port}"
        text = f"{where}: connecting to {shown} ({target}), {_article(why)} {why} address; refused"
        if "metadata" in why or exempt:
            return text
        return text + " (not a trusted store: see FERRY_ALLOWED_STORE_ENDPOINTS)"


def show(ip: IPAddress) -> str:
    """The address as people write it: an IPv4-mapped IPv6 address keeps its dotted quad."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return f"::ffff:{ip.ipv4_mapped}"
    return ip.compressed


def _same_address(name: str, ip: IPAddress) -> bool:
    try:
        return ipaddress.ip_address(name) == ip
    except ValueError:
        return False
