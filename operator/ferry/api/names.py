"""Well-known names: the labels, annotations, containers, volumes, paths and child names that
Ferry writes and reads.

Owns: every name that more than one module (or a user, a test, the chart) must agree on — the
builders that write them, the observation that reads them back, the CLI, the benchmarks and
the tests all import them from here. Must not: import anything of Ferry's but the API group.
"""

from __future__ import annotations

from typing import Final, Literal

from ferry.api.common import API_VERSION, GROUP

__all__ = ["API_VERSION", "GROUP"]

# --------------------------------------------------------------------------- labels

#: The Job (by name) a child belongs to.
LABEL_JOB: Final = f"{GROUP}/job"
#: The UID of the Job a child belongs to (its controller ownerReference says the same; Ferry
#: looks at, mounts and deletes only children whose controller is the Job's UID).
LABEL_JOB_UID: Final = f"{GROUP}/job-uid"
#: The attempt number a child belongs to.
LABEL_ATTEMPT: Final = f"{GROUP}/attempt"
#: What the child is for: one of `Role`.
LABEL_ROLE: Final = f"{GROUP}/role"
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
#: The value of LABEL_MANAGED_BY on everything Ferry creates.
MANAGED_BY: Final = "ferry"

Role = Literal["run", "archive", "workspace", "worker"]
ROLE_RUN: Final = "run"
#: An MPI worker pod (made by the MPI Operator from the template Ferry gives its MPIJob).
ROLE_WORKER: Final = "worker"
ROLE_ARCHIVE: Final = "archive"
ROLE_WORKSPACE: Final = "workspace"

#: On a Job made by `rerun` (SDK and CLI): the name of the Job it re-runs.
LABEL_RERUN_OF: Final = f"{GROUP}/rerun-of"
#: On every Job of a parameter sweep (SDK and CLI): the sweep's name.
LABEL_SWEEP: Final = f"{GROUP}/sweep"

# --------------------------------------------------------------------------- annotations

#: On an archive pod: which archive try of its attempt it is (1, 2, ...).
ANNOTATION_ARCHIVE_TRY: Final = f"{GROUP}/archive-try"

# --------------------------------------------------------------------------- Kueue
# Kueue (kueue.x-k8s.io, v0.17): the queue label that puts a run under a LocalQueue, the
# scheduling gate its pod webhook adds to a queued pod, the condition it sets on a pod it
# stops (preemption), and its Workloads, found by the UID of the object they stand for.
KUEUE_GROUP: Final = "kueue.x-k8s.io"
KUEUE_PREFIX: Final = f"{KUEUE_GROUP}/"
#: The LocalQueue a pod or MPIJob is queued in (on the run pod or the MPIJob only).
LABEL_KUEUE_QUEUE: Final = f"{KUEUE_GROUP}/queue-name"
#: The WorkloadPriorityClass of a queued run: copied from the Job's labels onto its run pod or
#: MPIJob (only when it is queued), never onto another child.
LABEL_KUEUE_PRIORITY_CLASS: Final = f"{KUEUE_GROUP}/priority-class"
#: The scheduling gate Kueue's pod webhook adds to a pod it queues; removed on admission.
KUEUE_ADMISSION_GATE: Final = f"{KUEUE_GROUP}/admission"
#: The pod condition Kueue sets (True, its reason and message) on a pod it stops before
#: deleting it (preempted, evicted, its Workload deleted).
KUEUE_STOP_CONDITION: Final = "TerminationTarget"
#: On a Workload: the UID of the pod or MPIJob it stands for.
KUEUE_LABEL_JOB_UID: Final = f"{KUEUE_GROUP}/job-uid"
#: The Workload API version read (Kueue v0.17's storage version).
KUEUE_VERSION: Final = "v1beta2"
WORKLOAD_PLURAL: Final = "workloads"
#: The CRD whose presence means Kueue is installed.
WORKLOAD_CRD: Final = f"{WORKLOAD_PLURAL}.{KUEUE_GROUP}"

#: Prefixes of a Job's own labels and annotations that are not copied onto its children
#: (Kueue's are not either: only the run pod or MPIJob carries the queue label, set by Ferry).
RESERVED_PREFIXES: Final = (f"{GROUP}/", "kubectl.kubernetes.io/", LABEL_MANAGED_BY, KUEUE_PREFIX)

# --------------------------------------------------------------------------- containers

#: The app's container in the run pod.
APP_CONTAINER: Final = "app"
#: The container of each MPI worker pod.
WORKER_CONTAINER: Final = "worker"
#: The uploader's container in the archive pod.
ARCHIVE_CONTAINER: Final = "archive"
#: The first init container of a run pod: lays out the workspace, installs the launcher.
SETUP_CONTAINER: Final = "ferry-setup"
#: Each input is staged by an init container named this followed by the input's name.
STAGE_CONTAINER_PREFIX: Final = "stage-"

# --------------------------------------------------------------------------- volumes, paths

