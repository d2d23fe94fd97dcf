"""Image classification: ResNet on RecordIO or .lst input, the built-in's logs and artifacts."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon

from sagemaker_cv import logs, metrics
from sagemaker_cv.data import classification as data
from sagemaker_cv.data.image_records import LabelRules
from sagemaker_cv.devices import DevicePlan, contexts
from sagemaker_cv.distributed import data_shard
from sagemaker_cv.errors import ClientError
from sagemaker_cv.job import Job
from sagemaker_cv.networks import WithActivation, classification_network, export_symbol_params, materialize
from sagemaker_cv.optim import optimizer_params, step_schedule, steps_per_epoch
from sagemaker_cv.tasks.base import Metrics, Reporter, Task

log = logs.get("classification")
PREFIX = "image-classification"


class ClassificationReporter(Reporter):
    def batch(self, epoch, batch, speed, values):
        log.info(metrics.batch_line(epoch, batch, speed, values))

    def train_epoch(self, epoch, values, seconds, samples):
        for name, value in values:
            log.info(metrics.epoch_metric_line(epoch, "Train", name, value))
        log.info(metrics.time_cost_line(epoch, seconds))

    def validation(self, epoch, values):
        for name, value in values:
            log.info(metrics.epoch_metric_line(epoch, "Validation", name, value))

    def new_best(self, epoch, name, score):
        log.info("Storing the best model with validation %s: %f", name, score)

    def saved(self, path):
        log.info(metrics.saved_checkpoint_line(str(path)))


class Tally:
    """Metric sums kept on the devices and read (which waits for the devices) only when logged,
    so training never stalls on a metric. `since_mark` gives the values since its previous call."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.sums: dict[tuple[str, int], mx.nd.NDArray] = {}
        self.counts: dict[str, int] = {}
        self.marked: dict[str, tuple[float, int]] = {}

    def add(self, name: str, device: int, value: mx.nd.NDArray, count: int) -> None:
        key = (name, device)
        self.sums[key] = value if key not in self.sums else self.sums[key] + value
        self.counts[name] = self.counts.get(name, 0) + count

    def _totals(self) -> dict[str, tuple[float, int]]:
        totals: dict[str, float] = {}
        for (name, _), value in self.sums.items():
            totals[name] = totals.get(name, 0.0) + float(value.asscalar())
        return {name: (total, self.counts[name]) for name, total in totals.items()}

    def values(self, names: list[str]) -> Metrics:
        totals = self._totals()
        return [(n, totals[n][0] / totals[n][1]) for n in names if n in totals and totals[n][1]]

    def since_mark(self, names: list[str]) -> Metrics:
        totals = self._totals()
        out = []
        for n in names:
            if n in totals:
                s0, c0 = self.marked.get(n, (0.0, 0))
                if totals[n][1] > c0:
                    out.append((n, (totals[n][0] - s0) / (totals[n][1] - c0)))
        self.marked = totals
        return out


