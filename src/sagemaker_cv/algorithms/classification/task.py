"""Image classification: ResNet on RecordIO or .lst input, the built-in's logs and artifacts."""

from __future__ import annotations

import json
import os
from functools import partial
from pathlib import Path

import mxnet as mx
import numpy as np
from mxnet import gluon

from sagemaker_cv.algorithms.classification import archive, data
from sagemaker_cv.algorithms.classification.loglines import ClassificationLogLines
from sagemaker_cv.algorithms.classification.network import WithActivation, classification_network
from sagemaker_cv.algorithms.classification.records import LabelRules, PreparedRecords
from sagemaker_cv.algorithms.classification.stream import ClassificationStream, StreamSpec
from sagemaker_cv.contract import logs
from sagemaker_cv.contract.errors import ClientError
from sagemaker_cv.contract.files import write_text_atomic
from sagemaker_cv.inputs.pipe import PipeSettings
from sagemaker_cv.training.devices import DevicePlan
from sagemaker_cv.training.export import export_symbol_params, load_exported
from sagemaker_cv.training.gluon_task import GluonTask
from sagemaker_cv.training.incremental import PREPARED_KEY
from sagemaker_cv.training.job import Job
from sagemaker_cv.training.seeding import derive
from sagemaker_cv.training.tally import Tally
from sagemaker_cv.training.task import Metrics, Prepared

log = logs.get("classification")
PREFIX = "image-classification"


