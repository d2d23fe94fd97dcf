# The SageMaker image: `docker run IMAGE train` (what a training job runs; no argument trains too)
# and `docker run IMAGE serve` (what an endpoint and a batch transform run), one entrypoint.
#
#   docker build -t sagemaker-cv:image-classification .                  # GPU (mxnet-cu112)
#   docker build --build-arg FLAVOR=cpu -t sagemaker-cv:image-classification-cpu .
#   docker build --build-arg ALGORITHM=object-detection -t sagemaker-cv:object-detection .
#
# Build args:
#   BASE_IMAGE  a Debian-based Python 3.11 image (default python:3.11-slim)
#   FLAVOR      gpu (default; needs an NVIDIA GPU and driver at run time) or cpu
#   ALGORITHM   image-classification (default), object-detection or semantic-segmentation;
#               the default of the CLI's --algorithm, so one Dockerfile gives three images
#   EXTRAS      optional features, comma-separated names of pyproject's optional-dependencies
#               (default none); EXTRAS=onnx adds onnx + onnxruntime (~150 MB) for
#               `sagemaker-cv export-onnx` and SAGEMAKER_CV_EXPORT_ONNX=1 (docs/onnx.md)
#
# Layers go from least to most often changed (system packages, Python dependencies, weights,
# source, algorithm), so editing src/ rebuilds only the last, small layers.

ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ARG FLAVOR=gpu
ARG EXTRAS=""

# mxnet's wheels link libquadmath (through their bundled libgfortran) and libgomp, which slim
# images lack.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libquadmath0 libgomp1 \
 && rm -rf /var/lib/apt/lists/*

# No pip cache in the layers; unbuffered output so log lines (and the metrics parsed from them)
# reach CloudWatch when they happen.
ENV PATH=/opt/venv/bin:$PATH \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1

COPY pyproject.toml docker/requirements-gpu.txt docker/install-deps.sh /tmp/deps/
RUN sh /tmp/deps/install-deps.sh "$FLAVOR" /tmp/deps "$EXTRAS" && rm -rf /tmp/deps

# The NVIDIA container runtime reads these to mount the driver (libcuda.so.1) and all GPUs. They
# are harmless in the CPU flavor, where nothing loads CUDA.
ENV NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    MXNET_HOME=/opt/mxnet

# Pretrained GluonCV weights (use_pretrained_model=1 with no network access): whatever params files
# docker/weights/ holds when the image is built. Empty in git: `make weights` fills it from public
# sources (docker/weights/README.md).
COPY docker/weights/ /opt/mxnet/models/

COPY docker/check-libs.sh /opt/sagemaker-cv/
# Fail the build, not the first training job, when a library is missing.
RUN sh /opt/sagemaker-cv/check-libs.sh

COPY pyproject.toml /opt/sagemaker-cv/
COPY src/ /opt/sagemaker-cv/src/
# --no-deps: every dependency is already in the layers above; --no-build-isolation: the venv's
# setuptools builds the package, so this layer needs no network. `--help` proves the console
# script imports.
RUN pip install --no-deps --no-build-isolation /opt/sagemaker-cv \
 && rm -rf /opt/sagemaker-cv/build /opt/sagemaker-cv/src/*.egg-info \
 && sagemaker-cv --help > /dev/null

ARG ALGORITHM=image-classification
ENV SAGEMAKER_CV_ALGORITHM=${ALGORITHM}

# Hosting: the server listens on $SAGEMAKER_BIND_TO_PORT when SageMaker sets it (inference
# pipelines), else on 8080; the label tells SageMaker that it may.
LABEL com.amazonaws.sagemaker.capabilities.accept-bind-to-port=true
EXPOSE 8080

# Exec form: the CLI is PID 1 and receives SageMaker's SIGTERM itself (StopTrainingJob, spot,
# an endpoint's scale-in: the server drains its requests and exits before the SIGKILL 30 s later).
ENTRYPOINT ["sagemaker-cv"]
