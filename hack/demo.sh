#!/usr/bin/env bash
# make demo: the local cluster with a real node (kubelet + containerd: the hello example runs as
# real containers), MinIO and its default bucket, Ferry's CRDs, the operator as a background
# process; applies examples/hello, waits for it, prints its timeline, the archived objects,
# logs/app.log and the manifest, and `kubectl get fjob -o wide`.
#
#   hack/demo.sh          run the demo (reuses a running cluster: the second run is warm)
#   hack/demo.sh down     stop the operator and the cluster (make demo-down)
#
# The cluster lives in $FERRY_CLUSTER_DIR (default .cluster/); the operator's log and pid file
# are kept there too. Needs root (the real node) and what `hack/install-deps.sh` installs.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cache/ferry/bin:$PATH"
DIR="${FERRY_CLUSTER_DIR:-$PWD/.cluster}"
DIR="$(mkdir -p "$(dirname "$DIR")" && cd "$(dirname "$DIR")" && pwd)/$(basename "$DIR")"
PY=.venv/bin/python
NS=ferry-demo
JOB=hello-1
t0=$(date +%s)

# Stop the demo's operator if its pid file names a live `ferry operator run` process.
stop_operator() {
  local pidfile="$DIR/operator.pid" pid
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if [ -n "$pid" ] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "ferry operator run"; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
    echo "stopped the operator (pid $pid)"
  fi
  rm -f "$pidfile"
}

if [ "${1:-}" = down ]; then
  stop_operator
  hack/cluster down --dir "$DIR"
  exit 0
fi

if [ "$(id -u)" != 0 ]; then
  echo "make demo runs pods on a real local node (kubelet + containerd) and needs root" >&2
  exit 1
fi

# Is there a running cluster with a real node in $DIR? (every process alive, real_node set, and
# the cluster DNS among them: a cluster started before it existed is started afresh)
cluster_ok() {
  [ -f "$DIR/state.json" ] || return 1
  "$PY" - "$DIR" <<'EOF'
import sys
from pathlib import Path
from ferrydev.cluster import ClusterState, status
root = Path(sys.argv[1])
alive = status(root)
ok = alive and all(alive.values()) and "coredns" in alive and ClusterState.load(root).real_node
sys.exit(0 if ok else 1)
EOF
}

if cluster_ok; then
  echo "== reusing the local cluster with its real node in $DIR"
  # Refresh the node's images if Ferry's code changed since (imports only what differs).
  socket=$("$PY" -c "import json,sys;print(json.load(open(sys.argv[1]))['containerd_socket'])" "$DIR/state.json")
  "$PY" -m ferrydev.images import --address "$socket" >/dev/null
else
  if [ -f "$DIR/state.json" ]; then
    echo "== stopping the incomplete (or node-less) cluster in $DIR"
    stop_operator
    hack/cluster down --dir "$DIR" >/dev/null
  fi
  rm -rf "$DIR"
  echo "== starting the local cluster: etcd, apiserver, controller-manager, scheduler, kwok nodes,"
  echo "   MinIO and a real node (containerd + kubelet) with Ferry's images"
  hack/cluster up --real-node --dir "$DIR"
fi
export KUBECONFIG="$DIR/kubeconfig"
# MinIO as pods (and this host) reach it, on the pod bridge; its root credentials.
read -r S3 AK SK < <("$PY" -c "import json,sys;s=json.load(open(sys.argv[1]));print(s['minio_pod_endpoint'], s['minio_access_key'], s['minio_secret_key'])" "$DIR/state.json")

kubectl apply --server-side --force-conflicts -f crds/ >/dev/null
kubectl wait --for=condition=Established crd/jobs.ferry.dev crd/apps.ferry.dev --timeout=60s >/dev/null

# The default store: bucket `ferry` (Ferry's archive does not create buckets).
"$PY" -c "
import sys
from ferry.clients.s3 import S3Client
S3Client(sys.argv[1], sys.argv[2], sys.argv[3]).make_bucket('ferry')
" "$S3" "$AK" "$SK"
echo "== MinIO at $S3, bucket ferry"

