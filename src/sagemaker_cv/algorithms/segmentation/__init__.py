"""Semantic segmentation: FCN, PSPNet or DeepLabV3 on a ResNet backbone, as SageMaker's built-in."""

from sagemaker_cv.algorithms.record import Algorithm, Incremental, Pretrained
from sagemaker_cv.algorithms.segmentation import archive, loglines
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
    pretrained=(
        Pretrained("backbone=resnet-50", "resnet50_v1s"),
        Pretrained("backbone=resnet-101", "resnet101_v1s"),
    ),
    example="sagemaker_cv.tools.segmentation_demo",
    model_marker=archive.MODEL,
    predictor="sagemaker_cv.algorithms.segmentation.predict:load",
    exporter="sagemaker_cv.algorithms.segmentation.predict:export_graph",
    evaluation="sagemaker_cv.algorithms.segmentation.evaluation:evaluate",
    artifacts=("model_algo-1", "model_algo-1-symbol.json", "model_algo-1-*.params", "hyperparams.json"),
    limits="sagemaker_cv.algorithms.segmentation.limits:problems",
    # The network's shape follows from these (crop_size fixes the heads' resizes).
    incremental=Incremental(
        keys=archive.KEYS, facts="sagemaker_cv.algorithms.segmentation.archive:archive_facts"
    ),
)
