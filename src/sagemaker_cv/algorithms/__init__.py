"""The algorithms this image trains: one folder each, one registry line each.

Nothing else in the package branches on an algorithm's name: the CLI, the job loader, the spec,
the docs and the runner all read the `Algorithm` record.
"""

from __future__ import annotations

from sagemaker_cv.algorithms import classification, detection, segmentation
from sagemaker_cv.algorithms.record import Algorithm, ChannelSpec
from sagemaker_cv.contract.errors import ClientError

REGISTRY: dict[str, Algorithm] = {
    a.name: a for a in (classification.ALGORITHM, detection.ALGORITHM, segmentation.ALGORITHM)
}
NAMES = tuple(REGISTRY)


def get(name: str) -> Algorithm:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ClientError(
            f"algorithm {name!r}: expected one of {', '.join(REGISTRY)} (set --algorithm or SAGEMAKER_CV_ALGORITHM)"
        ) from None


__all__ = ["NAMES", "REGISTRY", "Algorithm", "ChannelSpec", "get"]
