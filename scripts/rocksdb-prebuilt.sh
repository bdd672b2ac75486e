#!/usr/bin/env bash
# Builds RocksDB's static library once per machine and prints where it is.
#
# librocksdb-sys compiles ~350 C++ files (20+ minutes on 2 cores). Every profile (dev, test,
# bench, release) and every clone of the repo would otherwise repeat that. This script builds the
# library once, into a cache folder keyed by the librocksdb-sys version, and scripts/env.sh points
# ROCKSDB_LIB_DIR + ROCKSDB_STATIC at it, so the crate's build script only runs bindgen.
# Idempotent: a second call returns at once.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
version=$(sed -n '/^name = "librocksdb-sys"$/{n;s/^version = "\(.*\)"$/\1/p}' "$here/../Cargo.lock" 2>/dev/null || true)
version=${version:-0.19.0+11.8.1}
cache=${SEAL_BUILD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/seal-build}
dest="$cache/librocksdb-sys-$version"
if [ -f "$dest/librocksdb.a" ]; then
  echo "$dest"
  exit 0
fi
work="$cache/rocksdb-prebuild-$version"
mkdir -p "$work/src"
cat >"$work/Cargo.toml" <<TOML
[package]
name = "rocksdb-prebuild"
version = "0.0.0"
edition = "2021"
publish = false
[dependencies]
librocksdb-sys = { version = "=$version", default-features = false, features = ["static", "zstd", "bindgen-runtime"] }
[profile.release]
opt-level = 1
debug = false
[workspace]
TOML
echo 'fn main() { let _ = librocksdb_sys::rocksdb_options_create; }' >"$work/src/main.rs"
echo "building librocksdb.a $version once for this machine (about 20 minutes on 2 cores)..." >&2
# Its own target dir and no prebuilt lib: the caller's environment (scripts/env.sh exports
# CARGO_TARGET_DIR before calling us) must not redirect or short-circuit this build.
(cd "$work" && env -u ROCKSDB_LIB_DIR -u ROCKSDB_STATIC CARGO_TARGET_DIR="$work/target" cargo build --release --quiet)
lib=$(find "$work/target/release/build" -name librocksdb.a -path '*librocksdb-sys-*' | head -n1)
[ -n "$lib" ] || { echo "librocksdb.a not found under $work/target" >&2; exit 1; }
mkdir -p "$dest.tmp"
cp "$lib" "$dest.tmp/librocksdb.a"
rm -rf "$dest" && mv "$dest.tmp" "$dest"
rm -rf "$work"
echo "$dest"
