"""Image classification: ResNet on RecordIO or images + .lst, as SageMaker's built-in."""

from sagemaker_cv.algorithms.classification import loglines
from sagemaker_cv.algorithms.classification.channels import CHANNELS
from sagemaker_cv.algorithms.classification.schema import PRETRAINED_NETWORKS, SCHEMA
from sagemaker_cv.algorithms.record import Algorithm, Incremental, Pretrained

ALGORITHM = Algorithm(
    name="image-classification",
    description="Image classification (ResNet, MXNet + GluonCV), compatible with SageMaker's built-in "
    "image-classification algorithm: same hyperparameters, channels, log lines and model artifacts.",
    schema=SCHEMA,
    channels=CHANNELS,
    metric_definitions=loglines.METRIC_DEFINITIONS,
    objectives=loglines.OBJECTIVES,
    distributed=True,
    task="sagemaker_cv.algorithms.classification.task:ClassificationTask",
    pretrained=tuple(Pretrained(f"num_layers={n}", name) for n, name in PRETRAINED_NETWORKS.items()),
    example="sagemaker_cv.tools.demo",
    model_marker="image-classification-symbol.json",
    predictor="sagemaker_cv.algorithms.classification.predict:load",
    exporter="sagemaker_cv.algorithms.classification.predict:export_graph",
    evaluation="sagemaker_cv.algorithms.classification.evaluation:evaluate",
    artifacts=("image-classification-*.params", "image-classification-symbol.json", "model-shapes.json"),
    # The built-in's documented rule: "the same settings for num_layers, image_shape and num_classes".
    incremental=Incremental(
        keys=("num_classes", "num_layers", "image_shape"),
        facts="sagemaker_cv.algorithms.classification.archive:archive_facts",
    ),
)
