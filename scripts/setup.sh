#!/usr/bin/env bash
# Installs what Seer's build, tests and demo need on a fresh Debian machine, and
# nothing that is already there: Debian packages used by the kernel tests, and
# libtorch (from the PyPI wheel) for seer-predictor. Idempotent.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# fuse3: the resctrl emulator's unmount helper (fusermount3); iproute2: ip netns,
# veth and tc for the kernel tests; procps: ps/pgrep. (The HTB rate tests bring
# their own TCP sender, so iperf3 is not needed.)
need=()
for pkg in fuse3 iproute2 procps; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
    echo "setup: installing ${need[*]}"
    if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

"$root/scripts/install-libtorch.sh"

if ! cargo nextest --version >/dev/null 2>&1; then
    echo "setup: installing cargo-nextest"
    cargo install --locked cargo-nextest
fi
