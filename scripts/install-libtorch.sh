#!/usr/bin/env bash
# Installs libtorch 2.13.0 (what tch 0.26 expects) from the PyPI wheels into
# .libtorch/ at the repository root, unless .libtorch/torch is already there.
# Idempotent: a second run does nothing. Usage: scripts/install-libtorch.sh
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$root/.libtorch"

if [ -d "$dest/torch/lib" ] && [ -f "$dest/torch/lib/libtorch_cpu.so" ]; then
    exit 0
fi

python="${PYTHON:-python3}"
# A half-finished earlier install is removed first, so the result is never a mix.
rm -rf "$dest.partial"
"$python" -m pip install --quiet --disable-pip-version-check --no-deps \
    --target "$dest.partial" \
    torch==2.13.0 nvidia-cuda-runtime==13.0.96 nvidia-cuda-cupti==13.0.85
rm -rf "$dest"
mv "$dest.partial" "$dest"
echo "libtorch installed in $dest/torch"
