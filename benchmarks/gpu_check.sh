#!/usr/bin/env bash
# The one script run on a lent GPU machine (torch, triton, pybind11, cmake and nvcc installed; no network):
# build, GPU tests, benchmarks. Logs and CSV land in $OUT (default ./gpu-out); at most 8 files come back
# from the device tool, so plots are drawn afterwards from the CSV (`fastrepr bench --plot-only`).
set -uo pipefail
OUT=${OUT:-./gpu-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
status=0

{ nvidia-smi; $PY -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"; } \
  > "$OUT/env.txt" 2>&1

echo "== install"
if ! $PY -m pip install --no-build-isolation --no-deps -e . > "$OUT/install.log" 2>&1; then
  tail -40 "$OUT/install.log"; exit 1
fi
$PY -m fastrepr info | tee -a "$OUT/env.txt"

echo "== pytest -m gpu"
timeout "${GPU_TEST_TIMEOUT:-240}" $PY -m pytest -m gpu -q -p no:cacheprovider tests 2>&1 | tee "$OUT/pytest-gpu.log" \
  || status=1

echo "== fastrepr bench"
timeout "${GPU_BENCH_TIMEOUT:-240}" $PY -m fastrepr bench --device cuda --results-dir "$OUT" --no-plots "$@" 2>&1 \
  | tee "$OUT/bench.log" || status=1

echo "== fastrepr disentangle (H100 bar: the whole suite at study sizes, rendering included, under 30 s)"
timeout "${GPU_DISENTANGLE_TIMEOUT:-240}" $PY -m fastrepr disentangle --representation moments --device cuda \
  --scale study 2>&1 | tee "$OUT/disentangle.log" || status=1
exit $status
