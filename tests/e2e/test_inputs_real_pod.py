"""Every input source staged in a real pod on the real node, through a real Job run by the
real operator: HTTP with sha256 (and a sha256 mismatch), a PersistentVolumeClaim filled by a
pod, several objects under an S3 prefix in MinIO, and inline text.

The App (`inputsums`, busybox) hashes every file under /ferry/inputs into
results/sums.txt, which Ferry archives; each test reads the archive back from MinIO and
checks that the app saw exactly the bytes the test put at the source, and that the
manifest's input record carries the same hashes. tests/integration/test_stager.py proves the
stager's logic as a host process; this file proves the pod wiring (init containers, volumes,
the PVC mount, credentials, the network path from the pod to the source).

HTTPS is not covered here: the staging containers take a CA bundle only from their
environment (SSL_CERT_FILE), which no operator or Job setting sets, so a self-signed test
server cannot be trusted from a pod. The server is plain HTTP on the pod bridge (POD_GATEWAY),
with the sha256 checked both ways (a match stages, a mismatch fails the Job).
"""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from ferrydev.cluster import POD_GATEWAY
from tests.conftest import Kube
from tests.e2e.conftest import DEFAULT_BUCKET, RealNodeOperator
from tests.e2e.test_ferry_e2e import store, verified_archive, wait_state

pytestmark = pytest.mark.e2e

BUSYBOX = "localhost/ferry/busybox:1.36"

#: The app: one line per input file, `<sha256>  ./<input>/<path>`, sorted by path.
SUMS_SCRIPT = (
    "set -eu; mkdir -p {{workdir}}/results; cd /ferry/inputs; "
    'find . -type f | sort | while read -r f; do sha256sum "$f"; done '
    "> {{workdir}}/results/sums.txt; cat {{workdir}}/results/sums.txt"
)

INPUT = "data"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def app() -> dict[str, Any]:
    return {
        "apiVersion": "ferry.dev/v1alpha1",
        "kind": "App",
        "metadata": {"name": "inputsums"},
        "spec": {
            "version": "1.0",
            "image": BUSYBOX,
            "command": ["sh", "-c"],
            "args": [SUMS_SCRIPT],
            "inputs": [{"name": INPUT, "required": True}],
            "outputs": {"include": ["results/**"]},
            "resources": {"cpu": "100m", "memory": "64Mi"},
            "maxRunSeconds": 300,
        },
    }


def job(name: str, source: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "ferry.dev/v1alpha1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "appRef": {"name": "inputsums"},
            "inputs": [{"name": INPUT, "source": source}],
            "retry": {"appFailures": 0, "infraFailures": 1},
        },
    }


