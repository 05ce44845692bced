"""The OpenMPI image (`localhost/ferry/openmpi:4.1.4`, ferrydev.images.mpi) on the real node,
under the restricted Pod Security Standard with the security context of Ferry's run pods.

- one pod: `mpirun -np 2` of an mpi4py program, both ranks on the pod's shared memory;
- three pods as the Kubeflow MPI Operator (v2beta1) makes them, without it and without
  cluster DNS: two workers running the image's sshd (one with the operator's default command
  `sshd -De`, one with its examples' `sshd -De -f /home/mpiuser/.sshd_config`), the ssh Secret
  (kubernetes.io/ssh-auth, an ECDSA P-521 key as the operator generates) mounted at
  /home/mpiuser/.ssh with the operator's items, the hostfile ConfigMap at /etc/mpi/hostfile
  with the operator's environment, and a launcher whose `mpirun` starts one rank on each
  worker over ssh (the hostfile names the workers by pod IP where the operator writes DNS
  names).
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from ferry.decisions.builders import pod_security_context, restricted_container_context
from tests.conftest import Kube
from tests.e2e.test_real_node import logs, run_to_end

pytestmark = pytest.mark.e2e

#: Each rank: a 1 MiB message around the ring (past every eager limit: shared memory in one
#: pod, TCP between pods), an allreduce, a line on stdout and, with $OUT, a file of its own.
RANKS_PY = """
import os, socket
from mpi4py import MPI
comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
host = socket.gethostname()
payload = bytes([rank]) * (1 << 20)
got = comm.sendrecv(payload, dest=(rank + 1) % size, source=(rank - 1) % size)
assert got == bytes([(rank - 1) % size]) * (1 << 20), "ring message corrupted"
total = comm.allreduce(rank + 1)
if os.environ.get("OUT"):
    with open(f"{os.environ['OUT']}/rank-{rank}.txt", "w") as f:
        f.write(f"rank {rank} wrote on {host}\\n")
os.write(1, f"rank {rank} of {size} on {host} sum {total}\\n".encode())  # one write a line
"""
#: mpirun forwards each rank's stdout as it reads it, so two ranks' lines may share a log line.
RANK_LINE = re.compile(r"rank (\d) of 2 on (\S+?) sum 3(?!\d)")
#: What the MPI Operator (v0.8.2, pkg/controller) mounts and sets.
SSH_MOUNT = "/home/mpiuser/.ssh"
SSH_ITEMS = [
    {"key": "ssh-privatekey", "path": "id_rsa"},
    {"key": "ssh-publickey", "path": "id_rsa.pub"},
    {"key": "ssh-publickey", "path": "authorized_keys"},
]
OMPI_ENV = [
    {"name": "OMPI_MCA_orte_keep_fqdn_hostnames", "value": "true"},
    {"name": "OMPI_MCA_orte_default_hostfile", "value": "/etc/mpi/hostfile"},
    {"name": "OMPI_MCA_plm_rsh_args", "value": "-o ConnectionAttempts=10"},
]


def mpi_pod(
    name: str,
    image: str,
    command: list[str] | None,
    *,
    env: list[dict[str, Any]] | None = None,
    volumes: list[dict[str, Any]] | None = None,
    mounts: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A pod with the security context of Ferry's run pods (restricted, uid/gid/fsGroup 1000)."""
    container: dict[str, Any] = {
        "name": "main",
        "image": image,
        "imagePullPolicy": "Never",
        "securityContext": restricted_container_context(),
        "env": env or [],
        "volumeMounts": mounts or [],
    }
    if command is not None:
        container["command"] = command
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "securityContext": pod_security_context(),
            "containers": [container],
            "volumes": volumes or [],
        },
    }


def ranks(text: str) -> dict[int, str]:
    """rank → host of the ranks' lines in a log."""
    return {int(r): host for r, host in RANK_LINE.findall(text)}


def test_mpirun_two_ranks_in_one_restricted_pod(
    real_kube: Kube, real_namespace: str, openmpi_image: str
) -> None:
    # --oversubscribe: two ranks even where the node has one core (slots = cores detected).
    # Then the image itself: the user, OpenMPI 4.1, no host key baked in, no man pages, and
    # the MPI layer's whiteouts honoured (dpkg's status-old of the base layer is gone).
    script = (
        'mpirun -np 2 --oversubscribe python3 -c "$PROG"'
        " && cat /work/rank-0.txt /work/rank-1.txt && id -un && pwd"
        " && mpirun --version | head -n 1"
        " && ! ls /etc/ssh/ssh_host_* 2>/dev/null && ! ls /usr/share/man/man1/*.gz 2>/dev/null"
        " && test ! -e /var/lib/dpkg/status-old && echo image-ok"
    )
    obj = mpi_pod(
        "mpi-one",
        openmpi_image,
        ["sh", "-c", script],
        env=[{"name": "PROG", "value": RANKS_PY}, {"name": "OUT", "value": "/work"}],
        volumes=[{"name": "work", "emptyDir": {}}],
        mounts=[{"name": "work", "mountPath": "/work"}],
    )
    final = run_to_end(real_kube, real_namespace, obj)
    out = logs(real_kube, real_namespace, "mpi-one")
    assert final["status"]["phase"] == "Succeeded", out
    assert ranks(out) == {0: "mpi-one", 1: "mpi-one"}, out
    tail = "rank 0 wrote on mpi-one\nrank 1 wrote on mpi-one\nmpiuser\n/home/mpiuser\n"
    assert tail + "mpirun (Open MPI) 4.1." in out, out
    assert out.endswith("image-ok\n"), out


