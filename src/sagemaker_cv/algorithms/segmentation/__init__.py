"""Semantic segmentation: FCN, PSPNet or DeepLabV3 on a ResNet backbone, as SageMaker's built-in."""

from sagemaker_cv.algorithms.record import Algorithm
from sagemaker_cv.algorithms.segmentation import loglines
from sagemaker_cv.algorithms.segmentation.channels import CHANNELS
from sagemaker_cv.algorithms.segmentation.schema import SCHEMA

ALGORITHM = Algorithm(
    name="semantic-segmentation",
    description="Semantic segmentation (FCN, PSP or DeepLabV3, MXNet + GluonCV), compatible with "
    "SageMaker's built-in semantic-segmentation algorithm.",
    schema=SCHEMA,
    channels=CHANNELS,
    metric_definitions=loglines.METRIC_DEFINITIONS,
    objectives=loglines.OBJECTIVES,
    # An extension: the built-in trains on one host only.
    distributed=True,
    task="sagemaker_cv.algorithms.segmentation.task:SegmentationTask",
)