# The demo namespace: restricted Pod Security, and the default store's Secret.
kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl label namespace "$NS" pod-security.kubernetes.io/enforce=restricted --overwrite >/dev/null
for _ in $(seq 50); do kubectl get serviceaccount default -n "$NS" >/dev/null 2>&1 && break; sleep 0.2; done
kubectl create secret generic ferry-s3 -n "$NS" --from-literal=accessKey="$AK" --from-literal=secretKey="$SK" \
  --dry-run=client -o yaml | kubectl apply -f - >/dev/null

echo "== starting the operator (log: $DIR/operator.log)"
stop_operator
METRICS_PORT=$("$PY" -c "import socket;s=socket.socket();s.bind(('127.0.0.1',0));print(s.getsockname()[1])")
# The operator refuses unknown FERRY_* variables: it gets only its own.
env $(env | sed -n 's/^\(FERRY_[A-Z0-9_]*\)=.*/-u \1/p') FERRY_KUBECONFIG="$KUBECONFIG" FERRY_HEALTH_PORT=0 FERRY_METRICS_PORT="$METRICS_PORT" \
  FERRY_DEFAULT_S3_ENDPOINT="$S3" FERRY_TOOLS_IMAGE=localhost/ferry/tools:0.1.0 \
  FERRY_IMAGE_PULL_POLICY=Never \
  setsid "$PY" -m ferry operator run >"$DIR/operator.log" 2>&1 </dev/null &
echo $! >"$DIR/operator.pid"

echo "== applying examples/hello"
kubectl delete fjob "$JOB" -n "$NS" --ignore-not-found --wait=true --timeout=60s >/dev/null
kubectl apply -n "$NS" -f examples/hello/app.yaml -f examples/hello/job.yaml
if ! kubectl wait --for=condition=Ready "fjob/$JOB" -n "$NS" --timeout=180s; then
  kubectl get fjob "$JOB" -n "$NS" -o wide || true
  kubectl get events -n "$NS" --sort-by=.lastTimestamp | tail -20 || true
  echo "the Job did not finish; the operator's log is $DIR/operator.log" >&2
  exit 1
fi
echo
echo "== timeline (ferry timeline $JOB -n $NS)"
.venv/bin/ferry timeline "$JOB" -n "$NS"
echo
echo "== archived outputs"
uri=$(kubectl get fjob "$JOB" -n "$NS" -o jsonpath='{.status.outputs.uri}')
"$PY" - "$S3" "$AK" "$SK" "$uri" <<'EOF'
import json, sys
from ferry.clients.s3 import S3Client

endpoint, access, secret, uri = sys.argv[1:]
bucket, _, prefix = uri[len("s3://"):].partition("/")
s3 = S3Client(endpoint, access, secret)
print(uri)
for obj in s3.list_objects(bucket, prefix):
    print(f"  {obj.size:>6}  {obj.key[len(prefix):]}")
print("\n-- logs/app.log")
print(s3.get_bytes(bucket, prefix + "logs/app.log").decode(), end="")
manifest = json.loads(s3.get_bytes(bucket, prefix + "manifest.json"))
print("\n-- manifest.json (abridged)")
short = {k: manifest[k] for k in ("outcome", "parameters", "files", "log", "totals") if k in manifest}
print(json.dumps(short, indent=2))
EOF
echo
echo "== kubectl get fjob -n $NS -o wide"
kubectl get fjob -n "$NS" -o wide
echo
echo "demo finished in $(( $(date +%s) - t0 ))s; the pods ran as real containers on ferry-node."
echo "Explore:   export KUBECONFIG=$KUBECONFIG; kubectl get ferry -n $NS"
echo "           other examples: examples/README.md; operator log: $DIR/operator.log"
echo "Clean up:  make demo-down   (stops the operator and the cluster, real node included)"
