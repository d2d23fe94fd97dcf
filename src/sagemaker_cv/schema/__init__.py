"""One declarative hyperparameter table per algorithm."""

from __future__ import annotations

from sagemaker_cv.errors import ClientError
from sagemaker_cv.schema.base import Context, HyperParameters, Param, Schema


def get_schema(algorithm: str) -> Schema:
    from sagemaker_cv.schema import image_classification, object_detection, semantic_segmentation

    schemas = {
        "image-classification": image_classification.SCHEMA,
        "object-detection": object_detection.SCHEMA,
        "semantic-segmentation": semantic_segmentation.SCHEMA,
    }
    try:
        return schemas[algorithm]
    except KeyError:
        raise ClientError(
            f"algorithm {algorithm!r}: expected one of {', '.join(schemas)} "
            "(set --algorithm or SAGEMAKER_CV_ALGORITHM)"
        ) from None


__all__ = ["Context", "HyperParameters", "Param", "Schema", "get_schema"]
