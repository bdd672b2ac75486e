#!/usr/bin/env bash
# README command 2: the whole test suite. Installs what it needs (idempotently), prebuilds
# RocksDB once per machine, then runs formatting, lints and every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-system-packages.sh
# The real Helm, as a test oracle for tests/scan.rs (idempotent; that test skips without it).
if [ -f ../shared/tools/install-helm-oracle.sh ]; then
  bash ../shared/tools/install-helm-oracle.sh >/dev/null ||
    echo "warning: the Helm oracle could not be installed; tests/scan.rs skips its comparison" >&2
fi
source scripts/env.sh
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== cargo test"
cargo test --workspace --no-fail-fast 2>&1