WORKSPACE_VOLUME: Final = "workspace"
BIN_VOLUME: Final = "ferry-bin"
#: Volumes of pvc and configMap inputs are this followed by the input name.
INPUT_VOLUME_PREFIX: Final = "in-"
BIN_DIR: Final = "/ferry/bin"
LAUNCHER: Final = f"{BIN_DIR}/ferry-launch"
LOGS_DIR: Final = "/ferry/logs"
#: The app's log inside LOGS_DIR, and so inside the archive.
APP_LOG: Final = "app.log"
WORKSPACE_DIR: Final = "/ferry/workspace"
#: Staging records (what each input was, its bytes and hashes), for the manifest: mounted in
#: the staging containers and read by the archive, never mounted in the app's container, so
#: the app cannot forge its inputs' provenance.
RECORDS_DIR: Final = "/ferry/records"
#: The workspace's folders (subPaths) of an attempt.
WORKSPACE_WORK: Final = "work"
WORKSPACE_INPUTS: Final = "inputs"
WORKSPACE_LOGS: Final = "logs"
WORKSPACE_RECORDS: Final = "records"
SOURCE_DIR: Final = "/ferry/source"

# --------------------------------------------------------------------------- archive layout
# Below an attempt's archive URI (`archive_key_prefix`): the outputs, the app's log, and the
# manifest, written last.
ARCHIVE_OUTPUTS: Final = "outputs/"
ARCHIVE_LOG: Final = f"logs/{APP_LOG}"
ARCHIVE_MANIFEST: Final = "manifest.json"

# --------------------------------------------------------------------------- store credentials
#: The keys of a credentials Secret (secretRef, or the default store's): fixed, so that a Job
#: cannot turn an arbitrary key of an arbitrary Secret into a request header.
#: (the access key ID's, the secret access key's)
CREDENTIALS_KEYS: Final = ("accessKey", "secretKey")
#: The staging and archive containers' variable listing the trusted stores' endpoints (the
#: default store first, then FERRY_ALLOWED_STORE_ENDPOINTS): the only endpoints that receive
#: credentials or may connect to loopback / link-local addresses.
ENV_ALLOWED_STORES: Final = "FERRY_ALLOWED_STORE_ENDPOINTS"

# --------------------------------------------------------------------------- exit codes
#: The stager's exit code when a store or an input server is unavailable (unreachable, timing
#: out, answering 5xx): an outage the operator waits out with a backoff, not a failure of the
#: Job (sysexits' EX_TEMPFAIL). Every other failure of the stager exits 1.
EXIT_UNAVAILABLE: Final = 75

#: The component that posts Ferry's Events.
COMPONENT: Final = "ferry-operator"
#: The leader-election Lease (coordination.k8s.io) by default; the chart names it after the release.
LEASE_NAME: Final = "ferry-operator"
#: The CRD whose presence means the Kubeflow MPI Operator is installed.
MPIJOB_CRD: Final = "mpijobs.kubeflow.org"

# --------------------------------------------------------------------------- MPI Operator
# The Kubeflow MPI Operator's API (v0.8.x): the MPIJob Ferry creates per MPI attempt, and the
# labels the MPI Operator puts on the launcher and worker pods it makes from its templates.
MPI_GROUP: Final = "kubeflow.org"
MPI_VERSION: Final = "v2beta1"
MPI_API_VERSION: Final = f"{MPI_GROUP}/{MPI_VERSION}"
MPIJOB_PLURAL: Final = "mpijobs"
MPI_LABEL_JOB_NAME: Final = "training.kubeflow.org/job-name"
MPI_LABEL_JOB_ROLE: Final = "training.kubeflow.org/job-role"
#: Where the MPI Operator mounts the MPIJob's SSH keys by default (the home of uid 1000 in
#: the MPI Operator's own images, mpioperator/openmpi and its examples).
MPI_SSH_AUTH_MOUNT_PATH: Final = "/home/mpiuser/.ssh"
#: A worker's default command: sshd as uid 1000 with the images' own configuration (port
#: 2222, the mounted key as host key), as the MPI Operator's v2beta1 examples run it.
MPI_WORKER_COMMAND: Final = ("/usr/sbin/sshd", "-De", "-f", "/home/mpiuser/.sshd_config")
#: The hostfile the MPI Operator mounts in the launcher (its ConfigMap at /etc/mpi).
MPI_HOSTFILE: Final = "/etc/mpi/hostfile"

# --------------------------------------------------------------------------- child names


def run_pod_name(job: str, attempt: int) -> str:
    """The run pod of attempt `attempt` (also what `status.podName` says)."""
    return f"{job}-{attempt}"


def mpijob_name(job: str, attempt: int) -> str:
    """The MPIJob of attempt `attempt` of an MPI App (also what `status.podName` says)."""
    return f"{job}-{attempt}"


def mpi_launcher_job_name(mpijob: str) -> str:
    """The batch Job the MPI Operator makes for an MPIJob's launcher."""
    return f"{mpijob}-launcher"


def mpi_worker_name(mpijob: str, index: int) -> str:
    """Worker `index` of an MPIJob (a pod the MPI Operator makes; also its hostname)."""
    return f"{mpijob}-worker-{index}"


def workspace_name(job: str, attempt: int) -> str:
    """The workspace PVC of attempt `attempt`."""
    return f"{job}-{attempt}"


def archive_pod_name(job: str, attempt: int, try_: int) -> str:
    """Try `try_` of archiving attempt `attempt`."""
    return f"{job}-{attempt}-archive-{try_}"


def stage_container_name(input_name: str) -> str:
    return f"{STAGE_CONTAINER_PREFIX}{input_name}"


def archive_key_prefix(namespace: str, job: str, uid: str, attempt: int) -> str:
    """Where an attempt's archive goes below the store's bucket and prefix."""
    return f"{namespace}/{job}/{uid}/attempt-{attempt}/"
