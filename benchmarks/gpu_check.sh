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
#
# The interpreter: $PYTHON when set, else python3, else python (a GPU machine may have no plain
# `python`). The script prints it first, with the versions of numpy, cupy, numba and torch that
# it finds there.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-${OUT:-gpu-check}}"
if [ -n "${PYTHON:-}" ]; then
  PY="$PYTHON"
elif command -v python3 > /dev/null 2>&1; then
  PY=python3
elif command -v python > /dev/null 2>&1; then
  PY=python
else
  echo "gpu_check: no python3 or python on PATH; set PYTHON to the interpreter to use" >&2
  exit 2
fi
if ! command -v "$PY" > /dev/null 2>&1; then
  echo "gpu_check: PYTHON=$PY is not a command on this machine" >&2
  exit 2
fi
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export ZFRAW_CACHE="$OUT/cache"
summary="$OUT/summary.txt"
: > "$summary"

# The interpreter and what it has, first (a missing or broken package says why, in one line).
"$PY" -c '
import importlib, sys
print("python", sys.executable, sys.version.split()[0])
for name in ("numpy", "cupy", "numba", "torch"):
    try:
        print(name, importlib.import_module(name).__version__)
    except Exception as e:
        print(name, "not usable:", type(e).__name__, (str(e).splitlines() or [""])[0])
' 2>&1 | tee -a "$summary"

step() {  # step NAME SECONDS COMMAND...: run with a time limit, log its status and time
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  timeout "$limit" "$@"
  local rc=$?
  echo "$name: exit $rc in $((SECONDS - t0)) s (limit $limit s)" | tee -a "$summary"
}

(nvidia-smi || true) > "$OUT/nvidia-smi.txt" 2>&1
step "cuda tests" 150 "$PY" -m pytest -q -m cuda -p no:cacheprovider tests/test_kernels_cuda.py \
  tests/test_kernels.py > "$OUT/pytest-cuda.txt" 2>&1
tail -3 "$OUT/pytest-cuda.txt" >> "$summary"
# zf at 224 on the synthetic set (no data to carry): 2,560 images = 20 steps an epoch at 128;
# 10 epochs = 200 steps, with validation and checkpoints each epoch, as a real run.
step "train zf --device cuda" 200 "$PY" train.py --arch zf --data synthetic:2560 --epochs 10 \
  --batch-size 128 --init he --input-scale 0.015625 --device cuda --no-progress \
  --out "$OUT/train" --overwrite > "$OUT/train.log" 2>&1
tail -2 "$OUT/train.log" >> "$summary"
step "benchmarks" 240 "$PY" -m benchmarks.run --out "$OUT/bench" > "$OUT/bench.log" 2>&1
tail -1 "$OUT/bench.log" >> "$summary"
cat "$summary"
