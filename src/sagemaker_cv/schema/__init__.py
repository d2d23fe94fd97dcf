"""The declarative hyperparameter schema machinery; each algorithm's table lives in its folder."""

from __future__ import annotations

from sagemaker_cv.schema.base import Context, HyperParameters, Param, Schema

__all__ = ["Context", "HyperParameters", "Param", "Schema"]
