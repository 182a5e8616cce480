#!/usr/bin/env bash
# Times the hybrid network (36 services x 20 ticks, one thread) in seer-predictor
# (tch/libtorch and the pure-Rust engine of seer-infer) and in PyTorch eager with
# the same weights, interleaved, and checks that all give the same probabilities. Not part of the test suite: it
# installs PyTorch from PyPI (torch 2.13.0 with its CUDA wheels, ~5 GB) into
# .bench-venv/ on first use.
# Usage: scripts/bench-torch.sh [ROUNDS] [ITERATIONS]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
rounds="${1:-5}"
iters="${2:-2000}"
venv="${BENCH_VENV:-$root/.bench-venv}"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import torch' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check torch==2.13.0 numpy
fi
bash scripts/install-libtorch.sh
cargo build --release -q -p seer-predictor
bin="${CARGO_TARGET_DIR:-$root/target}/release/seer-predictor"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
model="$tmp/hybrid36.seer"
"$bin" bench --arch hybrid --services 36 --window 20 --iterations 10 --save "$model" --json >/dev/null
for r in $(seq "$rounds"); do
    OMP_NUM_THREADS=1 "$bin" bench --model "$model" --iterations "$iters" --json >"$tmp/rust-$r.json"
    OMP_NUM_THREADS=1 "$venv/bin/python" predictor/scripts/eager_bench.py "$model" "$tmp/rust-$r.json" "$iters" >"$tmp/py-$r.json"
done
python3 - "$tmp" "$rounds" <<'PY'
import json, statistics, sys
d, n = sys.argv[1], int(sys.argv[2])
rust = [json.load(open(f"{d}/rust-{r}.json")) for r in range(1, n + 1)]
py = [json.load(open(f"{d}/py-{r}.json")) for r in range(1, n + 1)]
def med(rows, key, i):
    return statistics.median(r[key][i] for r in rows)
print(f"hybrid 36x20, batch 1, one thread, median of {n} interleaved rounds (p50 / p99 µs):")
print(f"  seer-predictor (tch) full window : {med(rust,'full_window_us',0):8.1f} / {med(rust,'full_window_us',1):8.1f}")
print(f"  {py[0]['impl']:<31}: {med(py,'full_window_us',0):8.1f} / {med(py,'full_window_us',1):8.1f}")
print(f"  seer-predictor per tick, cached  : {med(rust,'stream_exact_us',0):8.1f} / {med(rust,'stream_exact_us',1):8.1f}")
print(f"  seer-predictor per tick, stateful: {med(rust,'stream_stateful_us',0):8.1f} / {med(rust,'stream_stateful_us',1):8.1f}")
print(f"  Rust engine full window          : {med(rust,'engine_full_window_us',0):8.1f} / {med(rust,'engine_full_window_us',1):8.1f}")
print(f"  Rust engine per tick, cached     : {med(rust,'engine_stream_exact_us',0):8.1f} / {med(rust,'engine_stream_exact_us',1):8.1f}")
print(f"  Rust engine per tick, stateful   : {med(rust,'engine_stream_stateful_us',0):8.1f} / {med(rust,'engine_stream_stateful_us',1):8.1f}")
print(f"  largest probability difference Rust engine vs tch: {max(r['engine_max_diff'] for r in rust):.2e}")
print(f"  largest probability difference tch vs PyTorch: {max(p['max_abs_diff_vs_rust'] for p in py):.2e}")
PY
