"""Object detection: SSD (VGG-16 or ResNet-50 base) on RecordIO or images + JSON, the built-in's
logs and artifacts.

Training targets are GluonCV's (SSDTargetGenerator: bipartite + IoU >= 0.5 matching, box encoding),
made for the whole batch at once on the device from the iterator's labels; hard negatives are mined
in GluonCV's SSDMultiBoxLoss (3 negatives per positive), whose losses are already divided by the
number of positives.
"""

from __future__ import annotations

import json
import math
import sys
from functools import partial
from pathlib import Path

import mxnet as mx

from sagemaker_cv.algorithms.detection import archive, classes, data
from sagemaker_cv.algorithms.detection.classes import ClassMap
from sagemaker_cv.algorithms.detection.evaluation import VOC07MeanAP
from sagemaker_cv.algorithms.detection.labels import ground_truth
from sagemaker_cv.algorithms.detection.layers import layer_name
from sagemaker_cv.algorithms.detection.loglines import DetectionLogLines
from sagemaker_cv.algorithms.detection.network import Detections, build_detector
from sagemaker_cv.algorithms.detection.records import PreparedDetection
from sagemaker_cv.algorithms.detection.stream import DetectionStream, StreamSpec
from sagemaker_cv.contract import logs
from sagemaker_cv.contract.errors import ClientError
from sagemaker_cv.contract.files import write_text_atomic
from sagemaker_cv.inputs.pipe import PipeSettings
from sagemaker_cv.training.devices import DevicePlan
from sagemaker_cv.training.export import export_symbol_params, load_exported
from sagemaker_cv.training.gluon_task import GluonTask
from sagemaker_cv.training.incremental import PREPARED_KEY, StartModel
from sagemaker_cv.training.job import Job
from sagemaker_cv.training.seeding import derive
from sagemaker_cv.training.task import Metrics, Prepared

log = logs.get("detection")


