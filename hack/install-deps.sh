#!/usr/bin/env bash
# Installs what Ferry's tests and demo need on a fresh Debian machine of this kind:
# Debian packages (openssl; containerd, runc, CNI plugins for the real node), the Python virtualenv, and the
# Go-built cluster binaries (cached by version in ~/.cache/ferry; see hack/build-tools.sh).
# Each step is skipped when already satisfied, so a warm machine spends seconds here.
set -euo pipefail
cd "$(dirname "$0")/.."

# The real node's parts (tests/e2e needs them): on by default for root, which the node needs;
# FERRY_WITH_NODE=0 skips them.
if [ "$(id -u)" = 0 ]; then FERRY_WITH_NODE="${FERRY_WITH_NODE:-1}"; fi

need_apt=()
command -v openssl >/dev/null || need_apt+=(openssl)
if [ "${FERRY_WITH_NODE:-0}" = 1 ]; then
  # The real node (hack/cluster up --real-node) and its images (python -m ferrydev.images).
  command -v containerd >/dev/null || need_apt+=(containerd)  # also brings ctr
  command -v runc >/dev/null || need_apt+=(runc)
  # Debian puts the CNI plugins in /usr/lib/cni (not /opt/cni/bin).
  [ -x /usr/lib/cni/bridge ] && [ -x /usr/lib/cni/host-local ] || need_apt+=(containernetworking-plugins)
  command -v iptables >/dev/null || need_apt+=(iptables)  # the portmap plugin
  command -v ip >/dev/null || need_apt+=(iproute2)
  dpkg -s busybox-static >/dev/null 2>&1 || need_apt+=(busybox-static)
  command -v debootstrap >/dev/null || need_apt+=(debootstrap)
  # `make image`'s archives are checked with a real image tool (tests/integration/test_image_archives.py).
  command -v skopeo >/dev/null || need_apt+=(skopeo)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing Debian packages: ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.ferry-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e ".[dev]"
  touch "$stamp"
fi

hack/build-tools.sh kubernetes etcd kwok minio helm mpi-operator kueue coredns kstatus kindcheck
if [ "${FERRY_WITH_NODE:-0}" = 1 ]; then
  # The real node's images (cached by their inputs in ~/.cache/ferry/images); ferrydev is
  # installed in the virtualenv with Ferry (pip install -e).
  .venv/bin/python -m ferrydev.images build >/dev/null
fi
