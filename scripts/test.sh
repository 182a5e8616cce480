#!/usr/bin/env bash
# Seer's whole test suite, from a fresh clone: installs what is missing, builds
# every crate and runs every test (kernel tests need root; they say SKIPPED
# otherwise). Tests that read ../shared/data say SKIPPED when it is absent.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup.sh
cargo build --workspace --all-targets
cargo nextest run --workspace --no-fail-fast
cargo test --workspace --doc
scripts/check-leftovers.sh
