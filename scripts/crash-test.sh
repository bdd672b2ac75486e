#!/usr/bin/env bash
# Crash safety check (issue 5): 50 builds killed with SIGKILL at random moments, then
# `seal fsck` must be clean and a final build must reuse every step that had completed.
# usage: scripts/crash-test.sh [--rounds N] [--seed S]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-system-packages.sh
source scripts/env.sh
cargo build --quiet --bin seal
python3 scripts/crash_test.py --seal "$CARGO_TARGET_DIR/debug/seal" "$@"
