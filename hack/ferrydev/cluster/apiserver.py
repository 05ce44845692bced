"""kube-apiserver for the local cluster, its credentials and the kubeconfig that names it.

Owns: the service-account signing key, the admin token and the cluster DNS's token
(<cluster>/pki/tokens.csv), kubeconfigs for a user by token, starting
kube-apiserver (RBAC and Node authorization, token auth, service-account token signing; a
Metadata-level JSON audit log, <cluster>/audit.log, of every request a service account makes
(the operator run as its chart's ServiceAccount: tests/integration/test_rbac_used.py) and, with
`audit`, of every write; on a real-node cluster it listens on the pod bridge and reaches the
kubelet with a client certificate), writing <cluster>/kubeconfig and waiting for /readyz.

Must not: listen on anything but loopback or the pod bridge's gateway (never 0.0.0.0).
"""

from __future__ import annotations

import json
import secrets
import subprocess
from pathlib import Path

from ferrydev.cluster.runner import Runner
from ferrydev.cluster.state import DNS_USER, POD_GATEWAY, binary
from ferrydev.processes import free_port


def write_credentials(c: Runner) -> None:
    pki = c.root / "pki"
    pki.mkdir(parents=True, exist_ok=True)
    key = pki / "sa.key"
    if not key.exists():
        subprocess.run(
            ["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True
        )
        subprocess.run(
            ["openssl", "rsa", "-in", str(key), "-pubout", "-out", str(pki / "sa.pub")],
            check=True,
            capture_output=True,
        )
    c.state.token = secrets.token_hex(24)
    c.state.dns_token = secrets.token_hex(24)
    (pki / "tokens.csv").write_text(
        f'{c.state.token},ferry-admin,ferry-admin,"system:masters"\n'
        # The cluster DNS (`dns`): no group, only what its ClusterRole grants.
        f"{c.state.dns_token},{DNS_USER},{DNS_USER}\n"
    )


def write_kubeconfig(c: Runner) -> None:
    write_user_kubeconfig(c, c.state.kubeconfig, "ferry-admin", c.state.token)


def write_user_kubeconfig(c: Runner, path: Path, user: str, token: str) -> None:
    """A kubeconfig at `path` for `user` by its bearer token (context `ferry-local`)."""
    ca = c.root / "pki" / "serving" / "apiserver.crt"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "ferry-local",
                "cluster": {"server": c.state.server, "certificate-authority": str(ca)},
            }
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [
            {
                "name": "ferry-local",
                "context": {"cluster": "ferry-local", "user": user},
            }
        ],
        "current-context": "ferry-local",
    }
    path.write_text(json.dumps(config, indent=2))


def serving_flags(etcd_port: int, host: str, port: int, pki: Path) -> list[str]:
    """The flags every kube-apiserver of a local cluster serves with: its etcd, address, serving
    certificates, tokens, RBAC and service-account keys (the cluster's own and `expiry`'s spare)."""
    return [
        "--etcd-servers",
        f"http://127.0.0.1:{etcd_port}",
        "--bind-address",
        host,
        "--advertise-address",
        host,
        "--secure-port",
        str(port),
        "--cert-dir",
        str(pki / "serving"),
        "--token-auth-file",
        str(pki / "tokens.csv"),
        "--authorization-mode",
        "Node,RBAC",
        "--service-account-issuer",
        "https://kubernetes.default.svc.cluster.local",
        "--service-account-key-file",
        str(pki / "sa.pub"),
        "--service-account-signing-key-file",
        str(pki / "sa.key"),
        "--service-cluster-ip-range",
        "10.96.0.0/16",
        "--allow-privileged=true",
    ]


def start(c: Runner) -> None:
    port = free_port()
    c.state.apiserver_port = port
    # On a real-node cluster the pods must reach the apiserver, and without kube-proxy the
    # `kubernetes` Service IP does not route: listen on the pod bridge (made by
    # network.setup_bridge before this), never on 0.0.0.0. Host clients use that address too.
    host = POD_GATEWAY if c.real_node else "127.0.0.1"
    c.state.apiserver_host = host
    pki = c.root / "pki"
    argv = [
        binary("kube-apiserver"),
        *serving_flags(c.state.etcd_port, host, port, pki),
        "--max-requests-inflight",
        "800",
        "--max-mutating-requests-inflight",
        "400",
        "--profiling=false",
        "--v",
        "1",
    ]
    if c.real_node:
        # `kubectl logs/exec` go to the kubelet at its InternalIP (its hostname does not
        # resolve), with a client certificate that the kubelet's x509 authn accepts.
        argv += [
            "--kubelet-client-certificate",
            str(pki / "kubelet-client.crt"),
            "--kubelet-client-key",
            str(pki / "kubelet-client.key"),
            "--kubelet-preferred-address-types",
            "InternalIP,Hostname",
        ]
    # Every request of a service account (the local cluster's own components use the admin
    # token, so these are the operator's when it runs as its chart's ServiceAccount); with
    # `audit` (the benchmark) every write as well, batched.
    rules = "- level: Metadata\n  userGroups: [system:serviceaccounts]\n"
    rules += (
        "- level: None\n  verbs: [get, list, watch]\n- level: Metadata\n"
        if c.audit
        else "- level: None\n"
    )
    policy = c.root / "audit-policy.yaml"
    policy.write_text(
        f"apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n{rules}"
    )
    argv += [
        "--audit-policy-file",
        str(policy),
        "--audit-log-path",
        str(c.root / "audit.log"),
        "--audit-log-format",
        "json",
        "--audit-log-mode",
        "batch" if c.audit else "blocking",
        # The apiserver rotates at 100 MB unless told otherwise (a 0 here means that
        # too); one file keeps the benchmark's reading by offset simple and cheap.
        "--audit-log-maxsize",
        "100000",
    ]
    c.spawn("kube-apiserver", argv)
    c.wait("kube-apiserver", lambda: (pki / "serving" / "apiserver.crt").exists(), timeout=30)
    write_kubeconfig(c)
    c.wait("kube-apiserver", lambda: c.api_get("/readyz")[0] == 200, timeout=120)
