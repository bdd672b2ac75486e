#!/usr/bin/env bash
# Fuzz seal's untrusted-input boundaries with cargo-fuzz (libFuzzer + AddressSanitizer):
#   kubefile_parser  arbitrary bytes -> parse_checked -> lower (images refused); must not panic
#   layer_unpacker   arbitrary bytes as a layer tar -> unpack; must not panic or touch anything
#                    outside its destination
#
# Usage: scripts/fuzz.sh [TARGET] [SECONDS]
#   TARGET   kubefile_parser | layer_unpacker | all (default all, one after the other)
#   SECONDS  -max_total_time per target (default 600)
# Extra libFuzzer flags: FUZZ_ARGS="-max_len=65536 ...".
#
# Seeds (committed) are fuzz/corpus/<target>; the growing corpus is fuzz/target/corpus/<target>
# and crash artifacts go to fuzz/artifacts/<target>/ (both ignored by git). Reproduce a crash
# with `fuzz/target/x86_64-unknown-linux-gnu/release/<target> <artifact>`.
# Needs cargo-fuzz (`cargo install cargo-fuzz`); it runs on the stable toolchain through
# RUSTC_BOOTSTRAP=1. The fuzz crate is not part of the workspace and keeps its own target dir
# (sanitizer flags would invalidate the shared one). One fuzzer process at a time.
#
# As root, each run happens in a private mount namespace where every mount but fuzz/ is
# read-only and /tmp is a fresh tmpfs: a layer that escaped the unpacker could not change the
# machine (SEAL_FUZZ_NO_SANDBOX=1 skips this).
#
# Prints the executions, corpus size and crash artifacts of each target; exits non-zero when a
# target crashed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
target=${1:-all}
seconds=${2:-600}
case "$target" in
all) targets=(kubefile_parser layer_unpacker) ;;
kubefile_parser | layer_unpacker) targets=("$target") ;;
*)
    echo "usage: scripts/fuzz.sh [kubefile_parser|layer_unpacker|all] [SECONDS]" >&2
    exit 2
    ;;
esac

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is missing: cargo install cargo-fuzz" >&2
    exit 2
fi
# shellcheck source=scripts/env.sh
source scripts/env.sh # the prebuilt RocksDB (seal-engine links it)
unset CARGO_TARGET_DIR  # cargo fuzz's own fuzz/target, never the shared dir
export RUSTC_BOOTSTRAP=1
echo "== cargo fuzz build ${targets[*]}"
for t in "${targets[@]}"; do
    case $t in
        layer_unpacker) cargo fuzz build --features engine "$t" ;;
        *) cargo fuzz build "$t" ;;
    esac
done

# Run "$@" with everything but fuzz/ read-only and a private /tmp (root only).
sandboxed() {
    if [ "$(id -u)" -ne 0 ] || [ -n "${SEAL_FUZZ_NO_SANDBOX:-}" ]; then
        "$@"
        return
    fi
    unshare --mount --propagation private -- sh -c '
        set -e
        fuzz=$1
        shift
        mount --bind "$fuzz" "$fuzz"
        findmnt -rn -o TARGET,OPTIONS | while read -r mnt options; do
            [ "$mnt" = "$fuzz" ] && continue
            case "$options" in
            rw,* | rw) mount -o remount,bind,ro "$mnt" || exit 1 ;;
            esac
        done
        mount -t tmpfs -o size=2g,mode=1777 seal-fuzz-tmp /tmp
        export TMPDIR=/tmp
        exec "$@"
    ' sh "$root/fuzz" "$@"
}

triple=$(rustc -vV | sed -n "s/^host: //p")
status=0
for t in "${targets[@]}"; do
    seeds=$root/fuzz/corpus/$t
    corpus=$root/fuzz/target/corpus/$t
    artifacts=$root/fuzz/artifacts/$t
    mkdir -p "$corpus" "$artifacts"
    args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
        -artifact_prefix="$artifacts/")
    case "$t" in
    kubefile_parser) args+=(-max_len=4096 -dict="$root/fuzz/kubefile.dict") ;;
    layer_unpacker) args+=(-max_len=8192) ;;
    esac
    # shellcheck disable=SC2206
    args+=(${FUZZ_ARGS:-})
    before=$(find "$artifacts" -type f | wc -l)
    log=$root/fuzz/target/$t.log
    echo "== $t for ${seconds}s (log: fuzz/target/$t.log)"
    set +e
    sandboxed "$root/fuzz/target/$triple/release/$t" "${args[@]}" \
        "$corpus" "$seeds" 2>&1 | tee "$log" | grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)|^stat::|^==|ERROR|panicked|SUMMARY'
    rc=${PIPESTATUS[0]}
    set -e
    after=$(find "$artifacts" -type f | wc -l)
    echo "-- $t: libFuzzer exit $rc; corpus $(find "$corpus" -type f | wc -l) files" \
        "($(du -sh "$corpus" | cut -f1)); crash artifacts: $after ($((after - before)) new)"
    find "$artifacts" -type f -printf '   %p\n'
    if [ "$rc" -ne 0 ] || [ "$after" -gt "$before" ]; then
        status=1
    fi
done
exit $status
