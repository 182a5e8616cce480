#!/usr/bin/env bash
# Seer's whole test suite, from a fresh clone: installs what is missing, builds
# every crate and runs every test (kernel tests need root; they say SKIPPED
# otherwise). Tests that read ../shared/data say SKIPPED when it is absent.
#
# Tests that measure rates or slowdowns (probe specificity, HTB rates, CPU quota
# throughput) run afterwards one at a time, so the rest of the suite does not
# disturb their measurements.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup.sh || exit 1
# A one-shot build gains nothing from incremental caches and they cost GiBs.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
target="${CARGO_TARGET_DIR:-$root/target}"
mkdir -p "$target"
free_gib=$(( $(df --output=avail -k "$target" | tail -1) / 1048576 ))
if [ "$free_gib" -lt 8 ]; then
    echo "test: only ${free_gib} GiB free under $target; a clean build needs about 8" >&2
    exit 1
fi
cargo build --workspace --all-targets || exit 1
timed='binary(validation) | binary(traffic) | binary(real_v1)'
rc=0
cargo nextest run --workspace --no-fail-fast -E "not ($timed)" || rc=1
cargo nextest run --workspace --no-fail-fast -j 1 -E "$timed" || rc=1
cargo test --workspace --doc || rc=1
scripts/check-leftovers.sh || rc=1
exit $rc
