"""The one in-memory stand-in for the Kubernetes API the unit tests use.

`FakeKube` implements `ferry.clients.protocol.KubeAPI` (checked by mypy below): one Job, the
pods and PVCs the tests give it, and a log of every call that matters to the ordering tests,
in order."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from ferry.clients.protocol import Ownership

if TYPE_CHECKING:
    from ferry.clients.protocol import KubeAPI

Obj = dict[str, Any]


def job_object(status: Obj, namespace: str = "ns", **spec: Any) -> Obj:
    """Job `j` (uid u-1) as the apiserver returns it, five minutes old."""
    from tests.unit.factories import NOW, job_dict

    return {
        "apiVersion": "ferry.dev/v1alpha1",
        "kind": "Job",
        "metadata": {
            "name": "j",
            "namespace": namespace,
            "uid": "u-1",
            "generation": 1,
            "resourceVersion": "10",
            "creationTimestamp": (NOW - timedelta(minutes=5)).isoformat(),
        },
        "spec": job_dict(**spec),
        "status": status,
    }


@dataclass
class Counts:
    counts: dict[str, int] = field(default_factory=dict)


class FakeKube:
    """Just enough of the API for the reconciler; records every call in order."""

    def __init__(self, job: Obj, pods: list[Obj]) -> None:
        self.job = job
        self.pods = pods
        uid = job["metadata"].get("uid", "")
        self.pvcs: list[Obj] = [
            {
                "metadata": {
                    "name": "j-1",
                    "uid": "pvc-uid-1",
                    "labels": {"ferry.dev/job": "j"},
                    "ownerReferences": [{"uid": uid, "controller": True}],
                }
            }
        ]
        #: The MPIJobs `list_job_mpijobs` answers.
        self.mpijobs: list[Obj] = []
        #: What `pod_warnings` answers.
        self.warnings: list[Obj] = []
        #: What `list_workloads` answers (None: Kueue not installed).
        self.workloads: list[Obj] | None = []
        self.log: list[tuple[str, str]] = []
        self.calls = Counts()
        #: What `busy` answers (the rate limit holding calls back).
        self.throttled = False

    def busy(self) -> bool:
        return self.throttled

    # ---------------------------------------------------------------- reads

    def get_job(self, namespace: str, name: str) -> Obj:
        return copy.deepcopy(self.job)

    def get_app(self, namespace: str, name: str) -> Obj | None:
        self.log.append(("get app", name))
        return None

    def list_job_pods(self, namespace: str, job: str) -> list[Obj]:
        self.log.append(("list", job))
        return copy.deepcopy(self.pods)

    def list_job_mpijobs(self, namespace: str, job: str) -> list[Obj]:
        self.log.append(("list mpijobs", job))
        return copy.deepcopy(self.mpijobs)

    def list_workloads(self, namespace: str, owner_uid: str) -> list[Obj] | None:
        self.log.append(("list workloads", owner_uid))
        return copy.deepcopy(self.workloads)

    def pod_warnings(self, namespace: str, name: str, uid: str) -> list[Obj]:
        self.log.append(("list events", name))
        return copy.deepcopy(self.warnings)

    def crd_exists(self, name: str) -> bool:
        return True

    def ownership(self, kind: str, namespace: str, name: str) -> Ownership | None:
        self.log.append((f"get {kind}", name))
        objs = self.pods if kind == "Pod" else self.pvcs
        for obj in objs:
            meta = obj["metadata"]
            if meta["name"] == name:
                refs = [r for r in meta.get("ownerReferences") or [] if r.get("controller")]
                return Ownership(str(meta.get("uid", "")), str(refs[0]["uid"]) if refs else "")
        return None

    # ---------------------------------------------------------------- writes

    def create(self, manifest: Obj) -> bool:
        self.log.append(("create", manifest["metadata"]["name"]))
        return True

    def delete(self, kind: str, namespace: str, name: str, uid: str) -> bool:
        self.log.append((f"delete {kind}", name))
        return True

    def delete_job(self, namespace: str, name: str, uid: str) -> None:
        self.log.append(("delete Job", name))

    def replace_status(self, kind_plural: str, obj: Obj, status: Obj) -> Obj:
        self.log.append(("status", str(status.get("state"))))
        self.job = {**copy.deepcopy(obj), "status": status}
        meta = self.job["metadata"]
        meta["resourceVersion"] = str(int(meta["resourceVersion"]) + 1)
        return copy.deepcopy(self.job)

    def post_event(self, obj: Obj, type_: str, reason: str, message: str, component: str) -> None:
        self.log.append(("event", reason))


if TYPE_CHECKING:
    _conforms: type[KubeAPI] = FakeKube
