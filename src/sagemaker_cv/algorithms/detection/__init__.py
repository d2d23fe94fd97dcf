"""Object detection: SSD with a VGG-16 or ResNet-50 base, as SageMaker's built-in."""

from sagemaker_cv.algorithms.detection import loglines
from sagemaker_cv.algorithms.detection.channels import CHANNELS
from sagemaker_cv.algorithms.detection.schema import SCHEMA
from sagemaker_cv.algorithms.record import Algorithm, Incremental, Pretrained

ALGORITHM = Algorithm(
    name="object-detection",
    description="Object detection (SSD with VGG-16 or ResNet-50, MXNet + GluonCV), compatible with "
    "SageMaker's built-in object-detection algorithm.",
    schema=SCHEMA,
    channels=CHANNELS,
    metric_definitions=loglines.METRIC_DEFINITIONS,
    objectives=loglines.OBJECTIVES,
    distributed=True,
    task="sagemaker_cv.algorithms.detection.task:DetectionTask",
    pretrained=(
        Pretrained("base_network=vgg-16", "vgg16_atrous"),
        Pretrained("base_network=resnet-50", "resnet50_v1b"),
    ),
    example="sagemaker_cv.tools.detection_demo",
    model_marker="model_algo_1-symbol.json",
    predictor="sagemaker_cv.algorithms.detection.predict:load",
    exporter="sagemaker_cv.algorithms.detection.predict:export_graph",
    evaluation="sagemaker_cv.algorithms.detection.evaluation:evaluate",
    artifacts=("model_algo_1-*.params", "model_algo_1-symbol.json", "hyperparams.json"),
    optional_artifacts=("class_map.json",),  # COCO and VOC inputs name their classes
    limits="sagemaker_cv.algorithms.detection.limits:problems",
    incremental=Incremental(
        keys=("base_network", "num_classes", "image_shape"),
        facts="sagemaker_cv.algorithms.detection.archive:archive_facts",
    ),
)
