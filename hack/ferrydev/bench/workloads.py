"""What the lifecycle benchmark creates: the bench App, Ferry Jobs, batch/v1 Jobs shaped like
Ferry's run pods, their namespaces, and the API client that creates them.

Owns: the workload's constants (API group, image, requests, the simulated run time
annotation, the archive setting and whether the installed CRD knows it), the manifests,
`Workload` (what a Ferry burst creates; the kwok one unless a benchmark brings its own), a
kubernetes client with the benchmark's own user agent (the audit log tells its requests apart
by it) and a namespace ready for pods (its default ServiceAccount exists).

Must not: measure anything, or start the operator.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.rest import ApiException

from ferrydev import kubectl
from ferrydev.bench.audit import BENCH_USER_AGENT
from ferrydev.cluster import ClusterState
from ferrydev.processes import wait_until

GROUP, VERSION = "ferry.dev", "v1alpha1"
IMAGE = "example.org/bench:1"
APP_NAME = "bench"
# Requests of every benchmark pod (Ferry's run pods get them from the App): small, so that
# scheduling never waits for capacity.
RESOURCES = {"cpu": "10m", "memory": "16Mi"}
SIM_DURATION = "sim.ferry.dev/duration"

# The Job's archive setting for the burst: no inputs, no archive. The `enabled` field is being
# added to the Job API; until the installed CRD knows it, the harness leaves `archive` out (so
# Ferry archives, with one extra pod per Job) and says so in its output.
ARCHIVE_SPEC: dict[str, Any] = {"enabled": False}


def api_client(state: ClusterState) -> k8s.ApiClient:
    cfg = k8s.Configuration()
    k8s_config.load_kube_config(config_file=str(state.kubeconfig), client_configuration=cfg)
    cfg.connection_pool_maxsize = 64
    api = k8s.ApiClient(cfg)
    api.user_agent = BENCH_USER_AGENT
    return api


def create_namespace(api: k8s.ApiClient, name: str) -> None:
    core = k8s.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": name, "labels": {"ferry.dev/bench": "lifecycle"}}})

    def sa_ready() -> bool:
        try:
            core.read_namespaced_service_account("default", name)
        except ApiException:
            return False
        return True

    wait_until(sa_ready, 60, f"the default ServiceAccount in {name}")


def archive_supported(state: ClusterState) -> bool:
    """Whether the installed Job CRD has every field of ARCHIVE_SPEC under spec.archive."""
    crd = json.loads(kubectl.output(state.kubeconfig, "get", "crd", "jobs.ferry.dev", "-o", "json"))
    version = next(v for v in crd["spec"]["versions"] if v["name"] == VERSION)
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    props = spec["properties"]["archive"].get("properties") or {}
    return all(k in props for k in ARCHIVE_SPEC)


def app_manifest(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "App",
        "metadata": {"name": APP_NAME, "namespace": namespace},
        "spec": {"version": "1", "image": IMAGE, "resources": dict(RESOURCES)},
    }


def ferry_job(name: str, duration: str, archive: dict[str, Any] | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"appRef": {"name": APP_NAME}}
    if archive is not None:
        spec["archive"] = archive
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Job",
        "metadata": {"name": name, "annotations": {SIM_DURATION: duration}},
        "spec": spec,
    }


def batch_job(name: str, duration: str) -> dict[str, Any]:
    """A batch/v1 Job with one pod shaped like Ferry's run pod of the bench App."""
    container_security = {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "annotations": {SIM_DURATION: duration}},
        "spec": {
            "backoffLimit": 0,
            "completions": 1,
            "parallelism": 1,
            "template": {
                "metadata": {"annotations": {SIM_DURATION: duration}},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 1000,
                        "runAsGroup": 1000,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": "app",
                            "image": IMAGE,
                            "workingDir": "/ferry/work",
                            "securityContext": container_security,
                            "resources": {"requests": RESOURCES, "limits": RESOURCES},
                            "volumeMounts": [{"name": "workspace", "mountPath": "/ferry/work"}],
                        }
                    ],
                    "volumes": [{"name": "workspace", "emptyDir": {}}],
                },
            },
        },
    }


@dataclass(frozen=True)
class Workload:
    """What a Ferry burst creates: whatever its namespace needs first (`prepare`), the App
    (named APP_NAME) and each Job (name, simulated duration, archive setting)."""

    name: str  # in the burst's namespace name
    app: Callable[[str], dict[str, Any]]
    job: Callable[[str, str, dict[str, Any] | None], dict[str, Any]]
    prepare: Callable[[str], None] = lambda namespace: None


#: The lifecycle benchmark's own: the kwok App, Jobs without inputs.
KWOK_WORKLOAD = Workload(name="ferry", app=app_manifest, job=ferry_job)