class ClassificationTask(GluonTask):
    score_name = "accuracy"

    def __init__(self, job: Job, plan: DevicePlan, scratch: Path):
        super().__init__(job, plan, scratch)
        hp = self.hp
        self.log = ClassificationLogLines()
        self.rules = LabelRules(hp.num_classes, hp.multi_label, hp.image_shape, hp.resize)
        self.inputs = data.resolve_inputs(job.channels, job.paths, hp)
        #: the shorter side serving resizes images to (model-shapes.json); setup_data knows the images
        self.validation_side: int | None = hp.resize

    # ---- data ----------------------------------------------------------------------------------

    def check_data(self) -> Prepared:
        files = {"train": self.inputs.train, "validation": self.inputs.validation}
        # A split without data (no validation channel) is left out.
        present = [s for s in files if s in self.inputs.streams or files[s]]

        def prepare(split: str) -> PreparedRecords:
            if self.inputs.format == "recordio":
                log.info("Searching for .rec files in %s.", self.job.paths.channel(split))
            else:
                for f in files[split]:
                    log.info("Creating record files for %s", f.path.name)
            prepared = data.prepare(self.inputs, split, self.rules, self.scratch)
            if self.inputs.format == "lst":
                log.info("Done creating record files for %s (%d images)", prepared.source, prepared.count)
            return prepared

        checked = self.check_splits(present, self.inputs.streams, prepare)
        if self.hp.multi_label:
            formats = {s.label_format for s in self.inputs.streams.values() if s.layout} or {"multi-hot"}
            log.info("label-format is %s", ", ".join(sorted(formats)))
        return checked

    # ---- network -------------------------------------------------------------------------------

    def input_shape(self) -> tuple[int, int, int]:
        return self.hp.image_shape

    def build_network(self, pretrained: bool, ctx: list):
        hp = self.hp
        return classification_network(hp.num_layers, hp.num_classes, hp.image_shape[0], pretrained, ctx)

    def setup(self, prepared: Prepared) -> None:
        hp = self.hp
        log.info("use_pretrained_model: %d", int(hp.use_pretrained_model))
        log.info("multi_label: %d", int(hp.multi_label))
        if PREPARED_KEY in prepared.data:
            if hp.use_pretrained_model:
                log.info("use_pretrained_model=1 is not used: the model channel gives the weights")
        else:
            log.info(
                "Using pretrained model for initializing weights and transfer learning."
                if hp.use_pretrained_model
                else "Performing random weight initialization"
            )
        super().setup(prepared)
        self.export_block = WithActivation(self.twin or self.net, "sigmoid" if hp.multi_label else "softmax")
        self._log_parameters()

    def load_start_model(self, directory: Path) -> None:
        symbol, params, _ = archive.model_files(directory)
        log.info("Using model weights from file %s.", params)
        # The activation is no parameter: a multi-label model may start a single-label job and back.
        activation = "sigmoid" if archive.output_activation(symbol) == "sigmoid" else "softmax"
        problem = load_exported(WithActivation(self.net, activation), symbol, params)
        if problem:
            raise ClientError(
                f"channel 'model': {problem}; the model must come from this image (SageMaker's built-in "
                "algorithm trains MXNet's symbolic ResNet, a different network): start without the model "
                "channel, or from a model.tar.gz of this image"
            )
        log.info("done loading checkpoint")

    def setup_data(self, prepared: Prepared):
        hp = self.hp
        train, self.val_records = prepared.data["train"], prepared.data.get("validation")
        # What serving resizes to, recorded in model-shapes.json: validation's images, else the
        # training images (read without augmentation, they are cropped as validation crops them).
        sides = next(
            (r.shorter_sides for r in (self.val_records, train) if isinstance(r, PreparedRecords)), None
        )
        self.validation_side = archive.validation_side(hp.resize, sides, hp.image_shape)
        if hp.multi_label:
            self.loss_fn = gluon.loss.SigmoidBinaryCrossEntropyLoss()
            self.pos_weight = None
            if hp.use_weighted_loss:
                positives = train.class_counts.astype(np.float64)
                weights = (train.count - positives) / np.maximum(positives, 1.0)
                log.info("Weighted loss: positive-class weights %s", np.round(weights, 3).tolist())
                self.pos_weight = [mx.nd.array(weights.reshape(1, -1), ctx=c) for c in self.ctx]
        else:
            self.loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
        self.metric_names = ["accuracy"]
        if hp.top_k and not hp.multi_label:
            self.metric_names.append(f"top_k_accuracy_{hp.top_k}")

        self.val_iter = self.val_stream = self.train_stream = None
        if isinstance(self.val_records, StreamSpec):
            self.val_stream = self._stream(self.val_records) if self.validates else None
            self.val_records = None
        elif self.val_records and self.validates:
            self.val_iter = self._record_iter(self.val_records, train=False)
        if isinstance(train, StreamSpec):
            self.train_stream = self._stream(train)
            return lambda: (batch for batch, _ in self.train_stream.epoch(self.pass_seed())), None

        parts, part = self.shard("train")
        self.train_iter = None

        def one_pass():
            # A new iterator per pass, seeded by the epoch: a resumed job sees the same data order
            # and augmentations as an uninterrupted one (MXNet cannot save an iterator's state).
            self.train_iter = self._record_iter(
                train, train=True, num_parts=parts, part_index=part, seed=self.pass_seed()
            )
            return self.train_iter

        return one_pass, train.count

    def _record_iter(self, prepared: PreparedRecords, *, train: bool, **kwargs):
        """ImageRecordIter with this job's batch size, labels and augmentation (training only)."""
        return data.record_iter(
            prepared,
            batch_size=self.hp.mini_batch_size,
            rules=self.rules,
            train=train,
            augmentation=self.hp.augmentation_type,
            **kwargs,
        )

    def _stream(self, spec: StreamSpec) -> ClassificationStream:
        training = spec is self.inputs.streams.get("train")
        workers, rank = (self.plan.num_workers, self.plan.rank) if training else (1, 0)
        return ClassificationStream(
            spec,
            self.job.paths,
            self.rules,
            batch_size=self.hp.mini_batch_size,
            scratch=self.scratch,
            settings=PipeSettings.from_env(),
            # The chunks are shuffled when written; read in order, a chunk that fails can go on.
            make_iter=partial(self._record_iter, shuffle=False),
            workers=workers,
            rank=rank,
            num_training_samples=self.hp.num_training_samples,
        )

    def _log_parameters(self) -> None:
        hp = self.hp
        log.info("---- Parameters ----")
        for name, value in (
            ("num_layers", hp.num_layers),
            ("data type", f"<class 'numpy.{self.dtype}'>"),
            ("epochs", hp.epochs),
            ("optimizer", hp.optimizer),
            ("momentum", hp.momentum),
            ("weight_decay", hp.weight_decay),
            ("learning_rate", hp.learning_rate),
            ("num_training_samples", hp.num_training_samples),
            ("mini_batch_size", hp.mini_batch_size),
            ("image_shape", ",".join(map(str, hp.image_shape))),
            ("num_classes", hp.num_classes),
            ("augmentation_type", hp.augmentation_type),
            ("kv_store", self.plan.kvstore or "device"),
            ("top_k", hp.top_k),
        ):
            log.info("%s: %s", name, value)
        if hp.resize:
            log.info("image resize size: %d", hp.resize)
        if hp.lr_scheduler_step:
            log.info(
                "lr_scheduler_step: %s (%d iterations per epoch)",
                ",".join(map(str, hp.lr_scheduler_step)),
                self.iters_per_epoch,
            )
        log.info("--------------------")
        log.info("Setting number of threads: %d", os.cpu_count() or 1)
        log.info("Training on %d %s device(s): %s", len(self.ctx), self.plan.kind, self.ctx)

    # ---- training --------------------------------------------------------------------------------

    def device_parts(self, batch) -> list[tuple]:
        return [(self.cast_input(x), y) for x, y in self.split(batch.data[0], batch.label[0])]

    def forward(self, parts):
        outputs = [self.as_float32(self.net(x)) for x, _ in parts]
        if self.hp.multi_label and self.pos_weight is not None:
            losses = [self.loss_fn(o, y, None, w) for o, (_, y), w in zip(outputs, parts, self.pos_weight)]
        else:
            losses = [self.loss_fn(o, y) for o, (_, y) in zip(outputs, parts)]
        return losses, outputs

    def score(self, parts, outputs, losses) -> None:
        for device, (output, (_, label), loss) in enumerate(zip(outputs, parts, losses)):
            self._score(self.tally, device, output, label)
            self.tally.add("loss", device, loss.sum(), loss.shape[0])

    def _score(self, tally: Tally, device: int, output, label) -> None:
        """Add one device's batch to the metric sums (device arrays, no waiting)."""
        n = output.shape[0]
        if self.hp.multi_label:  # per-class decisions: logit > 0 means p > 0.5
            tally.add("accuracy", device, ((output > 0) == label).sum(), label.size)
            return
        tally.add("accuracy", device, (output.argmax(axis=1) == label).sum(), n)
        if len(self.metric_names) > 1:
            top = output.topk(axis=1, k=self.hp.top_k)
            tally.add(self.metric_names[1], device, (top == label.reshape((-1, 1))).sum(), n)

    # ---- validation and export -------------------------------------------------------------------

    def _validation_batches(self):
        """(batch, samples of it to count) over the validation data."""
        if self.val_stream is not None:
            yield from self.val_stream.epoch(derive(self.job.seed, "validation", self.epoch), train=False)
            return
        self.val_iter.reset()
        remaining = self.val_records.count
        for batch in self.val_iter:
            # ImageRecordIter fills the last batch past the end (and reports no pad without
            # round_batch): count each sample exactly once.
            keep = min(batch.data[0].shape[0], remaining)
            remaining -= keep
            if keep <= 0:
                break
            yield batch, keep

    def validation_scores(self) -> Metrics | None:
        if self.val_iter is None and self.val_stream is None:
            return None
        tally = Tally()
        for batch, keep in self._validation_batches():
            if keep <= 0:
                continue
            parts = self.device_parts(batch)
            outputs = [self.as_float32(self.net(x)) for x, _ in parts]
            out = mx.nd.concat(*[o.as_in_context(mx.cpu()) for o in outputs], dim=0)[:keep]
            lab = mx.nd.concat(*[y.as_in_context(mx.cpu()) for _, y in parts], dim=0)[:keep]
            self._score(tally, 0, out, lab)
        return tally.values(self.metric_names)

    def save(self, epoch_number: int) -> list[Path]:
        model_dir = self.job.paths.model_dir
        model_dir.mkdir(parents=True, exist_ok=True)
        _, ctx = self.export_source()
        sym_path, params_path = export_symbol_params(self.export_block, model_dir / PREFIX, epoch_number, ctx)
        shapes = model_dir / "model-shapes.json"
        entries = archive.model_shapes(self.hp.mini_batch_size, self.hp.image_shape, self.validation_side)
        write_text_atomic(shapes, json.dumps(entries))
        return [sym_path, params_path, shapes]

    def close(self) -> None:
        self.train_iter = self.val_iter = self.train_stream = self.val_stream = None