class ClassificationTask(Task):
    score_name = "accuracy"

    def __init__(self, job: Job, plan: DevicePlan, scratch: Path):
        self.hp = hp = job.hyperparameters
        self.job, self.plan, self.scratch = job, plan, scratch
        self.reporter = ClassificationReporter()
        self.log_interval = int(os.environ.get("SAGEMAKER_CV_LOG_INTERVAL", "20"))
        self.rules = LabelRules(hp.num_classes, hp.multi_label, hp.image_shape, hp.resize)
        self.inputs = data.resolve_inputs(job.channels, job.paths)
        self.dtype = "float16" if hp.precision_dtype == "float16" else "float32"
        self.train_records = self.val_records = None

    # ---- data ----------------------------------------------------------------------------------

    def check_data(self) -> dict[str, Any]:
        for split in ("train", "validation"):
            files = self.inputs.train if split == "train" else self.inputs.validation
            if self.inputs.format == "recordio":
                log.info("Searching for .rec files in %s.", self.job.paths.channel(split))
            else:
                for f in files:
                    log.info("Creating record files for %s", f.name)
            prepared = data.prepare(self.inputs, split, self.rules, self.scratch)
            if split == "train":
                self.train_records = prepared
            else:
                self.val_records = prepared
            if prepared and self.inputs.format == "lst":
                log.info("Done creating record files for %s (%d images)", prepared.source, prepared.count)
        if self.hp.multi_label:
            log.info("label-format is multi-hot")
        if self.train_records.count < self.hp.mini_batch_size:
            raise ClientError(
                f"{self.train_records.source}: {self.train_records.count} usable training image(s), fewer than "
                f"mini_batch_size={self.hp.mini_batch_size}; add images or lower mini_batch_size"
            )
        if self.train_records.count != self.hp.num_training_samples:
            log.warning(
                "num_training_samples=%d but the train channel holds %d usable images; the learning-rate "
                "schedule counts iterations from num_training_samples",
                self.hp.num_training_samples,
                self.train_records.count,
            )
        summary = {"train": self.train_records.count}
        if self.val_records:
            summary["validation"] = self.val_records.count
        for prepared in (self.train_records, self.val_records):
            if prepared and prepared.skipped:
                log.warning(self._skipped_note(prepared))
        return summary

    @staticmethod
    def _skipped_note(prepared) -> str:
        listed = ", ".join(prepared.skipped[:5]) + (" ..." if len(prepared.skipped) > 5 else "")
        return f"Skipped {len(prepared.skipped)} undecodable image(s) in {prepared.source}: {listed}"

    def epoch_notes(self) -> list[str]:
        return [self._skipped_note(p) for p in (self.train_records, self.val_records) if p and p.skipped]

    # ---- network and optimizer -----------------------------------------------------------------

    def setup(self) -> None:
        hp, plan = self.hp, self.plan
        self.ctx = contexts(plan)
        log.info("use_pretrained_model: %d", int(hp.use_pretrained_model))
        log.info("multi_label: %d", int(hp.multi_label))
        log.info(
            "Using pretrained model for initializing weights and transfer learning."
            if hp.use_pretrained_model
            else "Performing random weight initialization"
        )
        self.net = classification_network(
            hp.num_layers, hp.num_classes, hp.image_shape[0], hp.use_pretrained_model, self.ctx
        )
        materialize(self.net, hp.image_shape, self.ctx[0])
        self.export_net = None
        if self.dtype == "float16":
            self.net.cast("float16")
            # The exported model stays float32: a twin of the same structure receives the weights.
            twin = classification_network(hp.num_layers, hp.num_classes, hp.image_shape[0], False, [mx.cpu()])
            materialize(twin, hp.image_shape, mx.cpu())
            self.export_net = WithActivation(twin, "sigmoid" if hp.multi_label else "softmax")
        self.net.hybridize(static_alloc=True, static_shape=True)
        if self.export_net is None:
            self.export_net = WithActivation(self.net, "sigmoid" if hp.multi_label else "softmax")

        iters = steps_per_epoch(hp.num_training_samples, hp.mini_batch_size, plan.num_workers)
        schedule = step_schedule(hp.learning_rate, hp.lr_scheduler_step or (), hp.lr_scheduler_factor, iters)
        opt = optimizer_params(
            hp.optimizer,
            learning_rate=hp.learning_rate,
            momentum=hp.momentum,
            weight_decay=hp.weight_decay,
            beta_1=hp.beta_1,
            beta_2=hp.beta_2,
            eps=hp.eps,
            gamma=hp.gamma,
            lr_scheduler=schedule,
            multi_precision=self.dtype == "float16",
        )
        self.trainer = gluon.Trainer(self.net.collect_params(), hp.optimizer, opt, kvstore=plan.kvstore)
        self._log_parameters(iters)

        if hp.multi_label:
            self.loss_fn = gluon.loss.SigmoidBinaryCrossEntropyLoss()
            self.pos_weight = None
            if hp.use_weighted_loss:
                positives = self.train_records.class_counts.astype(np.float64)
                weights = (self.train_records.count - positives) / np.maximum(positives, 1.0)
                log.info("Weighted loss: positive-class weights %s", np.round(weights, 3).tolist())
                self.pos_weight = [mx.nd.array(weights.reshape(1, -1), ctx=c) for c in self.ctx]
        else:
            self.loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
        self.metric_names = ["accuracy"]
        if hp.top_k and not hp.multi_label:
            self.metric_names.append(f"top_k_accuracy_{hp.top_k}")
        self.tally = Tally()

        parts, part = data_shard(self.job.channels["train"].distribution, plan.num_workers, plan.rank)
        self.train_iter = data.record_iter(
            self.train_records,
            batch_size=hp.mini_batch_size,
            rules=self.rules,
            train=True,
            augmentation=hp.augmentation_type,
            num_parts=parts,
            part_index=part,
        )
        self.val_iter = None
        if self.val_records and plan.rank == 0:
            self.val_iter = data.record_iter(
                self.val_records, batch_size=hp.mini_batch_size, rules=self.rules, train=False
            )
        # Every worker must run the same number of batches (dist_sync waits for all). A host's
        # ShardedByS3Key part has its own size, so the count comes from the total all hosts share.
        total = self.train_records.count if parts == plan.num_workers else hp.num_training_samples
        self.steps = steps_per_epoch(total, hp.mini_batch_size, plan.num_workers)

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

    def _log_parameters(self, iters: int) -> None:
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
                iters,
            )
        log.info("--------------------")
        log.info("Setting number of threads: %d", os.cpu_count() or 1)
        log.info("Training on %d %s device(s): %s", len(self.ctx), self.plan.kind, self.ctx)

    # ---- the loop's callbacks ------------------------------------------------------------------

    def batches(self, epoch: int) -> Iterator[Any]:
        self.train_iter.reset()
        produced = resets = 0
        while produced < self.steps:
            try:
                batch = self.train_iter.next()
            except StopIteration:
                resets += 1
                if resets > 1 and produced == 0:
                    raise RuntimeError("the training iterator yields no batches") from None
                self.train_iter.reset()
                continue
            produced += 1
            yield batch

    def _split(self, batch):
        """One slice per device, sized by the plan's documented rule (the first devices take the
        remainder; gluon's uneven split would give it all to the last)."""
        sizes = self.plan.per_device_batch(batch.data[0].shape[0])
        bounds = [sum(sizes[:i]) for i in range(len(sizes) + 1)]
        slices = [(a, b, c) for a, b, c in zip(bounds, bounds[1:], self.ctx) if b > a]
        data = [batch.data[0][a:b].as_in_context(c) for a, b, c in slices]
        label = [batch.label[0][a:b].as_in_context(c) for a, b, c in slices]
        if self.dtype == "float16":
            data = [d.astype("float16") for d in data]
        return data, label

    def train_step(self, batch) -> int:
        data, labels = self._split(batch)
        with autograd.record():
            outputs = [self._forward(x) for x in data]
            if self.hp.multi_label and self.pos_weight is not None:
                losses = [self.loss_fn(o, y, None, w) for o, y, w in zip(outputs, labels, self.pos_weight)]
            else:
                losses = [self.loss_fn(o, y) for o, y in zip(outputs, labels)]
        autograd.backward(losses)
        samples = batch.data[0].shape[0]
        # Gradients are summed over devices (and over workers by the kvstore): normalise by the global batch.
        self.trainer.step(samples * self.plan.num_workers)
        for device, (output, label, loss) in enumerate(zip(outputs, labels, losses)):
            self._score(self.tally, device, output, label)
            self.tally.add("loss", device, loss.sum(), loss.shape[0])
        return samples

    def _forward(self, x):
        out = self.net(x)
        return out.astype("float32") if self.dtype == "float16" else out

    def running_metrics(self) -> Metrics:
        return self.tally.since_mark(self.metric_names)

    def train_metrics(self) -> Metrics:
        values = self.tally.values([*self.metric_names, "loss"])
        self.tally.reset()
        return values

    def evaluate(self) -> Metrics | None:
        if self.val_iter is None:
            return None
        tally = Tally()
        self.val_iter.reset()
        remaining = self.val_records.count
        for batch in self.val_iter:
            # ImageRecordIter fills the last batch past the end (and reports no pad without
            # round_batch): count each sample exactly once.
            keep = min(batch.data[0].shape[0], remaining)
            remaining -= keep
            if keep <= 0:
                break
            data, labels = self._split(batch)
            outputs = [self._forward(x) for x in data]
            out = mx.nd.concat(*[o.as_in_context(mx.cpu()) for o in outputs], dim=0)[:keep]
            lab = mx.nd.concat(*[y.as_in_context(mx.cpu()) for y in labels], dim=0)[:keep]
            self._score(tally, 0, out, lab)
        return tally.values(self.metric_names)

    def save(self, epoch_number: int) -> list[Path]:
        model_dir = self.job.paths.model_dir
        model_dir.mkdir(parents=True, exist_ok=True)
        ctx = self.ctx[0]
        if self.export_net.net is not self.net:  # float16 training: copy into the float32 twin
            source = self.net._collect_params_with_prefix()
            for key, param in self.export_net.net._collect_params_with_prefix().items():
                param.set_data(source[key].data(ctx).astype("float32").as_in_context(mx.cpu()))
            ctx = mx.cpu()
        sym_path, params_path = export_symbol_params(self.export_net, model_dir / PREFIX, epoch_number, ctx)
        shapes = model_dir / "model-shapes.json"
        shapes.write_text(
            json.dumps([{"shape": [self.hp.mini_batch_size, *self.hp.image_shape], "name": "data"}])
        )
        return [sym_path, params_path, shapes]

    def close(self) -> None:
        self.train_iter = self.val_iter = None
