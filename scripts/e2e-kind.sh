#!/usr/bin/env bash
# make e2e: kind cluster + image + deploy + tests/e2e, then delete the cluster.
# Without kind or a container engine it prints exactly what is missing and exits non-zero.
set -euo pipefail
image="${1:-tradesense-operator:dev}"
cluster="${KIND_CLUSTER:-tradesense-e2e}"
missing=()
command -v kind >/dev/null 2>&1 || missing+=("kind (https://kind.sigs.k8s.io; not packaged for Debian)")
command -v kubectl >/dev/null 2>&1 || missing+=("kubectl")
if command -v docker >/dev/null 2>&1; then
  docker info >/dev/null 2>&1 || missing+=("a running Docker engine ('docker info' failed: the docker CLI is present but no daemon answers)")
elif command -v podman >/dev/null 2>&1; then
  export KIND_EXPERIMENTAL_PROVIDER=podman
else
  missing+=("a container engine (docker or podman)")
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "make e2e cannot run here; missing:" >&2
  for m in "${missing[@]}"; do echo "  - $m" >&2; done
  echo "The e2e suite can still run against any cluster: KUBECONFIG=/path/to/kubeconfig .venv/bin/pytest tests/e2e -m e2e" >&2
  exit 2
fi
cleanup() { kind delete cluster --name "$cluster" >/dev/null 2>&1 || true; }
trap cleanup EXIT
kind create cluster --name "$cluster" --wait 120s
kubeconfig="$(mktemp)"
kind get kubeconfig --name "$cluster" > "$kubeconfig"
docker build -t "$image" .
kind load docker-image "$image" --name "$cluster"
# tests/e2e installs deploy/ itself (namespace first, server-side apply, image from TSO_E2E_IMAGE) and cleans up.
KUBECONFIG="$kubeconfig" TSO_E2E_IMAGE="$image" .venv/bin/python -m pytest -q -m e2e tests/e2e -p no:cacheprovider