class DetectionTask(GluonTask):
    score_name = "mAP"
    metric_names = ["cross_entropy", "smooth_l1"]

    def __init__(self, job: Job, plan: DevicePlan, scratch: Path):
        super().__init__(job, plan, scratch)
        self.log = DetectionLogLines(job.resource.current_host, self.hp.mini_batch_size)
        self.inputs = data.resolve_inputs(job.channels, job.paths)
        self.position = (0, 0)  # (epoch, batch) of the current step, for a diverging loss
        self.unchecked = None  # ((epoch, batch), its loss) of a batch not yet checked for divergence
        self.start_class_map: ClassMap | None = None  # the class_map.json of the model started from

    # ---- data ----------------------------------------------------------------------------------

    def check_data(self) -> Prepared:
        hp = self.hp

        def prepare(split: str) -> PreparedDetection:
            if self.inputs.format == "images":
                log.info("Creating record files for %s and %s_annotation", split, split)
            p = data.prepare(self.inputs, split, hp.num_classes, hp.label_width, self.scratch / "data")
            if split == "validation" and (problem := data.objects_problem(self.inputs, p, split)):
                raise ClientError(problem)
            if p.clipped:
                log.warning(
                    "%s: %d box(es) stuck out of their image slightly and were clipped to it",
                    p.source,
                    p.clipped,
                )
            if p.empty:
                log.info("%s: %d image(s) without objects (they train as background)", p.source, p.empty)
            return p

        return self.check_splits(data.SPLITS, self.inputs.streams, prepare)

    def check_training_count(self, prepared: PreparedDetection) -> None:
        """Also: the training data must hold objects (the rule `evaluate` drops with the others).
        A ShardedByS3Key part on one of several hosts is only a part: this host's images may all be
        background while the others' are not."""
        problems = []
        try:
            super().check_training_count(prepared)
        except ClientError as exc:
            problems += exc.problems
        problem = data.objects_problem(self.inputs, prepared, "train")
        if (
            problem
            and self.job.channels["train"].distribution == "ShardedByS3Key"
            and self.job.resource.num_hosts > 1
        ):
            log.warning("%s (on this host's ShardedByS3Key part)", problem)
        elif problem:
            problems.append(problem)
        if problems:
            raise ClientError(problems)

    # ---- network -------------------------------------------------------------------------------

    def input_shape(self) -> tuple[int, int, int]:
        return (3, self.hp.image_shape, self.hp.image_shape)

    def build_network(self, pretrained: bool, ctx: list):
        hp = self.hp
        self.detector = build_detector(
            hp.base_network,
            hp.num_classes,
            hp.image_shape,
            pretrained=pretrained,
            ctx=ctx,
            nms_threshold=hp.nms_threshold,
            nms_topk=hp.nms_topk,
            freeze_pattern=hp.freeze_layer_pattern,
        )
        if hp.freeze_layer_pattern:
            self._log_frozen(hp.freeze_layer_pattern)
        return self.detector.net

    def _log_frozen(self, pattern: str) -> None:
        names = self.detector.base_names
        if not self.detector.frozen:
            log.warning(
                "freeze_layer_pattern=%r matches no layer of the %s base network; nothing is frozen "
                "(layer names: %s)",
                pattern,
                self.hp.base_network,
                ", ".join(sorted({layer_name(n) for n in names.values()})[:8]) + ", ...",
            )
            return
        layers = sorted({layer_name(names[n]) for n in self.detector.frozen})
        log.info(
            "Freezing %d parameter(s) of layers %s (freeze_layer_pattern=%r)",
            len(self.detector.frozen),
            ", ".join(layers),
            pattern,
        )

    def load_start_model(self, directory: Path) -> None:
        symbol, params = archive.model_files(directory)
        facts = archive.archive_facts(directory)
        log.info("Using model weights from file %s.", params)
        ssd, hp = self.detector.ssd, self.hp
        # The earlier job's suppression settings are attributes of its graph: build the same graph
        # to match parameters by position, then go back to this job's settings.
        ssd.set_nms(facts.get("nms_threshold", hp.nms_threshold), facts.get("nms_topk", hp.nms_topk))
        try:
            problem = load_exported(Detections(self.net, hp.image_shape), symbol, params)
        finally:
            ssd.set_nms(hp.nms_threshold, hp.nms_topk)
        if problem:
            raise ClientError(
                f"channel 'model': {problem}; the model must come from this image's object-detection "
                "(SageMaker's built-in writes a different graph), with the same freeze_layer_pattern for a "
                "ResNet-50 base (frozen BatchNorm layers are part of the graph)"
            )

    def trainable_parameters(self):
        return {n: p for n, p in self.net.collect_params().items() if p.grad_req != "null"}

    def class_map(self) -> ClassMap | None:
        """The classes' names: the data's (COCO, VOC), else those of the model started from."""
        data_map = self.inputs.annotated.class_map if self.inputs.annotated else None
        return data_map if data_map is not None else self.start_class_map

    def _check_start_classes(self, start: StartModel) -> None:
        """The model started from (incremental training, `evaluate`) must mean by each class id the
        class the data means, where both name them."""
        self.start_class_map = start.facts.get("class_map")
        data_map = self.inputs.annotated.class_map if self.inputs.annotated else None
        if self.start_class_map is None:
            return
        if data_map is None:
            log.info(
                "Class names from the %s of %s: %s",
                classes.FILE,
                start.origin,
                self.start_class_map.describe(),
            )
            return
        problem = data_map.disagreement(self.start_class_map, start.origin)
        if problem:
            raise ClientError(problem)

    def setup(self, prepared: Prepared) -> None:
        hp = self.hp
        if PREPARED_KEY in prepared.data:
            self._check_start_classes(prepared.data[PREPARED_KEY])
        log.warning("Training images are resized to image shape %s", self.input_shape())
        if PREPARED_KEY in prepared.data:
            if hp.use_pretrained_model:
                log.info("use_pretrained_model=1 is not used: the model channel gives the weights")
        elif hp.use_pretrained_model:
            log.info(
                "Start training from pretrained model %d (ImageNet weights of the %s base)",
                1,
                hp.base_network,
            )
        else:
            log.info("Training the %s base network from scratch (use_pretrained_model=0)", hp.base_network)
        super().setup(prepared)
        ctx = self.ctx
        log.info("Using %s as training context (kv_store: %s)", ctx, self.plan.kvstore or "device")
        self.anchors = [self.detector.anchors(c) for c in ctx]
        # A hybridized network keeps the graph of its first call, the training one; evaluation and
        # export go through this wrapper, whose own graph is the inference one (same parameters).
        # Measured on MXNet 1.9.1: with static_alloc/static_shape, the wrapper's graph read stale
        # weights and BatchNorm statistics (detections unlike the trained network's); without them
        # both graphs read the same arrays. A static training graph under a dynamic wrapper is not
        # safe either: parameters exported while a step was still running differed from those the
        # wrapper computed with afterwards (test_the_exported_graph_detects_as_the_trained_network).
        self.net.hybridize()
        self.export_block = Detections(self.net, hp.image_shape)
        self.export_block.hybridize()

    def setup_data(self, prepared: Prepared):
        from gluoncv.loss import SSDMultiBoxLoss
        from gluoncv.model_zoo.ssd.target import SSDTargetGenerator

        self.targets = SSDTargetGenerator(iou_thresh=0.5, stds=(0.1, 0.1, 0.2, 0.2), negative_mining_ratio=-1)
        self.loss_fn = SSDMultiBoxLoss(negative_mining_ratio=3)
        train, self.val_records = prepared.data["train"], prepared.data["validation"]
        self.val_iter = self.val_stream = self.train_stream = None
        if isinstance(self.val_records, StreamSpec):
            self.val_stream = self._stream(self.val_records, training=False) if self.validates else None
        elif self.validates:
            self.val_iter = self._det_iter(self.val_records, train=False)
        if isinstance(train, StreamSpec):
            self.train_stream = self._stream(train, training=True)
            return lambda: (batch for batch, _ in self.train_stream.epoch(self.pass_seed())), None

        parts, part = self.shard("train")
        self.train_iter = None

        def one_pass():
            # A new iterator per pass, seeded by the epoch: a resumed job sees the same data order
            # and augmentations as an uninterrupted one (MXNet cannot save an iterator's state).
            self.train_iter = self._det_iter(
                train, train=True, num_parts=parts, part_index=part, seed=self.pass_seed()
            )
            return self.train_iter

        return one_pass, train.count

    def _det_iter(self, prepared: PreparedDetection, *, train: bool, **kwargs):
        hp = self.hp
        return data.det_iter(
            prepared,
            batch_size=hp.mini_batch_size,
            image_shape=hp.image_shape,
            label_width=hp.label_width,
            train=train,
            **kwargs,
        )

    def _stream(self, spec: StreamSpec, training: bool) -> DetectionStream:
        hp = self.hp
        workers, rank = (self.plan.num_workers, self.plan.rank) if training else (1, 0)
        return DetectionStream(
            spec,
            self.job.paths.data_dir,
            num_classes=hp.num_classes,
            label_width=hp.label_width,
            # The chunks are shuffled when written; read in order, a chunk that fails can go on.
            make_iter=partial(self._det_iter, shuffle=False),
            settings=PipeSettings.from_env(),
            batch_size=hp.mini_batch_size,
            scratch=self.scratch,
            workers=workers,
            rank=rank,
            num_training_samples=hp.num_training_samples,
        )

    def gradient_denominator(self, samples: int) -> float:
        return 1  # SSDMultiBoxLoss divides by the batch's positives already

    # ---- training --------------------------------------------------------------------------------

    def batches(self, epoch: int):
        for batch_number, batch in enumerate(super().batches(epoch), 1):
            self.position = (epoch, batch_number)
            yield batch
        self.check_divergence()  # the epoch's last batch, before anything validates or writes

    def _device_targets(self, batch) -> list[tuple]:
        """(images, ground-truth boxes, ground-truth ids) per device."""
        boxes, ids = ground_truth(batch.label[0].asnumpy(), float(self.hp.image_shape))
        return self.split(batch.data[0], mx.nd.array(boxes), mx.nd.array(ids))

    def device_parts(self, batch) -> list[tuple]:
        parts = []
        for (x, boxes, ids), anchors in zip(self._device_targets(batch), self.anchors):
            cls_targets, box_targets, _ = self.targets(anchors, None, boxes, ids)
            parts.append((x, cls_targets, box_targets))
        return parts

    def forward(self, parts):
        cls_preds, box_preds = [], []
        for x, _, _ in parts:
            cls_pred, box_pred, _ = self.net(x)
            cls_preds.append(cls_pred)
            box_preds.append(box_pred)
        total, cls_losses, box_losses = self.loss_fn(
            cls_preds, box_preds, [p[1] for p in parts], [p[2] for p in parts]
        )
        return total, (cls_losses, box_losses)

    def score(self, parts, outputs, losses) -> None:
        cls_losses, box_losses = outputs
        # Each device holds its share of the batch's loss (the loss is divided by the positives of
        # the whole batch): one value per batch is their sum.
        total = None
        for device, (ce, l1) in enumerate(zip(cls_losses, box_losses)):
            ce, l1 = ce.sum(), l1.sum()
            self.tally.add("cross_entropy", device, ce, int(device == 0))
            self.tally.add("smooth_l1", device, l1, int(device == 0))
            value = (ce + l1).as_in_context(mx.cpu())
            total = value if total is None else total + value
        # Reading this batch's loss now would wait for its backward pass and update, and the next
        # batch could not be prepared meanwhile: the previous batch's loss (finished by now) is
        # checked instead, and the last one wherever values are read or weights written.
        self.check_divergence()
        self.unchecked = (self.position, total)

    def check_divergence(self) -> None:
        """Stop the job if the last scored batch's loss is NaN or infinite (waits for that batch)."""
        if self.unchecked is None:
            return
        (epoch, batch), total = self.unchecked
        self.unchecked = None
        if not math.isfinite(total.asscalar()):
            raise ClientError(
                f"the training loss diverged (NaN or infinite) at epoch {epoch}, batch {batch}; lower "
                f"learning_rate (now {self.hp.learning_rate:g}): SSD trained from scratch diverges easily"
            )

    def running_metrics(self) -> Metrics:
        self.check_divergence()
        return super().running_metrics()

    def train_metrics(self) -> Metrics:
        self.check_divergence()
        return super().train_metrics()

    # ---- validation and export -------------------------------------------------------------------

    def _validation_batches(self):
        """(batch, images of it to count) over the validation data."""
        if self.val_stream is not None:
            yield from self.val_stream.epoch(derive(self.job.seed, "validation", self.epoch), train=False)
            return
        self.val_iter.reset()
        for batch in self.val_iter:
            yield batch, batch.data[0].shape[0] - (batch.pad or 0)

    def validation_scores(self) -> Metrics | None:
        if self.val_iter is None and self.val_stream is None:
            return None
        metric = VOC07MeanAP(self.hp.overlap_threshold)
        for batch, keep in self._validation_batches():
            if keep <= 0:
                continue
            rows = [self.export_block(x) for (x,) in self.split(batch.data[0])]
            found = mx.nd.concat(*[r.as_in_context(mx.cpu()) for r in rows], dim=0)[:keep].asnumpy()
            boxes, ids = ground_truth(batch.label[0].asnumpy()[:keep], 1.0)
            difficult = data.difficult_flags(self.val_records, batch, keep, ids.shape[1])
            metric.update(found, boxes, ids[:, :, 0], difficult)
        return [("mAP", metric.value())]

    def save(self, epoch_number: int) -> list[Path]:
        self.check_divergence()  # a stop request can end an epoch before its last batch is checked
        model_dir = self.job.paths.model_dir
        model_dir.mkdir(parents=True, exist_ok=True)
        _, ctx = self.export_source()
        sym_path, params_path = export_symbol_params(self.export_block, model_dir / archive.PREFIX, 0, ctx)
        hyperparams = model_dir / "hyperparams.json"
        write_text_atomic(hyperparams, json.dumps(self.hyperparameter_strings()))
        return [sym_path, params_path, hyperparams, *data.write_class_map(self.class_map(), model_dir)]

    def save_state(self, directory: Path) -> list[Path]:
        self.check_divergence()
        return super().save_state(directory)

    def hyperparameter_strings(self) -> dict[str, str]:
        """The final configuration as the built-in writes it into hyperparams.json: every value a
        string ('' when unset), so `int(hp['image_shape'])` works as on its files."""
        final = self.schema.final_configuration(self.hp)
        return {p.name: str(final.get(p.name, "")) for p in self.schema.params if not p.ignored}

    def close(self) -> None:
        try:
            # A stop request (SIGTERM) ends the loop before the last batch's loss is read: a
            # divergence is still the job's outcome, unless it is already failing for another reason.
            if sys.exc_info()[1] is None:
                self.check_divergence()
        finally:
            self.train_iter = self.val_iter = self.train_stream = self.val_stream = None
