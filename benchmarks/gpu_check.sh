#!/usr/bin/env bash
# The prepared GPU check: everything that needs a GPU, in one run of under 8 minutes, from the
# source tree on a machine with Python, numpy, cupy, numba, pillow, pytest and torch but no
# package registry. Usage, from the repository root:
#
#     bash benchmarks/gpu_check.sh [OUT]        (OUT: results folder, default $OUT or gpu-check)
#
# Writes OUT/: nvidia-smi.txt, pytest-cuda.txt (the CUDA tests: real kernels through NVRTC),
# train/ (train.py --device cuda: a few hundred steps of zf at batch 128 on synthetic 224px
# images) and train.log, bench/ (the benchmark suite on the GPU, PyTorch/cuDNN as the peer) and
# summary.txt. Each step has its own time limit, so one that hangs cannot eat the others' time.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-${OUT:-gpu-check}}"
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export ZFRAW_CACHE="$OUT/cache"
summary="$OUT/summary.txt"
: > "$summary"

step() {  # step NAME SECONDS COMMAND...: run with a time limit, log its status and time
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  timeout "$limit" "$@"
  local rc=$?
  echo "$name: exit $rc in $((SECONDS - t0)) s (limit $limit s)" | tee -a "$summary"
}

(nvidia-smi || true) > "$OUT/nvidia-smi.txt" 2>&1
python -c "import cupy, numpy; print('cupy', cupy.__version__, 'numpy', numpy.__version__)" \
  >> "$summary" 2>&1
step "cuda tests" 150 python -m pytest -q -m cuda -p no:cacheprovider tests/test_kernels_cuda.py \
  tests/test_kernels.py > "$OUT/pytest-cuda.txt" 2>&1
tail -3 "$OUT/pytest-cuda.txt" >> "$summary"
# zf at 224 on the synthetic set (no data to carry): 2,560 images = 20 steps an epoch at 128;
# 10 epochs = 200 steps, with validation and checkpoints each epoch, as a real run.
step "train zf --device cuda" 200 python train.py --arch zf --data synthetic:2560 --epochs 10 \
  --batch-size 128 --init he --input-scale 0.015625 --device cuda --no-progress \
  --out "$OUT/train" --overwrite > "$OUT/train.log" 2>&1
tail -2 "$OUT/train.log" >> "$summary"
step "benchmarks" 240 python -m benchmarks.run --out "$OUT/bench" > "$OUT/bench.log" 2>&1
tail -1 "$OUT/bench.log" >> "$summary"
cat "$summary"
