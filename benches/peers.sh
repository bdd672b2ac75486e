#!/usr/bin/env bash
# Side-by-side benchmark: seal vs BuildKit (a private dockerd from Debian's docker.io, started
# and stopped by the script) vs Buildah, every scenario, interleaved in one run. Writes
# $CARGO_TARGET_DIR/bench/peers.{md,json}. Generated data lives in $SEAL_BENCH_WORK.
# usage: benches/peers.sh [--runs N] [--scenarios small,big,run,run-container,deep,deep-run,wide,cluster,ci]
# (`ci`: `small` and `cluster` on a fresh store with a warm remote cache; see benches/ci.py)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-system-packages.sh
missing=()
for p in docker.io buildah; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
source scripts/env.sh
cargo build --release --quiet --bin seal
work=${SEAL_BENCH_WORK:-$HOME/.cache/seal-bench}/peers
mkdir -p "$work"
python3 benches/peers.py --seal "$CARGO_TARGET_DIR/release/seal" --work "$work" --out "$CARGO_TARGET_DIR/bench" "$@"
