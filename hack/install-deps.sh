#!/usr/bin/env bash
# Installs what Ferry's tests and demo need on a fresh Debian machine of this kind:
# Debian packages (openssl; containerd, runc, CNI plugins for the real node), the Python virtualenv, and the
# Go-built cluster binaries (cached by version in ~/.cache/ferry; see hack/build-tools.sh).
# Each step is skipped when already satisfied, so a warm machine spends seconds here.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v openssl >/dev/null || need_apt+=(openssl)
if [ "${FERRY_WITH_NODE:-0}" = 1 ]; then
  command -v containerd >/dev/null || need_apt+=(containerd)
  command -v runc >/dev/null || need_apt+=(runc)
  [ -d /usr/lib/cni ] || need_apt+=(containernetworking-plugins)
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

hack/build-tools.sh kubernetes etcd kwok minio helm
