"""The real node's container runtime: containerd (runc, overlayfs, the CNI bridge) and the
images it runs, and stopping every container it started.

Owns: containerd's config and start (socket, root and state under <cluster>/containerd;
the pause image as its sandbox image), building the node's images and importing those it
lacks (`ferrydev.images`), and on teardown killing and deleting every task and container,
stopping containerd and any shim that outlived it.

Must not: touch another containerd (everything goes through this cluster's socket), pull
images (there is no registry), or build images itself (`ferrydev.images` does).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from ferrydev import images
from ferrydev.cluster import network
from ferrydev.cluster.runner import Runner
from ferrydev.cluster.state import CNI_BIN_DIR, ClusterError, ClusterState
from ferrydev.processes import alive, terminate


def start(c: Runner) -> None:
    base = c.root / "containerd"
    base.mkdir(parents=True, exist_ok=True)
    sock = base / "containerd.sock"
    c.state.containerd_socket = str(sock)
    conf_dir = network.write_cni_config(c)
    config = f"""\
version = 2
root = "{base / "root"}"
state = "{base / "state"}"
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp",
]

[grpc]
  address = "{sock}"

[ttrpc]
  address = "{sock}.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "{base / "opt"}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{images.PAUSE_IMAGE}"
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  # This machine's root lacks CAP_SYS_RESOURCE, so runc cannot lower a process's
  # oom_score_adj (the sandbox asks for -998): clamp to containerd's own instead.
  restrict_oom_score_adj = true

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{conf_dir}"
    max_conf_num = 1
"""
    path = c.root / "containerd.toml"
    path.write_text(config)
    c.spawn("containerd", [shutil.which("containerd") or "containerd", "--config", str(path)])

    def ready() -> bool:
        return (
            sock.exists()
            and subprocess.run(
                ["ctr", "--address", str(sock), "version"], capture_output=True
            ).returncode
            == 0
        )

    c.wait("containerd", ready, timeout=60)


def import_images(c: Runner) -> None:
    t0 = time.monotonic()
    try:
        built = images.build()
    except images.ImageError as exc:
        raise ClusterError(f"the node's images could not be built: {exc}") from exc
    c.state.timings["images_build"] = round(time.monotonic() - t0, 2)
    try:
        seconds = images.import_images(c.state.containerd_socket, built)
    except images.ImageError as exc:
        raise ClusterError(f"the node's images could not be imported: {exc}") from exc
    c.state.timings["images_import"] = round(seconds, 2)


def stop(state: ClusterState) -> None:
    """Kill and delete every task and container, then stop containerd; then any shim that
    outlived it (each serves our socket's namespace), by pid."""
    pids = state.pids
    sock = state.containerd_socket
    if sock and "containerd" in pids and alive(pids["containerd"]):

        def ctr(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                ["ctr", "--address", sock, "--namespace", "k8s.io", *args],
                capture_output=True,
                text=True,
                timeout=60,
            )

        with contextlib.suppress(subprocess.TimeoutExpired, OSError):
            tasks = [line.split()[0] for line in ctr("tasks", "ls").stdout.splitlines()[1:] if line]
            for task in tasks:
                ctr("tasks", "kill", "--signal", "SIGKILL", task)
            for task in tasks:
                for _ in range(50):
                    if ctr("tasks", "delete", task).returncode == 0:
                        break
                    time.sleep(0.1)
            for container in ctr("containers", "ls", "-q").stdout.split():
                ctr("containers", "delete", container)
        terminate(pids["containerd"], timeout=15)
    # Shims that outlived containerd (each serves our socket's namespace): stop them by pid.
    if sock:
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"containerd-shim" in cmdline[0] and sock.encode() in cmdline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(proc.name), signal.SIGKILL)
