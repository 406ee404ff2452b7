#!/usr/bin/env bash
# The one script run on a lent GPU machine (torch, triton, pybind11, cmake and nvcc installed; no network):
# build, GPU tests, benchmarks, in one call. Logs and CSV land in $OUT (default ./gpu-out). At most 8 files
# come back from the device tool, so plots are drawn afterwards from the CSV (`fastrepr bench --plot-only`).
#   OUT=... benchmarks/gpu_check.sh [extra `fastrepr bench` arguments, e.g. --op nt_xent]
# Budget: a device session has ~15 minutes including the machine's start; each phase has its own timeout.
set -uo pipefail
OUT=${OUT:-./gpu-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
status=0

{ nvidia-smi; $PY -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"; } \
  > "$OUT/env.txt" 2>&1

echo "== install (native build)"
if ! $PY -m pip install --no-build-isolation --no-deps -e . > "$OUT/install.log" 2>&1; then
  tail -40 "$OUT/install.log"; exit 1
fi
$PY -m fastrepr info | tee -a "$OUT/env.txt"

echo "== pytest: gpu-marked tests (large shapes) and every triton-backend test on CUDA tensors"
timeout "${GPU_TEST_TIMEOUT:-240}" $PY -m pytest -q -p no:cacheprovider tests -m gpu 2>&1 | tee "$OUT/pytest.log" || status=1
timeout "${GPU_TEST_TIMEOUT:-240}" $PY -m pytest -q -p no:cacheprovider tests -k triton -x 2>&1 | tail -15 \
  | tee -a "$OUT/pytest.log" || status=1

echo "== fastrepr bench"
if [ "$#" -gt 0 ]; then ops=("$@"); else
  ops=(--op pairwise_abs_diff_mean --op nt_xent --op nt_xent_vs_compiled --op info_nce --op sup_con
       --op analogy_3cosadd --op analogy_3cosmul --op most_similar --op sgns_step --op word2vec_trainer); fi
timeout "${GPU_BENCH_TIMEOUT:-300}" $PY -m fastrepr bench --device cuda --budget 0.5 --results-dir "$OUT" \
  --no-plots "${ops[@]}" 2>&1 | tee "$OUT/bench.log" || status=1

echo "== fastrepr disentangle (H100 bar: the whole suite at study sizes, rendering included, under 30 s)"
timeout "${GPU_DISENTANGLE_TIMEOUT:-240}" $PY -m fastrepr disentangle --representation moments --device cuda \
  --scale study 2>&1 | tee "$OUT/disentangle.log" || status=1
echo "== beta-VAE family (issue 15): fused reconstruction and the streaming total-correlation kernel"
timeout "${GPU_VAE_TIMEOUT:-120}" $PY -m fastrepr bench --device cuda --budget 0.5 --results-dir "$OUT" --no-plots \
  --op beta_vae_loss --op total_correlation 2>&1 | tee "$OUT/bench_vae.log" || status=1
echo "== issue 14 (clusterability, retrieval): silhouette / recall@K / kmeans_nmi on cuda tensors (torch path)"
timeout "${GPU_I14B_TIMEOUT:-120}" $PY -m fastrepr bench --device cuda --budget 0.5 --results-dir "$OUT" --no-plots \
  --op silhouette --op recall_at_k --op kmeans_nmi 2>&1 | tee "$OUT/bench_i14b.log" || status=1
echo "== issue 14 geometry: uniformity Triton fwd/bwd tests, then bench rows (uniformity, cka_linear)"
timeout "${GPU_TEST_TIMEOUT:-240}" $PY -m pytest -q -p no:cacheprovider tests/test_uniformity.py 2>&1 | tail -5 \
  | tee -a "$OUT/pytest.log" || status=1
timeout "${GPU_BENCH_TIMEOUT:-300}" $PY -m fastrepr bench --device cuda --budget 0.5 --results-dir "$OUT" \
  --no-plots --op uniformity --op cka_linear 2>&1 | tee -a "$OUT/bench.log" || status=1
echo "== issue 13: siglip (fastrepr bench)"
timeout "${GPU_BENCH_TIMEOUT:-300}" $PY -m fastrepr bench --device cuda --budget 0.5 --results-dir "$OUT" \
  --no-plots --op siglip --op siglip_forward 2>&1 | tee "$OUT/bench_siglip.log" || status=1
echo "== issue 13: siglip Triton fwd/bwd kernels on CUDA tensors (every impl vs the float64 oracle, gpu-marked large shapes)"
timeout "${GPU_TEST_TIMEOUT:-240}" $PY -m pytest -q -p no:cacheprovider tests/test_siglip.py 2>&1 | tail -5 \
  | tee -a "$OUT/pytest.log" || status=1
exit $status
