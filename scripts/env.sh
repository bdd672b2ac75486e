# Sourced by the project's scripts: one persistent target dir and the prebuilt RocksDB.
# Keeping the target dir outside the clone lets CI and every clone on this machine reuse builds.
_seal_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export SEAL_BUILD_CACHE=${SEAL_BUILD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/seal-build}
# LEAD'S NOTE (session-local, DO NOT COMMIT this hunk; `git checkout scripts/env.sh` before
# committing if you ever stage it): every git worktree on this machine must have its own target
# dir — cargo names workspace crates by their path relative to the workspace root, so worktrees
# sharing one target dir silently link each other's crates (seen: a build in /work/main linked
# /work/wt-cli12's seal-solver). This worktree's dir was seeded with the shared dependencies.
export CARGO_TARGET_DIR=$SEAL_BUILD_CACHE/target-copy12
ROCKSDB_LIB_DIR=$("$_seal_here/rocksdb-prebuilt.sh")
export ROCKSDB_LIB_DIR
export ROCKSDB_STATIC=1
unset _seal_here
