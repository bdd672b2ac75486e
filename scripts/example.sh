#!/usr/bin/env bash
# README command 1: build seal and run a real `seal build` of examples/cluster.
# Builds the image twice to show the second run is served from the cache, then inspects it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-system-packages.sh
source scripts/env.sh
cargo build --release --bin seal
seal="$CARGO_TARGET_DIR/release/seal"
root=${SEAL_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/seal-example-store}
echo "== seal build (store: $root)"
"$seal" --root "$root" build --progress plain -t example-cluster:v1 examples/cluster
echo "== again: every step is served from the cache"
"$seal" --root "$root" build --progress plain -t example-cluster:v1 examples/cluster
echo "== seal images"
"$seal" --root "$root" images
echo "== seal save + skopeo inspect"
out=$(mktemp -d)
"$seal" --root "$root" save -o "$out/example-cluster.tar" example-cluster:v1
skopeo inspect "oci-archive:$out/example-cluster.tar" | head -20
rm -rf "$out"
