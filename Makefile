# Two commands do all the set-up on a fresh machine:
#   make demo   train image classification on the built-in example dataset (CPU, a few minutes);
#               make demo ALGORITHM=object-detection or ALGORITHM=semantic-segmentation for the others
#   make test   the fast test tier (unit tests and one train -> artifacts -> reload per algorithm)
# Both create their own virtual environment in .venv.
#   make test-all       every tier, the one that fails fastest first (what CI runs; tests/tiers.py)
#   make test-slow | test-cluster | test-weights | test-container   one tier
#   make weights        download and import the pretrained weights into docker/weights (needs internet)

# Bash with pipefail: `make demo` pipes the job's log into tee, and a failed job must fail make.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -ec

VENV := .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
PIP_FLAGS ?=
# Every pytest run lists its 25 slowest tests (pyproject.toml) and writes no cache into the clone.
PYTEST := $(VENV)/bin/pytest -p no:cacheprovider
.PHONY: demo demo-algorithm test test-all test-slow test-cluster test-unit test-weights weights lint docs bench clean

# What running needs (the demo); the test tools on top of it for the test targets.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install $(PIP_FLAGS) --upgrade pip
	$(VENV)/bin/pip install $(PIP_FLAGS) -e '.[cpu]'
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(VENV)/bin/pip install $(PIP_FLAGS) -e '.[cpu,test]'
	touch $@

# make demo ALGORITHM=<any registered algorithm> [DEMO_ARGS="writer options"]: the algorithm's
# example-data writer, its job, and the best value of its tuning objective, all read from the
# registry (sagemaker_cv.tools.demos). An unknown ALGORITHM is refused before anything is
# installed or deleted (the registry imports no dependency).
ALGORITHM ?= image-classification
DEMO_ARGS ?=
DEMOS = -m sagemaker_cv.tools.demos

demo-algorithm:
	@PYTHONPATH=src $(PYTHON) $(DEMOS) check --algorithm $(ALGORITHM)

demo: demo-algorithm $(VENV)/.installed
	rm -rf demo
	$(PY) $(DEMOS) write --algorithm $(ALGORITHM) --root demo/ml $(DEMO_ARGS)
	$(VENV)/bin/sagemaker-cv train --algorithm $(ALGORITHM) --ml-root demo/ml --model-archive demo/model.tar.gz | tee demo/train.log
	@echo
	@$(PY) $(DEMOS) best --algorithm $(ALGORITHM) --log demo/train.log
	@echo "Model archive: $(CURDIR)/demo/model.tar.gz (model files in demo/ml/model)"

test: $(VENV)/.installed-test
	$(PYTEST) -q --tier fast tests

test-slow test-cluster: $(VENV)/.installed-test
	$(PYTEST) -q --tier $(@:test-%=%) tests

test-unit: $(VENV)/.installed-test
	$(PYTEST) -q tests/unit

# Every tier in the order that fails fastest, each part timed; the first failing part stops it.
# The container tier needs a Docker engine and BASE_IMAGE (see docker/docker.mk).
TIERS := fast slow cluster weights container
test-all:
	@started=$$SECONDS; for tier in $(TIERS); do \
		target=test-$$tier; [ $$tier = fast ] && target=test; \
		echo "=== make test-all: $$tier tier (at $$((SECONDS - started)) s)"; \
		part=$$SECONDS; $(MAKE) --no-print-directory $$target || { echo "=== make test-all: $$tier tier failed after $$((SECONDS - part)) s"; exit 1; }; \
		echo "=== make test-all: $$tier tier passed in $$((SECONDS - part)) s"; \
	done; echo "=== make test-all: every tier passed in $$((SECONDS - started)) s"

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

# Regenerate the generated tables (hyperparameters from the schema, environment variables from
# contract.environment); a test checks they match.
docs: $(VENV)/.installed
	$(PY) -m sagemaker_cv.tools.docs .

# Pretrained weights for use_pretrained_model=1: downloads each network's public source from the
# Hugging Face hub (huggingface_hub, the `weights` extra) and imports it into docker/weights/, which
# `make image` bakes into $MXNET_HOME/models. WEIGHTS picks networks (default: all nine, ~1 GB), e.g.
#   make weights WEIGHTS="resnet50_v1s vgg16_atrous"
WEIGHTS ?=
weights: $(VENV)/.installed
	$(VENV)/bin/pip install $(PIP_FLAGS) -e '.[cpu,test,weights]'
	$(PY) -m sagemaker_cv.tools.weights fetch --models-dir docker/weights $(WEIGHTS)

# The weight tests compare converted networks with their sources built in torch/timm/torchvision,
# which live in an environment of their own: gluoncv 0.10.5 refuses to import next to torch >= 2.
# The tests themselves run in .venv and call that environment's python (tests/weights/conftest.py).
WEIGHTS_VENV := .venv-weights
$(WEIGHTS_VENV)/.installed: tests/weights/requirements.txt
	rm -rf $(WEIGHTS_VENV)
	$(PYTHON) -m venv $(WEIGHTS_VENV)
	$(WEIGHTS_VENV)/bin/pip install $(PIP_FLAGS) -r tests/weights/requirements.txt
	touch $@

test-weights: $(VENV)/.installed-test $(WEIGHTS_VENV)/.installed
	SAGEMAKER_CV_TORCH_PYTHON=$(abspath $(WEIGHTS_VENV))/bin/python $(PYTEST) -q --tier weights tests

bench: $(VENV)/.installed
	$(PY) bench/bench_classification.py
	$(PY) bench/bench_distributed.py
	$(PY) bench/bench_memory.py

clean:
	rm -rf demo .pytest_cache

include docker/docker.mk
