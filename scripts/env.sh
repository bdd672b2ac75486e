# Sourced by the project's scripts: one persistent target dir and the prebuilt RocksDB.
# Keeping the target dir outside the clone lets CI and every clone on this machine reuse builds.
_seal_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export SEAL_BUILD_CACHE=${SEAL_BUILD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/seal-build}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$SEAL_BUILD_CACHE/target}
ROCKSDB_LIB_DIR=$("$_seal_here/rocksdb-prebuilt.sh")
export ROCKSDB_LIB_DIR
export ROCKSDB_STATIC=1
unset _seal_here
