#!/usr/bin/env bash
# Installs the Debian packages seal's build and tests need; does nothing when all are present.
#   libclang-dev      bindgen for RocksDB's C API
#   skopeo, umoci     independent checks of seal's OCI output (tests)
#   busybox-static    a tiny rootfs for RUN tests and benchmarks
#   runc              the container executor (container mode)
#   docker-registry   a local registry for registry tests
#   openssl           the registry tests' token server: its key, certificate and RS256 signatures
#   python3           the registry tests' token server, scripts/crash_test.py, benches/*.py, tests/support/alicloud_standin.py
#   unzip             unpacks the Helm test oracle (scripts/install-helm.sh)
#   iproute2          `ip`, which lite-mode RUN tests run from the host to list interfaces
#   attr, libcap2-bin getfattr and getcap: what a RUN sees of a layer's xattrs (tests/fidelity.rs)
#   graphviz          `dot`: `seal build --graph FILE.svg`, and tests/graph.rs checks the DOT with it
#   tmux              tests/tty_view.rs runs a build in a real terminal and captures the pane
#   bubblewrap        the sandbox of buildbox-run, the remote executor of tests/remote.rs
#   groff-base        parses the manual pages `seal man` prints (tests/manual.rs)
#   curl              creates the S3 test bucket (tests/common/s3.rs), reads the Alibaba stand-in's state
#   qemu-user-static, binfmt-support
#                     RUN for a foreign platform (`seal build --platform linux/arm64 --mode
#                     container`); tests/platforms_qemu.rs also needs an arm64 busybox, fetched
#                     below into /var/cache/seal-tests/busybox-arm64
#   openssh-server    the "cloud host" of tests/cloud.rs: sshd in a mount namespace of its own
#   erofs-utils       fsck.erofs and mkfs.erofs: the independent check of the snapshot images
#                     engine/src/layers/erofs.rs writes (its unit tests)
# and from PyPI, when `moto_server` is not on PATH: moto[server], the S3 API the remote-cache
# tests talk to (tests/remote_cache.rs).
set -euo pipefail
packages=(libclang-dev skopeo umoci busybox-static runc docker-registry openssl python3 unzip iproute2 attr libcap2-bin graphviz tmux bubblewrap groff-base curl qemu-user-static binfmt-support openssh-server erofs-utils)
if ! command -v moto_server >/dev/null 2>&1; then
  echo "installing: moto[server] (pip)" >&2
  python3 -m pip install -q 'moto[server]' >/dev/null || python3 -m pip install -q --break-system-packages 'moto[server]' >/dev/null
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

# Register qemu's binfmt_misc handlers where the package's postinst could not (no systemd
# in a container): Debian's files carry the F flag, so a container's RUN finds the emulator.
register_qemu() {
  local reg=/proc/sys/fs/binfmt_misc
  [ -w "$reg/register" ] || [ -n "$sudo" ] || return 0
  for conf in /usr/lib/binfmt.d/qemu-aarch64.conf /usr/lib/binfmt.d/qemu-arm.conf; do
    [ -f "$conf" ] || continue
    local name
    name=$(cut -d: -f2 "$conf")
    [ -e "$reg/$name" ] || $sudo sh -c "cat '$conf' > '$reg/register'" || true
  done
}

# An arm64 busybox for the qemu RUN test (not installable beside the amd64 one: one file).
fetch_arm64_busybox() {
  local dest=/var/cache/seal-tests/busybox-arm64
  [ -f "$dest" ] && return 0
  [ "$(dpkg --print-architecture)" = arm64 ] && return 0
  local tmp
  tmp=$(mktemp -d)
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    $sudo dpkg --add-architecture arm64
    $sudo apt-get update -qq
  fi
  (cd "$tmp" && apt-get download -qq busybox-static:arm64 && dpkg-deb -x busybox-static_*_arm64.deb x) &&
    $sudo mkdir -p "$(dirname "$dest")" && $sudo cp "$tmp/x/bin/busybox" "$dest"
  rm -rf "$tmp"
}

if [ ${#missing[@]} -eq 0 ]; then
  register_qemu
  fetch_arm64_busybox
  exit 0
fi
echo "installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
register_qemu
fetch_arm64_busybox
