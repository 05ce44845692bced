#!/usr/bin/env bash
# Builds the local cluster's binaries from the Go module proxy, cached by version.
#
# Output: $FERRY_CACHE/bin/<name>-<version> plus a plain <name> symlink, for
#   kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl (Kubernetes)
#   etcd, kwok, minio, helm, mpi-operator (the Kubeflow MPI Operator's controller), kueue (the
#   Kueue manager, sigs.k8s.io/kueue/cmd/kueue), coredns
#   (hack/coredns: CoreDNS trimmed to the cluster DNS's plugins, versioned by COREDNS_VERSION
#   and a hash of its sources), and Ferry's own Go checks: kstatus (hack/kstatus: kstatus's
#   verdict per object, as Flux computes it; cached by its cli-utils version and a hash of its
#   sources) and kindcheck (hack/kindcheck), versioned by a hash of its sources.
# A binary already present for its pinned version is reused (warm start).
# Versions live in hack/versions.env only.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"

FERRY_CACHE="${FERRY_CACHE:-$HOME/.cache/ferry}"
BIN="$FERRY_CACHE/bin"
SRC="$FERRY_CACHE/src"
mkdir -p "$BIN" "$SRC"
export GOFLAGS="-mod=mod"
export CGO_ENABLED=0
export GOTOOLCHAIN=local

