#!/usr/bin/env bash
# README command 2: the whole test suite. Installs what it needs (idempotently), prebuilds
# RocksDB once per machine, then runs formatting, lints and every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-system-packages.sh
source scripts/env.sh
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== cargo test"
cargo test --workspace --no-fail-fast 2>&1
