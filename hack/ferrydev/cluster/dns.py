"""The real-node cluster's DNS: CoreDNS (hack/coredns, trimmed) on the pod bridge's gateway.

Owns: the Corefile (zone cluster.local and the reverse zones, served by the kubernetes plugin
from Services and EndpointSlices, so that `<svc>.<ns>.svc.cluster.local` and a headless
Service's pod names `<hostname>.<svc>.<ns>.svc.cluster.local` resolve; cache; only errors
and denials logged; health and ready on loopback), its read-only ClusterRole bound to its own
user (`DNS_USER`, a token of `apiserver.write_credentials`) and kubeconfig, starting it and
waiting until it is ready and answers the `kubernetes` Service's name with its ClusterIP (and
refusing to start when a DNS server already answers on the gateway: a CoreDNS left running by
an earlier cluster would share the port), and `query_a`, a minimal standard-library DNS client
(A records over UDP) for those checks.

There is no forward plugin: pods on the local node reach nothing beyond the pod bridge, so a
name outside the cluster domain is refused at once rather than forwarded where it could not
be used. The kubelet points pods here (`kubelet`: clusterDNS, clusterDomain).

Must not: listen anywhere but the bridge's gateway (port 53) and loopback, or forward queries.
"""

from __future__ import annotations

import json
import secrets
import socket
import struct
import urllib.request

from ferrydev.cluster import apiserver
from ferrydev.cluster.runner import Runner
from ferrydev.cluster.state import CLUSTER_DNS, CLUSTER_DOMAIN, DNS_USER, ClusterError, binary
from ferrydev.processes import free_port

CLUSTER_ROLE = "ferry:cluster-dns"
# What CoreDNS's kubernetes plugin lists and watches (as kubeadm's system:coredns role).
RULES = [
    {"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"],
     "verbs": ["list", "watch"]},
    {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
     "verbs": ["list", "watch"]},
]  # fmt: skip


def corefile(kubeconfig: str, health_port: int, ready_port: int) -> str:
    zones = f"{CLUSTER_DOMAIN} in-addr.arpa ip6.arpa"
    return f"""\
{CLUSTER_DOMAIN}:53 in-addr.arpa:53 ip6.arpa:53 {{
    bind {CLUSTER_DNS}
    errors
    log . {{
        class denial error
    }}
    health 127.0.0.1:{health_port}
    ready 127.0.0.1:{ready_port}
    kubernetes {zones} {{
        kubeconfig {kubeconfig} ferry-local
        ttl 5
    }}
    cache 5
}}
"""


def start(c: Runner) -> None:
    """RBAC and kubeconfig of its own, then CoreDNS, ready when it resolves the `kubernetes`
    Service (after the controllers: the Service and the EndpointSlices exist by then)."""
    rbac = [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": CLUSTER_ROLE},
            "rules": RULES,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": CLUSTER_ROLE},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": CLUSTER_ROLE,
            },
            "subjects": [
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": DNS_USER}
            ],
        },
    ]
    items = {"apiVersion": "v1", "kind": "List", "items": rbac}
    c.kubectl("apply", "-f", "-", stdin=json.dumps(items))
    kubeconfig = c.root / "coredns.kubeconfig"
    apiserver.write_user_kubeconfig(c, kubeconfig, DNS_USER, c.state.dns_token)
    stale = answered_already(CLUSTER_DNS)
    if stale:
        # CoreDNS listens with SO_REUSEPORT: a second one would bind too, and each query would
        # go to either (the stale one answering SERVFAIL from an apiserver long gone).
        raise ClusterError(
            f"a DNS server already answers on {CLUSTER_DNS}:53 ({stale}), left by an earlier "
            "cluster: stop it (`pkill -f 'coredns -conf'`) and start again"
        )
    health, ready = free_port(), free_port()
    path = c.root / "Corefile"
    path.write_text(corefile(str(kubeconfig), health, ready))
    c.spawn("coredns", [binary("coredns"), "-conf", str(path)])
    code, body = c.api_get("/api/v1/namespaces/default/services/kubernetes")
    cluster_ip = json.loads(body)["spec"]["clusterIP"] if code == 200 else ""
    name = f"kubernetes.default.svc.{CLUSTER_DOMAIN}"

    def answers() -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{ready}/ready", timeout=2) as resp:
            if resp.status != 200:
                return False
        rcode, addrs = query_a(CLUSTER_DNS, name)
        return rcode == 0 and (not cluster_ip or cluster_ip in addrs)

    c.wait("coredns", answers, timeout=60)


def answered_already(server: str, port: int = 53) -> str:
    """What answers DNS on `server`:`port` before this cluster's CoreDNS starts (its rcode),
    or "" when nothing does."""
    try:
        rcode, _ = query_a(server, f"kubernetes.default.svc.{CLUSTER_DOMAIN}", 0.5, port)
    except OSError:
        return ""
    return f"rcode {rcode}"


def _encode_name(name: str) -> bytes:
    out = b""
    for label in name.rstrip(".").split("."):
        raw = label.encode("ascii")
        out += bytes([len(raw)]) + raw
    return out + b"\0"


def _skip_name(data: bytes, offset: int) -> int:
    """The offset after a (possibly compressed) name at `offset`."""
    while True:
        length = data[offset]
        if length == 0:
            return offset + 1
        if length & 0xC0 == 0xC0:  # a pointer ends the name
            return offset + 2
        offset += 1 + length


def query_a(server: str, name: str, timeout: float = 2.0, port: int = 53) -> tuple[int, list[str]]:
    """Ask `server` (UDP) for `name`'s A records: (rcode, addresses); rcode 0 is
    NOERROR, 3 NXDOMAIN, 5 REFUSED. OSError (socket.timeout among them) if it does not answer."""
    qid = secrets.randbelow(1 << 16)
    question = _encode_name(name) + struct.pack(">HH", 1, 1)  # type A, class IN
    packet = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + question  # recursion desired
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(packet, (server, port))
        while True:
            data = sock.recv(4096)
            if len(data) >= 12 and struct.unpack(">H", data[:2])[0] == qid:
                break
    rcode = data[3] & 0x0F
    qdcount, ancount = struct.unpack(">HH", data[4:8])
    offset = 12
    for _ in range(qdcount):
        offset = _skip_name(data, offset) + 4
    addrs = []
    for _ in range(ancount):
        offset = _skip_name(data, offset)
        rtype, _cls, _ttl, rdlength = struct.unpack(">HHIH", data[offset : offset + 10])
        offset += 10
        if rtype == 1 and rdlength == 4:
            addrs.append(socket.inet_ntoa(data[offset : offset + 4]))
        offset += rdlength
    return rcode, addrs
