#!/usr/bin/env bash
# README command 1: build seal and run a real `seal build` of examples/cluster, offline.
#
# 1. starts Debian's docker-registry on 127.0.0.1:45555 (a throw-away storage dir);
# 2. builds the three tiny images of examples/images with seal and pushes them there;
# 3. builds examples/cluster, whose manifests, chart and imageList reference those images:
#    seal collects them into the cluster image's registry/ layer;
# 4. builds it again (everything cached, one manifest check per image), inspects and saves it;
# 5. stops the registry and removes what it started, whatever happened.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-system-packages.sh
source scripts/env.sh
cargo build --release --bin seal
seal="$CARGO_TARGET_DIR/release/seal"
root=${SEAL_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/seal-example-store}
registry=127.0.0.1:45555
work=$(mktemp -d)
registry_pid=""
cleanup() {
  if [ -n "$registry_pid" ]; then
    kill "$registry_pid" 2>/dev/null || true
    wait "$registry_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

if (exec 3<>"/dev/tcp/127.0.0.1/45555") 2>/dev/null; then
  echo "error: something already listens on $registry; stop it and run this again" >&2
  exit 1
fi
echo "== starting docker-registry on $registry"
cat >"$work/registry.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $work/registry
http:
  addr: $registry
EOF
/usr/bin/docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/45555") 2>/dev/null && break
  sleep 0.1
done

s() { "$seal" --root "$root" --insecure-registry "$registry" "$@"; }

echo "== building and pushing the images the cluster needs (in a separate, throw-away store)"
for image in web:1.0 metrics:0.7 pause:3.9; do
  name=${image%%:*}
  "$seal" --root "$work/seed-store" build --progress plain -t "$registry/example/$image" \
    "examples/images/$name" >/dev/null
  "$seal" --root "$work/seed-store" --insecure-registry "$registry" push "$registry/example/$image"
done

echo "== seal build (store: $root)"
s build --progress plain -t example-cluster:v1 examples/cluster
echo "== again: every step is served from the cache"
s build --progress plain -t example-cluster:v1 examples/cluster
echo "== seal images"
s images
echo "== the collected images (annotation sealer.image.container.images)"
s inspect example-cluster:v1 | python3 -c '
import json, sys
images = json.loads(json.load(sys.stdin)["annotations"]["sealer.image.container.images"])
for i in images:
    print(" ", i["image"])'
echo "== seal save + skopeo inspect"
s save -o "$work/example-cluster.tar" example-cluster:v1
skopeo inspect "oci-archive:$work/example-cluster.tar" | head -20
