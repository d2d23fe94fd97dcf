"""A drop-in re-creation of SageMaker's built-in MXNet vision training algorithms."""

__version__ = "0.1.0"
