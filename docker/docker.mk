# Image targets, included by the top-level Makefile (which defines VENV and $(VENV)/.installed*).
#
#   make image                  GPU images, one tag per algorithm: sagemaker-cv:<algorithm>
#   make image-cpu              CPU images: sagemaker-cv:<algorithm>-cpu
#   make push                   tag and push the GPU images to ECR (PUSH_TAGS chooses others)
#   make run-local              train on a local /opt/ml folder (ML_ROOT), with GPUs if the host has them
#   make test-container         build the CPU (and GPU) image and test it as SageMaker runs it
#
# Every variable below can be overridden on the command line, e.g.
#   make image-cpu BASE_IMAGE=local/python:3.11-slim DOCKER_BUILD_FLAGS=--network=host

DOCKER ?= docker
IMAGE_NAME ?= sagemaker-cv
BASE_IMAGE ?= python:3.11-slim
DOCKER_BUILD_FLAGS ?=
# One image tag per registered algorithm (the registry imports no dependency: any python3 reads it).
CV_ALGORITHMS := $(shell PYTHONPATH=src $(PYTHON) -c "from sagemaker_cv import algorithms; print(*algorithms.NAMES)")

# `make run-local` and `make push` act on these.
ALGORITHM ?= image-classification
ML_ROOT ?= demo/ml
PUSH_TAGS ?= $(CV_ALGORITHMS)

# ECR coordinates, from the AWS CLI's configuration unless given. Expanded lazily and at most
# once (the eval replaces the variable by its value on first use), so the AWS CLI runs only for
# `make push`, and once per value.
AWS ?= aws
AWS_REGION ?= $(eval AWS_REGION := $$(shell $$(AWS) configure get region))$(AWS_REGION)
AWS_ACCOUNT ?= $(eval AWS_ACCOUNT := $$(shell $$(AWS) sts get-caller-identity --query Account --output text))$(AWS_ACCOUNT)
ECR_REPOSITORY ?= $(IMAGE_NAME)
ECR_REGISTRY = $(AWS_ACCOUNT).dkr.ecr.$(AWS_REGION).amazonaws.com

# One build per algorithm: the tags differ only in the last layer (ENV SAGEMAKER_CV_ALGORITHM),
# so the second and third builds come entirely from the cache.
define build_image
	$(DOCKER) build $(DOCKER_BUILD_FLAGS) --build-arg BASE_IMAGE=$(BASE_IMAGE) --build-arg FLAVOR=$(1) \
		--build-arg ALGORITHM=$(2) -t $(IMAGE_NAME):$(3) .

endef

.PHONY: image image-cpu push run-local test-container

image:
	$(foreach alg,$(CV_ALGORITHMS),$(call build_image,gpu,$(alg),$(alg)))

image-cpu:
	$(foreach alg,$(CV_ALGORITHMS),$(call build_image,cpu,$(alg),$(alg)-cpu))

push:
	@test -n "$(AWS_REGION)" || { echo "make push: no AWS region: run 'aws configure' or pass AWS_REGION=..." >&2; exit 2; }
	@test -n "$(AWS_ACCOUNT)" || { echo "make push: no AWS account: configure AWS credentials or pass AWS_ACCOUNT=..." >&2; exit 2; }
	$(AWS) ecr get-login-password --region $(AWS_REGION) | $(DOCKER) login --username AWS --password-stdin $(ECR_REGISTRY)
	$(AWS) ecr describe-repositories --region $(AWS_REGION) --repository-names $(ECR_REPOSITORY) > /dev/null 2>&1 \
		|| $(AWS) ecr create-repository --region $(AWS_REGION) --repository-name $(ECR_REPOSITORY) > /dev/null
	@for tag in $(PUSH_TAGS); do \
		$(DOCKER) image inspect $(IMAGE_NAME):$$tag > /dev/null 2>&1 \
			|| { echo "make push: no local image $(IMAGE_NAME):$$tag: run 'make image' (or 'make image-cpu')" >&2; exit 2; }; \
		echo "pushing $(ECR_REGISTRY)/$(ECR_REPOSITORY):$$tag"; \
		$(DOCKER) tag $(IMAGE_NAME):$$tag $(ECR_REGISTRY)/$(ECR_REPOSITORY):$$tag && \
		$(DOCKER) push $(ECR_REGISTRY)/$(ECR_REPOSITORY):$$tag || exit 1; \
	done

# The example dataset, when ML_ROOT does not hold a job yet.
$(ML_ROOT)/input/config/hyperparameters.json: | $(VENV)/.installed
	$(VENV)/bin/python -m sagemaker_cv.tools.demos write --algorithm $(ALGORITHM) --root $(ML_ROOT)

# With GPUs (nvidia-smi answers) the GPU image and --gpus all; otherwise the CPU image, since the
# GPU image's mxnet cannot load without the driver. --network none: as SageMaker's network isolation.
HOST_HAS_GPU = $(shell nvidia-smi -L > /dev/null 2>&1 && echo yes)
RUN_IMAGE ?= $(if $(HOST_HAS_GPU),$(IMAGE_NAME):$(ALGORITHM),$(IMAGE_NAME):$(ALGORITHM)-cpu)
RUN_FLAGS ?= $(if $(HOST_HAS_GPU),--gpus all) --network none --shm-size 1g

run-local: $(ML_ROOT)/input/config/hyperparameters.json
	@$(DOCKER) image inspect $(RUN_IMAGE) > /dev/null 2>&1 \
		|| { echo "make run-local: no image $(RUN_IMAGE): run 'make $(if $(HOST_HAS_GPU),image,image-cpu)' first" >&2; exit 2; }
	$(DOCKER) run --rm $(RUN_FLAGS) -v $(abspath $(ML_ROOT)):/opt/ml $(RUN_IMAGE) train
	@echo "model artifacts: $(ML_ROOT)/model"

# The tests build their own images (tags sagemaker-cv-test:*) from BASE_IMAGE; see tests/container.
# SKIP_GPU_IMAGE=1 skips the GPU flavor's build and library check.
test-container: $(VENV)/.installed-test
	BASE_IMAGE=$(BASE_IMAGE) $(VENV)/bin/python -m pytest --tier container tests -v -rs --durations=0 -p no:cacheprovider
