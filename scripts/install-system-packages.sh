#!/usr/bin/env bash
# Installs the Debian packages seal's build and tests need; does nothing when all are present.
#   libclang-dev      bindgen for RocksDB's C API
#   skopeo, umoci     independent checks of seal's OCI output (tests)
#   busybox-static    a tiny rootfs for RUN tests and benchmarks
#   runc              the container executor (container mode)
#   docker-registry   a local registry for registry tests
#   openssl           the registry tests' token server: its key, certificate and RS256 signatures
#   python3           the registry tests' token server, scripts/crash_test.py, benches/*.py
#   unzip             unpacks the Helm test oracle (scripts/install-helm.sh)
#   iproute2          `ip`, which lite-mode RUN tests run from the host to list interfaces
#   attr, libcap2-bin getfattr and getcap: what a RUN sees of a layer's xattrs (tests/fidelity.rs)
#   graphviz          `dot`: `seal build --graph FILE.svg`, and tests/graph.rs checks the DOT with it
#   tmux              tests/tty_view.rs runs a build in a real terminal and captures the pane
#   bubblewrap        the sandbox of buildbox-run, the remote executor of tests/remote.rs
#   groff-base        parses the manual pages `seal man` prints (tests/manual.rs)
#   curl              creates the S3 test bucket (tests/common/s3.rs)
#   openssh-server    the "cloud host" of tests/cloud.rs: sshd in a mount namespace of its own
# and from PyPI, when `moto_server` is not on PATH: moto[server], the S3 API the remote-cache
# tests talk to (tests/remote_cache.rs).
set -euo pipefail
packages=(libclang-dev skopeo umoci busybox-static runc docker-registry openssl python3 unzip iproute2 attr libcap2-bin graphviz tmux bubblewrap groff-base curl openssh-server)
if ! command -v moto_server >/dev/null 2>&1; then
  echo "installing: moto[server] (pip)" >&2
  python3 -m pip install -q 'moto[server]' >/dev/null || python3 -m pip install -q --break-system-packages 'moto[server]' >/dev/null
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