def _ssh_secret(kube: Kube, namespace: str, name: str) -> None:
    """The Secret the MPI Operator makes for an MPIJob (newSSHAuthSecret): ECDSA P-521, the
    private key as PEM "EC PRIVATE KEY", the public key in authorized_keys form."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP521R1())
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    kube.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name},
            "type": "kubernetes.io/ssh-auth",
            "stringData": {
                "ssh-privatekey": private.decode(),
                "ssh-publickey": public.decode() + "\n",
            },
        },
        "-n",
        namespace,
    )


def test_launcher_runs_ranks_on_two_sshd_worker_pods(
    real_kube: Kube, real_namespace: str, openmpi_image: str
) -> None:
    ns = real_namespace
    _ssh_secret(real_kube, ns, "mpi-ssh")
    ssh_volume = {"name": "ssh-auth", "secret": {"secretName": "mpi-ssh", "items": SSH_ITEMS}}
    ssh_mount = {"name": "ssh-auth", "mountPath": SSH_MOUNT}
    role = [{"name": "K_MPI_JOB_ROLE", "value": "worker"}]
    workers = {
        # The operator's default worker command, and its examples' (the image's CMD).
        "mpi-worker-0": ["/usr/sbin/sshd", "-De"],
        "mpi-worker-1": None,
    }
    for name, command in workers.items():
        real_kube.create(
            mpi_pod(
                name, openmpi_image, command, env=role, volumes=[ssh_volume], mounts=[ssh_mount]
            ),
            "-n",
            ns,
        )

    def listening(name: str) -> str | None:
        pod = real_kube.get("pod", name, ns)
        ip = pod.get("status", {}).get("podIP")
        if pod.get("status", {}).get("phase") != "Running" or not ip:
            return None
        said = real_kube.run("logs", name, "-n", ns, check=False).stdout
        return ip if "Server listening on 0.0.0.0 port 2222" in said else None

    ips = {
        name: real_kube.wait_for(lambda n=name: listening(n), timeout=120, what=f"{name} sshd")
        for name in workers
    }
    hostfile = "".join(f"{ip} slots=1\n" for ip in ips.values())
    real_kube.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "mpi-config"},
            "data": {"hostfile": hostfile},
        },
        "-n",
        ns,
    )
    launcher = mpi_pod(
        "mpi-launcher",
        openmpi_image,
        ["mpirun", "-np", "2", "python3", "-c", RANKS_PY],
        env=[{"name": "K_MPI_JOB_ROLE", "value": "launcher"}, *OMPI_ENV],
        volumes=[
            ssh_volume,
            {
                "name": "mpi-job-config",
                "configMap": {
                    "name": "mpi-config",
                    "items": [{"key": "hostfile", "path": "hostfile", "mode": 0o444}],
                },
            },
        ],
        mounts=[ssh_mount, {"name": "mpi-job-config", "mountPath": "/etc/mpi"}],
    )
    final = run_to_end(real_kube, ns, launcher)
    out = logs(real_kube, ns, "mpi-launcher")
    assert final["status"]["phase"] == "Succeeded", out
    # By slot: rank 0 on the hostfile's first worker, rank 1 on the second.
    assert ranks(out) == {0: "mpi-worker-0", 1: "mpi-worker-1"}, out
    for name in workers:
        said = logs(real_kube, ns, name)
        assert "Accepted publickey for mpiuser" in said, said


#: LAMMPS's own examples/melt: 4000 Lennard-Jones atoms (fcc, reduced density 0.8442) started
#: at T*=3.0 and integrated at constant NVE for 250 steps.
IN_MELT = """\
units           lj
atom_style      atomic
lattice         fcc 0.8442
region          box block 0 10 0 10 0 10
create_box      1 box
create_atoms    1 box
mass            1 1.0
velocity        all create 3.0 87287 loop geom
pair_style      lj/cut 2.5
pair_coeff      1 1 1.0 1.0 2.5
neighbor        0.3 bin
neigh_modify    every 20 delay 0 check no
fix             1 all nve
thermo          50
run             250
"""
THERMO = re.compile(r"^\s+(\d+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s*$", re.MULTILINE)


def test_lammps_melts_a_lennard_jones_crystal_on_two_ranks(
    real_kube: Kube, real_namespace: str, lammps_image: str
) -> None:
    script = (
        'printf "%s" "$IN_MELT" > /work/in.melt'
        " && mpirun -np 2 --oversubscribe lmp -in /work/in.melt -log /work/log.lammps"
    )
    obj = mpi_pod(
        "lmp-melt",
        lammps_image,
        ["sh", "-c", script],
        env=[{"name": "IN_MELT", "value": IN_MELT}],
        volumes=[{"name": "work", "emptyDir": {}}],
        mounts=[{"name": "work", "mountPath": "/work"}],
    )
    final = run_to_end(real_kube, real_namespace, obj, timeout=300)
    out = logs(real_kube, real_namespace, "lmp-melt")
    assert final["status"]["phase"] == "Succeeded", out
    assert "on 2 procs for 250 steps with 4000 atoms" in out, out
    # Step Temp E_pair E_mol TotEng Press, every 50 steps.
    thermo = {int(m[0]): [float(x) for x in m[1:]] for m in THERMO.findall(out)}
    assert sorted(thermo) == [0, 50, 100, 150, 200, 250], out
    temp0, epair0, _, etot0, _ = thermo[0]
    temp, _, _, etot, _ = thermo[250]
    assert temp0 == pytest.approx(3.0)
    assert epair0 == pytest.approx(-6.7733681, abs=1e-6)  # the perfect fcc lattice's energy
    assert 1.5 < temp < 1.8, out  # the crystal melts: half the kinetic energy goes to potential
    assert etot == pytest.approx(etot0, abs=0.02), out  # NVE conserves the total energy
