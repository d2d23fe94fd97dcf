"""What the CLI, the spec, the docs and the data readers need to know about one algorithm.

Framework-free: building the registry imports no MXNet; the Task is imported only to train.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from sagemaker_cv.contract.errors import ClientError
from sagemaker_cv.schema.base import Schema


@dataclass(frozen=True)
class ChannelSpec:
    """One input channel as the algorithm specification advertises it and the readers accept it."""

    name: str
    required: bool
    content_types: tuple[str, ...]
    description: str
    input_modes: tuple[str, ...] = ("File",)


def unknown_channels(names, specs: tuple[ChannelSpec, ...], algorithm: str) -> list[str]:
    """A problem for each channel the algorithm does not read; `model` is incremental training's
    (training.incremental checks and reads it)."""
    known = tuple(c.name for c in specs)
    return [
        f"channel {name!r}: not used by {algorithm} (expected {', '.join(known)})"
        for name in names
        if name != "model" and name not in known
    ]


@dataclass(frozen=True)
class Pretrained:
    """One network the algorithm starts from ImageNet weights with use_pretrained_model=1."""

    setting: str  # the hyperparameter value that selects it: "num_layers=50"
    network: str  # GluonCV's name of the network, the prefix of its params file: "resnet50_v1b"


@dataclass(frozen=True)
class Incremental:
    """How the algorithm starts from the model of an earlier job (the `model` channel)."""

    #: hyperparameters that must equal the earlier job's (the network's shape depends on them)
    keys: tuple[str, ...]
    #: "module:function" reading an extracted archive (framework-free): {key: value} for the keys
    #: it can tell
    facts: str

    def read_facts(self, directory) -> dict:
        module, _, function = self.facts.partition(":")
        return getattr(importlib.import_module(module), function)(directory)


@dataclass(frozen=True)
class Algorithm:
    name: str  # as SageMaker names the built-in: "image-classification"
    description: str  # the CreateAlgorithm description
    schema: Schema
    channels: tuple[ChannelSpec, ...]
    #: SageMaker MetricDefinitions for the algorithm's log lines: (name, regex)
    metric_definitions: tuple[tuple[str, str], ...]
    #: metrics a tuning job may maximise
    objectives: tuple[str, ...]
    #: trains on several hosts (SupportsDistributedTraining)
    distributed: bool
    #: "module:Class" of its Task; None while the algorithm cannot train in this version
    task: str | None = None
    #: the networks use_pretrained_model=1 loads (`sagemaker-cv weights list` shows them)
    pretrained: tuple[Pretrained, ...] = ()
    #: glob patterns of the files it writes into the model directory: a run removes those an
    #: earlier run on the same directory left (a loader taking the highest epoch would pick them)
    artifacts: tuple[str, ...] = ()
    #: files written into the model directory for some inputs only (removed by a run as artifacts are)
    optional_artifacts: tuple[str, ...] = ()
    #: incremental training from a `model` channel; None: the channel is refused
    incremental: Incremental | None = None
    #: the file whose presence in a model directory says this algorithm wrote it (this image's
    #: jobs and the built-in's alike); `algorithms.trained` recognises a model by it
    model_marker: str = ""
    #: the module that writes the algorithm's example /opt/ml tree (`make demo`): its `main(argv)`
    #: takes `--root DIR`, its `CHANCE` says what guessing scores on that data
    example: str | None = None
    #: "module:function" loading a trained model for inference: (TrainedModel, MXNet context) ->
    #: an `inference.ImagePredictor` (request bytes in, the built-in's response bytes out); None
    #: while the algorithm cannot serve
    predictor: str | None = None
    #: "module:function" giving an exporter (`export-onnx`) the model's inference graph:
    #: (TrainedModel, size, dynamic_size) -> inference.ExportGraph; None: no export
    exporter: str | None = None
    #: "module:function" giving `sagemaker-cv evaluate` its per-class figures: a set-up Task whose
    #: validation data is the channel evaluated -> {"figures", "classes", ...}; None: no evaluation
    evaluation: str | None = None
    #: "module:function" (framework-free) taking (hyperparameters, DevicePlan) and returning
    #: (problems, warnings): what the job needs of this host (memory), checked before anything is built
    limits: str | None = None

    def channel(self, name: str) -> ChannelSpec | None:
        return next((c for c in self.channels if c.name == name), None)

    @property
    def channel_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.channels)

    def check_limits(self, hp, plan) -> tuple[list[str], list[str]]:
        if self.limits is None:
            return [], []
        module, _, function = self.limits.partition(":")
        return getattr(importlib.import_module(module), function)(hp, plan)

    def task_class(self) -> type:
        if self.task is None:
            # Called after the config files and hyperparameters were validated, so say that they passed.
            raise ClientError(
                f"algorithm {self.name!r}: training is not available in this version of the image; "
                "the hyperparameters and config files are valid"
            )
        module, _, cls = self.task.partition(":")
        return getattr(importlib.import_module(module), cls)

    def export_graph(self, model, size, dynamic_size: bool):
        """The model's inference graph for an exporter (`inference.ExportGraph`), from the
        algorithm's `exporter`; a ClientError when the algorithm has none."""
        if self.exporter is None:
            raise ClientError(
                f"algorithm {self.name!r}: export is not available in this version of the image"
            )
        module, _, function = self.exporter.partition(":")
        return getattr(importlib.import_module(module), function)(model, size, dynamic_size)

    def evaluate(self, task) -> dict:
        """The per-class figures of `task`'s model on its validation data (`sagemaker-cv evaluate`)."""
        if self.evaluation is None:
            raise ClientError(
                f"algorithm {self.name!r}: evaluate is not available in this version of the image"
            )
        module, _, function = self.evaluation.partition(":")
        return getattr(importlib.import_module(module), function)(task)

    def load_predictor(self, model, ctx):
        """The algorithm's predictor for `model` (an `algorithms.trained.TrainedModel`) on `ctx`."""
        if self.predictor is None:
            raise ClientError(
                f"algorithm {self.name!r}: serving is not available in this version of the image"
            )
        module, _, function = self.predictor.partition(":")
        return getattr(importlib.import_module(module), function)(model, ctx)