def run_job(
    kube: Kube, ns: str, op: RealNodeOperator, name: str, source: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    """Run the App on `source`; the Job, its archive's manifest and what the app hashed
    (path below /ferry/inputs -> sha256)."""
    kube.apply(app(), "-n", ns)
    kube.apply(job(name, source), "-n", ns)
    finished = wait_state(kube, ns, name, {"Finished"}, op, timeout=240)
    manifest, content = verified_archive(kube, finished)
    seen: dict[str, str] = {}
    for line in content["results/sums.txt"].decode().splitlines():
        digest, path = line.split(maxsplit=1)
        seen[path.removeprefix("./")] = digest
    return finished, manifest, seen


def input_record(manifest: dict[str, Any]) -> str:
    (record,) = manifest["inputs"]
    assert record["name"] == INPUT
    return json.dumps(record)


# --------------------------------------------------------------------------- HTTP


class _Files(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}
    requests: list[str] = []

    def do_GET(self) -> None:
        self.requests.append(self.path)
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[tuple[str, dict[str, bytes], list[str]]]:
    """An HTTP server on the pod bridge's address (pods reach the host there); its base URL,
    the files it serves by path and the paths it was asked for."""
    files: dict[str, bytes] = {}
    requests: list[str] = []
    handler = type("Files", (_Files,), {"files": files, "requests": requests})
    server = http.server.ThreadingHTTPServer((POD_GATEWAY, 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{POD_GATEWAY}:{server.server_address[1]}", files, requests
    finally:
        server.shutdown()
        server.server_close()


def test_http_input_with_sha256_is_staged_in_a_real_pod(
    ferry_kube: Kube,
    ferry_namespace: str,
    real_operator: RealNodeOperator,
    http_server: tuple[str, dict[str, bytes], list[str]],
) -> None:
    base, files, requests = http_server
    body = b"model over http\n" + uuid.uuid4().bytes
    files["/models/frame.tcl"] = body
    source = {"http": {"url": f"{base}/models/frame.tcl", "sha256": sha(body)}}
    finished, manifest, seen = run_job(
        ferry_kube, ferry_namespace, real_operator, "in-http", source
    )
    assert seen == {INPUT: sha(body)}
    assert "/models/frame.tcl" in requests  # fetched from this server, by the pod
    assert sha(body) in input_record(manifest)
    assert {c["type"]: c["status"] for c in finished["status"]["conditions"]}[
        "InputsStaged"
    ] == "True"


def test_http_input_with_a_wrong_sha256_fails_staging(
    ferry_kube: Kube,
    ferry_namespace: str,
    real_operator: RealNodeOperator,
    http_server: tuple[str, dict[str, bytes], list[str]],
) -> None:
    base, files, requests = http_server
    files["/models/tampered.tcl"] = b"not what was promised\n"
    promised = sha(b"the model the author hashed\n")
    kube, ns = ferry_kube, ferry_namespace
    kube.apply(app(), "-n", ns)
    source = {"http": {"url": f"{base}/models/tampered.tcl", "sha256": promised}}
    kube.apply(job("in-http-bad", source), "-n", ns)
    failed = wait_state(kube, ns, "in-http-bad", {"Failed"}, real_operator, timeout=240)
    st = failed["status"]
    assert st["reason"] == "StageInFailed", st
    assert "sha256 mismatch" in st["message"], st["message"]
    assert promised in st["message"]
    assert "/models/tampered.tcl" in requests
    assert "Running" not in [h["state"] for h in st["history"]]  # the app never ran


# --------------------------------------------------------------------------- PVC


def writer_pod(name: str, claim: str, script: str) -> dict[str, Any]:
    """A restricted-PSS busybox pod that runs `script` with the claim mounted at /data."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 1000,
                "runAsGroup": 1000,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "write",
                    "image": BUSYBOX,
                    "imagePullPolicy": "Never",
                    "command": ["sh", "-c", script],
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                    },
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                }
            ],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}],
        },
    }


def test_pvc_input_written_by_a_pod_is_staged_in_a_real_pod(
    ferry_kube: Kube, ferry_namespace: str, real_operator: RealNodeOperator
) -> None:
    kube, ns = ferry_kube, ferry_namespace
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "shared"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "64Mi"}},
            },
        },
        "-n",
        ns,
    )
    token = uuid.uuid4().hex
    script = (
        "set -eu; mkdir -p /data/models/sub; "
        f"printf 'frame %s\\n' {token} > /data/models/frame.tcl; "
        f"printf 'nested %s\\n' {token} > /data/models/sub/loads.txt; "
        "echo outside > /data/other.txt"
    )
    kube.apply(writer_pod("fill", "shared", script), "-n", ns)
    kube.wait_for(
        lambda: (
            kube.get("pod", "fill", ns).get("status", {}).get("phase") in {"Succeeded", "Failed"}
        ),
        timeout=120,
        what="the writer pod to end",
    )
    assert kube.get("pod", "fill", ns)["status"]["phase"] == "Succeeded", kube.run(
        "logs", "fill", "-n", ns, check=False
    ).stdout
    source = {"pvc": {"claimName": "shared", "path": "models"}}
    _finished, manifest, seen = run_job(kube, ns, real_operator, "in-pvc", source)
    frame, loads = f"frame {token}\n".encode(), f"nested {token}\n".encode()
    assert seen == {f"{INPUT}/frame.tcl": sha(frame), f"{INPUT}/sub/loads.txt": sha(loads)}
    record = input_record(manifest)
    assert sha(frame) in record
    assert sha(loads) in record


# --------------------------------------------------------------------------- S3 prefix


def test_s3_prefix_input_is_staged_in_a_real_pod(
    ferry_kube: Kube, ferry_namespace: str, real_operator: RealNodeOperator
) -> None:
    kube, ns = ferry_kube, ferry_namespace
    client = store(kube.state)
    base = f"e2e/{ns}/meshes"
    objects = {
        "a.msh": b"mesh a\n",
        "b.msh": uuid.uuid4().bytes * 1000,  # 16 kB of binary
        "parts/c.msh": b"mesh c, one level down\n",
    }
    for rel, data in objects.items():
        client.put_bytes(DEFAULT_BUCKET, f"{base}/{rel}", data)
    client.put_bytes(DEFAULT_BUCKET, f"{base}-old/stale.msh", b"a sibling prefix, not staged\n")
    source = {"s3": {"bucket": DEFAULT_BUCKET, "prefix": base}}  # no trailing slash: a directory
    _finished, manifest, seen = run_job(kube, ns, real_operator, "in-s3-prefix", source)
    assert seen == {f"{INPUT}/{rel}": sha(data) for rel, data in objects.items()}
    record = input_record(manifest)
    assert all(sha(data) in record for data in objects.values())


# --------------------------------------------------------------------------- inline


def test_inline_input_is_staged_in_a_real_pod(
    ferry_kube: Kube, ferry_namespace: str, real_operator: RealNodeOperator
) -> None:
    text = "solver = direct\nsteps = 500\n# ünïcödé survives\n"
    source = {"inline": text}
    _finished, manifest, seen = run_job(
        ferry_kube, ferry_namespace, real_operator, "in-inline", source
    )
    assert seen == {INPUT: sha(text.encode())}
    assert sha(text.encode()) in input_record(manifest)
