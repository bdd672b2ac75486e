#!/usr/bin/env bash
# Runs the `small`, `big`, `run` and `wide` scenarios of BENCHMARKS.md for seal (cold, noop, change1, touch1)
# and writes target/bench/seal-scenarios.{md,json}. Generated data lives in $SEAL_BENCH_WORK
# (default ~/.cache/seal-bench), made once with a fixed seed and never committed.
# usage: benches/seal-scenarios.sh [--runs N] [--scenarios small,big,run,wide]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-system-packages.sh
source scripts/env.sh
cargo build --release --quiet --bin seal
work=${SEAL_BENCH_WORK:-$HOME/.cache/seal-bench}
mkdir -p "$work"
python3 benches/scenarios.py --seal "$CARGO_TARGET_DIR/release/seal" --work "$work" --out "$CARGO_TARGET_DIR/bench" "$@"
