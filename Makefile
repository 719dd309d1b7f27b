# Two commands do everything on a fresh machine:
#   make quickstart   set up, then SFT cold start + GRPO quickstart on CPU (the main job)
#   make test         set up, then the whole test suite (fast tests, then slow end-to-end tests)
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.installed

.PHONY: setup quickstart test test-fast bench clean

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

bench: setup
	for f in benchmarks/*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

clean:
	rm -rf runs outputs .pytest_cache
