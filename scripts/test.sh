#!/usr/bin/env bash
# README command 2: the whole test suite. Installs what it needs (idempotently), prebuilds
# RocksDB once per machine, then runs formatting, lints and every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-system-packages.sh
# The real Helm, the oracle of the Helm conformance suite and of tests/scan.rs (idempotent;
# those tests fail without it).
scripts/install-helm.sh >/dev/null
# buildbox-casd and buildbox-run, the Remote Execution API server of tests/remote.rs.
scripts/install-buildbox.sh >/dev/null
source scripts/env.sh
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== cargo test"
cargo test --workspace --no-fail-fast 2>&1
# Tests reading the shared corpus beside the repository are #[ignore]d: run them when it is here.
if [ -d ../shared/corpus ]; then
  echo "== ../shared/corpus is present: the corpus tests (cargo test --test scan -- --ignored)"
  cargo test --test scan --no-fail-fast -- --ignored 2>&1
else
  echo "== ../shared/corpus is absent: the corpus tests of tests/scan.rs were skipped"
fi
