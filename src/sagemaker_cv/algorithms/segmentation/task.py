"""Semantic segmentation: GluonCV's FCN, PSPNet or DeepLabV3 with the built-in's channels, label
maps, logs and artifacts, on the shared Gluon base (devices, hosts, optimizer, schedule)."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import mxnet as mx
import numpy as np
from mxnet import gluon

from sagemaker_cv.algorithms.segmentation import archive, data
from sagemaker_cv.algorithms.segmentation.loader import (
    SegmentationSamples,
    train_loader,
    validation_loader,
)
from sagemaker_cv.algorithms.segmentation.loglines import SegmentationLogLines, label_map_line, lr_setup_line
from sagemaker_cv.algorithms.segmentation.loss import MixedLoss, recipe_denominator
from sagemaker_cv.algorithms.segmentation.metrics import Confusion
from sagemaker_cv.algorithms.segmentation.network import WholeImage, segmentation_network
from sagemaker_cv.algorithms.segmentation.schedule import IterationSchedule
from sagemaker_cv.algorithms.segmentation.stream import SegmentationStream, StreamSpec
from sagemaker_cv.algorithms.segmentation.transforms import round_up8
from sagemaker_cv.contract import logs
from sagemaker_cv.contract.errors import ClientError
from sagemaker_cv.contract.files import atomic_path, write_text_atomic
from sagemaker_cv.inputs.pipe import PipeSettings
from sagemaker_cv.training.devices import DevicePlan
from sagemaker_cv.training.export import export_symbol_params
from sagemaker_cv.training.gluon_task import GluonTask
from sagemaker_cv.training.incremental import PREPARED_KEY
from sagemaker_cv.training.job import Job
from sagemaker_cv.training.seeding import derive
from sagemaker_cv.training.task import Metrics, Prepared

log = logs.get("segmentation")
MODEL = archive.MODEL


class SegmentationTask(GluonTask):
    score_name = "mIOU"

    def __init__(self, job: Job, plan: DevicePlan, scratch: Path):
        super().__init__(job, plan, scratch)
        hp = self.hp
        self.crop_size = round_up8(hp.crop_size)
        # The rate of the latest update, from the schedule and this worker's step count: on a
        # distributed kvstore the servers update, and the local optimizer never counts a step.
        self.updates = 0
        self.log = SegmentationLogLines(
            job.resource.current_host, lambda: self.schedule(max(self.updates, 1))
        )
        if hp._logging_frequency:
            self.log_interval = hp._logging_frequency
        self.paths = data.resolve(job.channels, job.paths)
        # SyncBatchNorm makes the devices meet inside every BatchNorm: one device needs none.
        self.sync_devices = plan.count if hp.syncbn and plan.count > 1 else 0

    # ---- data ----------------------------------------------------------------------------------

    def check_data(self) -> Prepared:
        hp = self.hp
        maps = data.label_maps(self.paths, hp.num_classes)
        # Only the first worker validates, so only it needs the validation data checked.
        splits = ("train", "validation") if self.validates else ("train",)
        streams = {
            split: replace(spec, label_map=getattr(maps, split))
            for split, spec in self.paths.streams.items()
            if split in splits
        }

        def prepare(split: str):
            scanned = data.scan(self.paths, split, getattr(maps, split), hp.num_classes, hp._workers)
            for shown in scanned.skipped[:20]:
                log.warning("%s is not a readable image file", shown)
            return scanned

        for split in splits:
            log.info(label_map_line(split, getattr(maps, split).spec))
        return self.check_splits(splits, streams, prepare)

    def skipped_note(self, prepared) -> str:
        return data.skipped_note(prepared)

    # ---- network -------------------------------------------------------------------------------

    def input_shape(self) -> tuple[int, int, int]:
        return (3, self.crop_size, self.crop_size)

    def build_network(self, pretrained: bool, ctx: list):
        hp = self.hp
        sync = self.sync_devices if len(ctx) > 1 else 0
        net = segmentation_network(
            hp.algorithm, hp.backbone, hp.num_classes, self.crop_size, pretrained, ctx, sync_devices=sync
        )
        if not hp._aux_loss:
            # The aux head stays in the model (model_algo-1 keeps the structure users load) but
            # is neither computed nor trained.
            net.model.aux = False
            net.model.auxlayer.collect_params().setattr("grad_req", "null")
        return net

    def trainable_parameters(self) -> gluon.ParameterDict:
        params = self.net.collect_params()
        if self.hp._aux_loss:
            return params
        frozen = set(self.net.model.auxlayer.collect_params().keys())
        selected = gluon.ParameterDict()
        selected.update({k: v for k, v in params.items() if k not in frozen})
        return selected

    def lr_schedule(self, iters_per_epoch: int):
        hp = self.hp
        log.info(lr_setup_line(iters_per_epoch, hp.epochs))
        self.schedule = IterationSchedule(
            hp.lr_scheduler,
            hp.learning_rate,
            hp.epochs * iters_per_epoch,
            [e * iters_per_epoch for e in hp.lr_scheduler_step or ()],
            hp.lr_scheduler_factor,
        )
        return self.schedule

    def setup(self, prepared: Prepared) -> None:
        hp = self.hp
        if PREPARED_KEY in prepared.data:
            if hp.use_pretrained_model:
                log.info("use_pretrained_model=1 is not used: the model channel gives the weights")
        else:
            log.info(
                "Using the ImageNet weights of the backbone for transfer learning."
                if hp.use_pretrained_model
                else "Performing random weight initialization"
            )
        super().setup(prepared)
        self.whole = WholeImage(self.net)
        self.whole.hybridize()
        self.export_whole = WholeImage(self.twin) if self.twin is not None else self.whole
        if self.sync_devices:
            self.device_threads = ThreadPoolExecutor(self.sync_devices, thread_name_prefix="device")
            # A static graph drops SyncBatchNorm's first update of its running statistics
            # (measured on CPU contexts; the dynamic graph updates them from the first step).
            self.net.hybridize(static_alloc=False, static_shape=False)
            # Build the graph here: built concurrently by the device threads, it would race.
            self.net(mx.nd.zeros((1, *self.input_shape()), ctx=self.ctx[0]))
        log.info(
            "Training %s %s on %d %s device(s)%s: crop_size %d, mini_batch_size %d, %s",
            hp.algorithm,
            hp.backbone,
            len(self.ctx),
            self.plan.kind,
            " with SyncBatchNorm" if self.sync_devices else "",
            self.crop_size,
            hp.mini_batch_size,
            f"kv_store {self.plan.kvstore}" if self.plan.kvstore else "one device",
        )

    def load_start_model(self, directory: Path) -> None:
        """The earlier job's `model_algo-1` (GluonCV parameters, as the built-in writes them) into
        GluonCV's network; the archive's hyperparameters were checked against this job's."""
        path = archive.model_file(directory)
        log.info("Using model weights from file %s.", path)
        try:
            self.net.model.load_parameters(str(path), ctx=self.ctx)
        except (mx.base.MXNetError, AssertionError, ValueError) as exc:
            raise ClientError(
                f"channel 'model': {path.name} does not fit {self.hp.algorithm} {self.hp.backbone} with "
                f"num_classes={self.hp.num_classes} ({str(exc)[:200]}); start without the model channel, or "
                "from a model.tar.gz of a job with the same network"
            ) from None
        log.info("done loading checkpoint")

    def load_state(self, directory: Path, updates: int, optimizer: bool = True) -> None:
        super().load_state(directory, updates, optimizer)
        self.updates = updates  # the logged learning rate continues where the job stopped

    def setup_data(self, prepared: Prepared):
        hp = self.hp
        self.loss_fn = MixedLoss(hp._aux_weight if hp._aux_loss else None)
        self.loss_fn.hybridize()
        self.metric_names = []  # the built-in logs no training metric besides the loss
        validation_mode = "whole" if hp.validation_mini_batch_size == 1 else "center"
        self.val_loader = self.val_stream = self.train_stream = None
        validation = prepared.data.get("validation")
        if isinstance(validation, StreamSpec):
            self.val_stream = (
                self._stream(validation, validation_mode, training=False) if self.validates else None
            )
        elif validation is not None and self.validates:
            val = SegmentationSamples(
                validation, hp.num_classes, validation_mode, self.crop_size, hp.base_size
            )
            self.val_loader = validation_loader(val, hp.validation_mini_batch_size, hp._workers)
        train = prepared.data["train"]
        if isinstance(train, StreamSpec):
            self.train_stream = self._stream(train, validation_mode, training=True)
            return lambda: (batch for batch, _ in self.train_stream.epoch(self.pass_seed())), None
        parts, part = self.shard("train")
        if train.count // parts < hp.mini_batch_size:
            raise ClientError(
                f"train: {train.count} usable image(s) split over {parts} hosts leave fewer than "
                f"mini_batch_size={hp.mini_batch_size} per host; add images or lower mini_batch_size"
            )
        samples = SegmentationSamples(train, hp.num_classes, "train", self.crop_size, hp.base_size)
        self.train_loader = train_loader(
            samples, hp.mini_batch_size, parts, part, hp._workers, self.pass_seed
        )
        return (lambda: iter(self.train_loader)), train.count

    def _stream(self, spec: StreamSpec, validation_mode: str, training: bool) -> SegmentationStream:
        hp = self.hp
        # Only the first worker validates: it reads the whole validation stream.
        workers, rank = (self.plan.num_workers, self.plan.rank) if training else (1, 0)
        return SegmentationStream(
            spec,
            self.job.paths.data_dir,
            PipeSettings.from_env(),
            num_classes=hp.num_classes,
            validation_mode=validation_mode,
            crop_size=self.crop_size,
            base_size=hp.base_size,
            threads=hp._workers,
            batch_size=hp.mini_batch_size if training else hp.validation_mini_batch_size,
            scratch=self.scratch,
            workers=workers,
            rank=rank,
            num_training_samples=hp.num_training_samples,
        )

    # ---- training ----------------------------------------------------------------------------------

    def train_step(self, batch) -> int:
        samples = super().train_step(batch)
        self.updates += 1
        return samples

    def gradient_denominator(self, samples: int) -> float:
        return recipe_denominator(samples, self.hp.mini_batch_size)

    def batch_samples(self, batch) -> int:
        return batch[0].shape[0]

    def device_parts(self, batch) -> list[tuple]:
        images, masks = (mx.nd.array(a, dtype=np.uint8) for a in batch)
        return [(self.cast_input(_nchw(x)), y.astype("float32")) for x, y in self.split(images, masks)]

    def forward(self, parts):
        losses = []
        for x, y in parts:
            outputs = [self.as_float32(o) for o in self.net(x)]
            losses.append(self.loss_fn(y, *outputs))
        return losses, None

    def forward_backward(self, parts):
        if not self.sync_devices:
            return super().forward_backward(parts)
        # SyncBatchNorm waits inside each layer until every device has reached it; devices driven
        # one after the other from one thread never meet (measured: a deadlock on CPU contexts).
        # The threads live as long as the task: a new thread per step leaked memory every step.
        step = super().forward_backward
        results = list(self.device_threads.map(lambda part: step([part]), parts))
        return [loss for losses, _ in results for loss in losses], None

    def score(self, parts, outputs, losses) -> None:
        for device, ((_, y), loss) in enumerate(zip(parts, losses)):
            self.tally.add("loss", device, loss.sum(), y.shape[0])

    # ---- validation and export ---------------------------------------------------------------------

    def _validation_batches(self):
        """(batch, images of it to score): a stream's last batch repeats earlier samples."""
        if self.val_stream is not None:
            yield from self.val_stream.epoch(derive(self.job.seed, "validation", self.epoch), train=False)
            return
        for batch in self.val_loader:
            yield batch, batch[0].shape[0]

    def validation_scores(self) -> Metrics | None:
        """Whole images (validation_mini_batch_size=1) or centre crops through `WholeImage`, one
        batch per device at a time; metrics over every labelled pixel."""
        if self.val_loader is None and self.val_stream is None:
            return None
        confusion = Confusion(self.hp.num_classes)
        started = tic = time.perf_counter()
        images = since = iterations = 0
        pending: list = []

        def drain() -> None:
            for labels, probabilities in pending:
                confusion.update(labels, probabilities.argmax(axis=1).astype("uint8").asnumpy())
            pending.clear()

        for (pixels, labels), keep in self._validation_batches():
            if keep <= 0:
                continue
            device = self.ctx[len(pending) % len(self.ctx)]
            x = self.cast_input(_nchw(mx.nd.array(pixels[:keep], dtype=np.uint8, ctx=device)))
            pending.append((labels[:keep], self.whole(x)))
            if len(pending) == len(self.ctx):
                drain()
            images += keep
            since += keep
            iterations += 1
            if iterations % self.log_interval == 0:
                drain()
                self.log.validation_progress(self.epoch, iterations, since / (time.perf_counter() - tic))
                tic, since = time.perf_counter(), 0
        drain()
        seconds = max(time.perf_counter() - started, 1e-9)
        return [
            ("pixel_accuracy", confusion.pixel_accuracy()),
            ("mIOU", confusion.mean_iou()),
            ("throughput", images / seconds),
        ]

    def save(self, epoch_number: int) -> list[Path]:
        """model_algo-1 (GluonCV parameters), hyperparams.json, and the any-size inference graph
        model_algo-1-symbol.json / model_algo-1-0000.params."""
        model_dir = self.job.paths.model_dir
        model_dir.mkdir(parents=True, exist_ok=True)
        # Reading BatchNorm's running statistics does not wait for the static graph that updates
        # them (measured: a read right after a step sees the old values): wait for every device.
        mx.nd.waitall()
        source, ctx = self.export_source()
        model = model_dir / MODEL
        # Under a temporary name, then renamed: a job stopped mid-write leaves no truncated model.
        with atomic_path(model) as temp:
            source.model.save_parameters(str(temp))
        hyperparams = model_dir / "hyperparams.json"
        write_text_atomic(hyperparams, json.dumps(self._string_hyperparameters(), indent=2, sort_keys=True))
        sym, params = export_symbol_params(self.export_whole, model_dir / MODEL, 0, ctx)
        return [model, hyperparams, sym, params]

    def _string_hyperparameters(self) -> dict[str, str]:
        final = self.schema.final_configuration(self.hp)
        return {k: str(v) for k, v in final.items()}

    def close(self) -> None:
        self.train_loader = self.val_loader = self.train_stream = self.val_stream = None
        if self.sync_devices:
            self.device_threads.shutdown()


def _nchw(images):
    """uint8 NHWC on a device -> float32 NCHW raw pixels (the network normalises them)."""
    return images.astype("float32").transpose((0, 3, 1, 2))
