# zfraw: the two set-up commands are `make demo` (train a small ZFNet on the built-in dataset and
# write the visual report) and `make test` (the test suite). Both build their own virtualenv.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: test test-all test-gpu gpu-check demo bench nvcc-check clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# The demo: a zf-32 at a quarter of the paper's width on the built-in synthetic dataset (8,000
# 64x64 images of 10 shapes, seen at 32x32), He initialisation, inputs scaled by 1/64, no
# dropout at this width, lr 0.01 stepped down 10x at epoch 32; then the visual report.
DEMO_OUT ?= runs/demo
DEMO_TRAIN = --arch zf-32 --width 0.25 --data synthetic:8000 --epochs 40 --batch-size 32 \
	--lr 0.01 --schedule step --lr-step 32 --init he --input-scale 0.015625 --dropout 0
demo: $(STAMP)
	$(PY) train.py $(DEMO_TRAIN) --out $(DEMO_OUT) $(if $(wildcard $(DEMO_OUT)/last.npz),--resume,)
	$(PY) -m zfraw.report --run $(DEMO_OUT)
	@echo "report: $(DEMO_OUT)/report/index.html"

test: $(STAMP)
	@$(MAKE) --no-print-directory nvcc-check
	$(PY) -m pytest -q

test-all: $(STAMP)
	$(PY) -m pytest -q -m ''

# On a GPU machine (no registry there): PYTHONPATH=. python -m pytest -q -m cuda
test-gpu: $(STAMP)
	$(PY) -m pytest -q -m cuda

# Everything that needs a GPU, in one run (on a GPU machine without a registry: from the source
# tree, no virtualenv): the CUDA tests, a train.py --device cuda run, the GPU benchmarks.
gpu-check:
	bash benchmarks/gpu_check.sh

# Compile every CUDA kernel when nvcc is present, so a syntax error fails CI without a GPU.
nvcc-check:
	@if command -v nvcc >/dev/null 2>&1 && ls kernels/cuda/*.cu >/dev/null 2>&1; then \
	  for f in kernels/cuda/*.cu; do \
	    echo "nvcc -c $$f"; nvcc -std=c++17 -arch=sm_90 -c $$f -o /dev/null || exit 1; \
	  done; \
	else echo "nvcc-check: no nvcc or no .cu files, skipped"; fi

# The benchmark suite (`make bench BENCH_ARGS=--quick` for a short run). PyTorch, the peer
# column, is installed only from a local wheel folder (this project's machines have one), never
# downloaded; without it the peer column is left out.
TORCH_WHEELS ?= /opt/wheels
bench: $(STAMP)
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet --no-index \
	  --find-links $(TORCH_WHEELS) torch 2>/dev/null || echo "bench: no torch wheel, peer column skipped"
	@$(PY) -c "import torch" 2>/dev/null && ! $(PY) -c "import captum" 2>/dev/null && \
	  $(PY) -m pip install --quiet --no-deps captum || true
	$(PY) -m benchmarks.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
