# Set-up: `make demo` or `make test`. Everything installs into .venv from this repo's own files.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# The CPU wheel of torch this project is developed against. Installed first, when the venv has no torch,
# so that the package's torch range never pulls a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0

.PHONY: venv torch install install-test demo test bench bench-pytest clean

$(PY):
	$(PYTHON) -m venv $(VENV)

venv: $(PY)

torch: venv
	@$(PY) -c "import torch" 2>/dev/null || $(PIP) install "$(TORCH_SPEC)"

install: torch
	$(PIP) install -e .

# disentanglement_lib is the fidelity oracle of tests/test_disentanglement_lib_parity.py. Its metric code needs
# only numpy/scipy/scikit-learn/gin/absl; its declared dependencies pin TensorFlow 1.x, so it goes in without them.
DLIB_SPEC ?= disentanglement-lib==1.5 gin-config==0.3.0 absl-py six future

# lightly and open_clip are the parity oracles of tests/test_dcl.py, test_memory_bank.py and test_siglip.py (and of
# benchmarks/losses_vs_libraries.py). The tests load only their loss modules, which need torch alone; their
# packages' __init__ import torchvision, whose PyPI wheel for this torch is a CUDA build that cannot load on the
# CPU torch, so they go in without their declared dependencies.
PEER_SPEC ?= lightly==1.6.0 open_clip_torch==3.3.0

install-test: torch
	$(PIP) install -e ".[test]"
	$(PIP) install --no-deps $(DLIB_SPEC)
	$(PIP) install --no-deps $(PEER_SPEC)

demo: install
	$(VENV)/bin/fastrepr demo

test: install-test
	$(PY) -m pytest

bench: install
	$(VENV)/bin/fastrepr bench

# the registry through pytest-benchmark: every entry, ours and baseline, at its smallest size
bench-pytest: install-test
	$(PY) -m pytest benchmarks --benchmark-only

clean:
	rm -rf build *.egg-info fastrepr/_C*.so
