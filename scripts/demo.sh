#!/usr/bin/env bash
# Seer's main job from a fresh clone: installs what is missing, builds, and runs
# `seer demo` (a simulated Social Network under contention, with and without Seer).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup.sh
cargo build --release -p seer
exec target/release/seer demo "$@"
