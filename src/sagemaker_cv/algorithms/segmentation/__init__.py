"""Semantic segmentation: FCN, PSPNet or DeepLabV3 on a ResNet backbone, as SageMaker's built-in."""

from sagemaker_cv.algorithms.record import Algorithm, Pretrained
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
    # The built-in trains on one host only.
    distributed=False,
    pretrained=(
        Pretrained("backbone=resnet-50", "resnet50_v1s"),
        Pretrained("backbone=resnet-101", "resnet101_v1s"),
    ),
)
