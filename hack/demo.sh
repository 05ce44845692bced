#!/usr/bin/env bash
# make demo: bring up the local cluster with MinIO, install Ferry's CRDs, run the operator,
# apply the hello example, wait for it, print its timeline and archived outputs.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cache/ferry/bin:$PATH"
DIR="${FERRY_CLUSTER_DIR:-$PWD/.cluster}"
t0=$(date +%s)

if [ -f "$DIR/state.json" ] && hack/cluster status --dir "$DIR" 2>/dev/null | grep -q true; then
  echo "== reusing the local cluster in $DIR"
else
  echo "== starting the local cluster (etcd, kube-apiserver, controller-manager, scheduler, kwok nodes, MinIO)"
  rm -rf "$DIR"
  hack/cluster up --dir "$DIR"
fi
export KUBECONFIG="$DIR/kubeconfig"
kubectl apply --server-side --force-conflicts -f crds/ >/dev/null
kubectl wait --for=condition=Established crd/jobs.ferry.dev crd/apps.ferry.dev --timeout=60s >/dev/null

NS=ferry-demo
kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
for _ in $(seq 50); do kubectl get serviceaccount default -n "$NS" >/dev/null 2>&1 && break; sleep 0.2; done
creds=$(.venv/bin/python -c "import json;s=json.load(open('$DIR/state.json'));print(s['minio_access_key'], s['minio_secret_key'], s['minio_port'])")
read -r AK SK PORT <<<"$creds"
kubectl create secret generic ferry-s3 -n "$NS" --from-literal=accessKey="$AK" --from-literal=secretKey="$SK" \
  --dry-run=client -o yaml | kubectl apply -f - >/dev/null

echo "== starting the operator (log: $DIR/operator.log)"
if [ -f "$DIR/operator.pid" ] && kill -0 "$(cat "$DIR/operator.pid")" 2>/dev/null; then
  kill "$(cat "$DIR/operator.pid")"; sleep 1
fi
METRICS_PORT=$(.venv/bin/python -c "import socket;s=socket.socket();s.bind(('127.0.0.1',0));print(s.getsockname()[1])")
FERRY_KUBECONFIG="$KUBECONFIG" FERRY_HEALTH_PORT=0 FERRY_METRICS_PORT="$METRICS_PORT" FERRY_DEFAULT_S3_ENDPOINT="http://127.0.0.1:$PORT" \
  setsid .venv/bin/python -m ferry operator run >"$DIR/operator.log" 2>&1 &
echo $! >"$DIR/operator.pid"

echo "== applying examples/hello"
kubectl delete fjob hello-1 -n "$NS" --ignore-not-found --wait=true >/dev/null
kubectl apply -n "$NS" -f examples/hello/app.yaml -f examples/hello/job.yaml
kubectl wait --for=condition=Ready fjob/hello-1 -n "$NS" --timeout=180s
echo
kubectl get fapp,fjob -n "$NS" -o wide
echo
echo "== timeline"
KUBECONFIG="$KUBECONFIG" .venv/bin/ferry timeline hello-1 -n "$NS"
echo
echo "== archived outputs (status.outputs)"
kubectl get fjob hello-1 -n "$NS" -o jsonpath='{.status.outputs}'; echo
echo
echo "== operator metrics (http://127.0.0.1:$METRICS_PORT/metrics)"
curl -s "http://127.0.0.1:$METRICS_PORT/metrics" | grep -E '^ferry_(jobs|job_transitions_total|api_requests_total)' | head -20
echo
echo "demo finished in $(( $(date +%s) - t0 ))s."
echo "Pods on this cluster's kwok nodes are simulated: the data path runs for real on the local"
echo "kubelet node (docs/development.md). Explore with: export KUBECONFIG=$KUBECONFIG"
echo "Clean up with: make demo-down   (stops the operator and the cluster)"