want=("$@")
[ ${#want[@]} -gt 0 ] || want=(kubernetes etcd kwok minio helm mpi-operator kueue coredns kstatus kindcheck)

have() { [ -x "$BIN/$1-$2" ]; }
link() { ln -sf "$1-$2" "$BIN/$1"; }
stamp() { date +%s; }

build_kubernetes() {
  local v="$KUBERNETES_VERSION" staging="v0${KUBERNETES_VERSION#v1}"
  local names=(kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl)
  local missing=0
  for n in "${names[@]}"; do have "$n" "$v" || missing=1; done
  if [ $missing = 0 ]; then
    for n in "${names[@]}"; do link "$n" "$v"; done
    echo "kubernetes $v: cached"; return
  fi
  local mod="$SRC/kubernetes-$v"
  mkdir -p "$mod"
  {
    echo "module ferry.dev/localcluster"
    echo "go 1.23"
    echo "require k8s.io/kubernetes $v"
    for m in api apiextensions-apiserver apimachinery apiserver cli-runtime client-go \
      cloud-provider cluster-bootstrap code-generator component-base component-helpers \
      controller-manager cri-api cri-client csi-translation-lib dynamic-resource-allocation \
      endpointslice externaljwt kms kube-aggregator kube-controller-manager kube-proxy \
      kube-scheduler kubectl kubelet metrics mount-utils pod-security-admission \
      sample-apiserver sample-cli-plugin sample-controller; do
      echo "replace k8s.io/$m => k8s.io/$m $staging"
    done
  } >"$mod/go.mod"
  cat >"$mod/tools.go" <<'EOF'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
EOF
  local t0; t0=$(stamp)
  (cd "$mod" && go mod tidy -e >/dev/null 2>&1 || true)
  local ld="-s -w -X k8s.io/component-base/version.gitVersion=$v -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=32"
  local out="$mod/out"; mkdir -p "$out"
  local try
  for try in 1 2 3; do
    (cd "$mod" && go build -trimpath -ldflags "$ld" -o "$out/" \
      k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
      k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubelet \
      k8s.io/kubernetes/cmd/kubectl) && break
    [ "$try" = 3 ] && return 1
    echo "kubernetes build failed (attempt $try); retrying" >&2; sleep $((try * 10))
  done
  for n in "${names[@]}"; do mv "$out/$n" "$BIN/$n-$v"; link "$n" "$v"; done
  echo "kubernetes $v: built in $(( $(stamp) - t0 ))s"
}

build_go_install() {  # name module-path version
  local name="$1" pkg="$2" v="$3"
  if have "$name" "$v"; then link "$name" "$v"; echo "$name $v: cached"; return; fi
  local t0; t0=$(stamp)
  local gobin="$SRC/gobin-$name-$v"; mkdir -p "$gobin"
  local try
  for try in 1 2 3 4; do
    GOBIN="$gobin" go install -trimpath -ldflags "-s -w" "$pkg@$v" && break
    [ "$try" = 4 ] && return 1
    echo "go install $pkg failed (attempt $try); retrying" >&2; sleep $((try * 5))
  done
  mv "$gobin/$name" "$BIN/$name-$v"; link "$name" "$v"
  echo "$name $v: built in $(( $(stamp) - t0 ))s"
}

build_etcd() {
  # etcd's server module has replace directives, so `go install mod@v` refuses it: build it
  # from a wrapper module instead (as for Kubernetes).
  local v="$ETCD_VERSION"
  if have etcd "$v"; then link etcd "$v"; echo "etcd $v: cached"; return; fi
  local t0; t0=$(stamp)
  local mod="$SRC/etcd-$v"; mkdir -p "$mod"
  printf 'module ferry.dev/etcdbuild\ngo 1.23\nrequire go.etcd.io/etcd/server/v3 %s\n' "$v" >"$mod/go.mod"
  printf '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' >"$mod/tools.go"
  local try
  for try in 1 2 3 4; do
    (cd "$mod" && go mod tidy >/dev/null 2>&1; go build -trimpath -ldflags "-s -w" -o "$BIN/etcd-$v" go.etcd.io/etcd/server/v3) && break
    [ "$try" = 4 ] && return 1
    echo "etcd build failed (attempt $try); retrying" >&2; sleep $((try * 5))
  done
  link etcd "$v"
  echo "etcd $v: built in $(( $(stamp) - t0 ))s"
}

build_mpi_operator() {
  # The Kubeflow MPI Operator's controller (cmd/mpi-operator). Its module's version list is
  # refused by the proxy, so `go install pkg@v` cannot resolve it: a wrapper module requires
  # the exact version instead (as for etcd). v0.8.x needs Go >= 1.26 (its go.mod says so).
  local v="$MPI_OPERATOR_VERSION" pkg=github.com/kubeflow/mpi-operator/cmd/mpi-operator
  if have mpi-operator "$v"; then link mpi-operator "$v"; echo "mpi-operator $v: cached"; return; fi
  local t0; t0=$(stamp)
  local mod="$SRC/mpi-operator-$v"; mkdir -p "$mod"
  printf 'module ferry.dev/mpioperatorbuild\ngo 1.26\nrequire github.com/kubeflow/mpi-operator %s\n' "$v" >"$mod/go.mod"
  printf '//go:build tools\n\npackage tools\n\nimport _ "%s"\n' "$pkg" >"$mod/tools.go"
  local try
  for try in 1 2 3 4; do
    (cd "$mod" && go mod tidy >/dev/null 2>&1; go build -trimpath -ldflags "-s -w" -o "$BIN/mpi-operator-$v" "$pkg") && break
    [ "$try" = 4 ] && return 1
    echo "mpi-operator build failed (attempt $try); retrying" >&2; sleep $((try * 5))
  done
  link mpi-operator "$v"
  echo "mpi-operator $v: built in $(( $(stamp) - t0 ))s"
}

build_coredns() {
  # The cluster DNS of the real-node cluster: CoreDNS trimmed to the plugins it needs, from this
  # checkout's hack/coredns module (a custom main, CoreDNS's documented way to choose plugins).
  # Versioned by COREDNS_VERSION plus a hash of its sources, so an edit rebuilds it.
  local src="$here/coredns" v="$COREDNS_VERSION"
  if ! grep -q "github.com/coredns/coredns $v\$" "$src/go.mod"; then
    echo "hack/coredns/go.mod does not require github.com/coredns/coredns $v (versions.env)" >&2
    return 1
  fi
  local tag; tag="$v-$(cat "$src/go.mod" "$src/go.sum" "$src/main.go" | sha256sum | cut -c1-12)"
  if have coredns "$tag"; then link coredns "$tag"; echo "coredns $tag: cached"; return; fi
  local t0; t0=$(stamp)
  local try
  for try in 1 2 3 4; do
    (cd "$src" && GOFLAGS=-mod=readonly go build -trimpath -ldflags "-s -w" -o "$BIN/coredns-$tag" .) && break
    [ "$try" = 4 ] && return 1
    echo "coredns build failed (attempt $try); retrying" >&2; sleep $((try * 5))
  done
  for old in "$BIN"/coredns-*; do [ "$old" = "$BIN/coredns-$tag" ] || rm -f "$old"; done
  link coredns "$tag"
  echo "coredns $tag: built in $(( $(stamp) - t0 ))s"
}

build_kstatus() {
  # Built from this checkout's hack/kstatus module (not `go install`): its go.mod pins
  # sigs.k8s.io/cli-utils, which must match CLI_UTILS_VERSION in versions.env.
  local src="$here/kstatus" v="$CLI_UTILS_VERSION"
  if ! grep -q "sigs.k8s.io/cli-utils $v\$" "$src/go.mod"; then
    echo "hack/kstatus/go.mod does not require sigs.k8s.io/cli-utils $v (versions.env)" >&2
    return 1
  fi
  local sum; sum=$(cat "$src/go.mod" "$src/go.sum" "$src/main.go" | sha256sum | cut -c1-12)
  local tag="$v-$sum"
  if have kstatus "$tag"; then link kstatus "$tag"; echo "kstatus $tag: cached"; return; fi
  local t0; t0=$(stamp)
  local try
  for try in 1 2 3 4; do
    (cd "$src" && GOFLAGS=-mod=readonly go build -trimpath -ldflags "-s -w" -o "$BIN/kstatus-$tag" .) && break
    [ "$try" = 4 ] && return 1
    echo "kstatus build failed (attempt $try); retrying" >&2; sleep $((try * 5))
  done
  link kstatus "$tag"
  echo "kstatus $tag: built in $(( $(stamp) - t0 ))s"
}

build_kindcheck() {
  # Checks kind-config.yaml with kind's own loader and validation (hack/kindcheck/main.go).
  # Its version is the kind module it pins plus a hash of its sources, so an edit rebuilds it.
  local src="$here/kindcheck"
  local kind_v; kind_v=$(awk '$1 == "require" && $2 == "sigs.k8s.io/kind" {print $3}' "$src/go.mod")
  local v; v="$kind_v-$(cat "$src/go.mod" "$src/go.sum" "$src/main.go" | sha256sum | cut -c1-12)"
  if have kindcheck "$v"; then link kindcheck "$v"; echo "kindcheck $v: cached"; return; fi
  local t0; t0=$(stamp)
  local try
  for try in 1 2 3; do
    (cd "$src" && go build -trimpath -ldflags "-s -w" -o "$BIN/kindcheck-$v" .) && break
    [ "$try" = 3 ] && return 1
    echo "kindcheck build failed (attempt $try); retrying" >&2; sleep $((try * 5))
  done
  for old in "$BIN"/kindcheck-*; do [ "$old" = "$BIN/kindcheck-$v" ] || rm -f "$old"; done
  link kindcheck "$v"
  echo "kindcheck $v: built in $(( $(stamp) - t0 ))s"
}

for w in "${want[@]}"; do
  case "$w" in
    kubernetes) build_kubernetes ;;
    etcd) build_etcd ;;
    kwok) build_go_install kwok sigs.k8s.io/kwok/cmd/kwok "$KWOK_VERSION" ;;
    minio) build_go_install minio github.com/minio/minio "$MINIO_VERSION" ;;
    helm) build_go_install helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION" ;;
    mpi-operator) build_mpi_operator ;;
    kueue) build_go_install kueue sigs.k8s.io/kueue/cmd/kueue "$KUEUE_VERSION" ;;
    coredns) build_coredns ;;
    kstatus) build_kstatus ;;
    kindcheck) build_kindcheck ;;
    *) echo "unknown tool: $w" >&2; exit 2 ;;
  esac
done
