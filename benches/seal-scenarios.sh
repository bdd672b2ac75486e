#!/usr/bin/env bash
# Runs the `small`, `big`, `run`, `wide`, `cluster` and `multi` scenarios of BENCHMARKS.md for seal (cold, noop,
# change1, touch1; `big` also times the floor pipeline over its bytes, `cluster` counts registry
# requests) and writes target/bench/seal-scenarios.{md,json}. Generated data lives in
# $SEAL_BENCH_WORK (default ~/.cache/seal-bench), made once with a fixed seed and never committed.
# usage: benches/seal-scenarios.sh [--runs N] [--scenarios small,big,run,wide,cluster,multi]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-system-packages.sh
# The floor pipeline's tools (b3sum, zstd; openssl comes with the system packages).
missing=()
for p in b3sum zstd; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
source scripts/env.sh
cargo build --release --quiet --bin seal
work=${SEAL_BENCH_WORK:-$HOME/.cache/seal-bench}
mkdir -p "$work"
python3 benches/scenarios.py --seal "$CARGO_TARGET_DIR/release/seal" --work "$work" --out "$CARGO_TARGET_DIR/bench" "$@"
