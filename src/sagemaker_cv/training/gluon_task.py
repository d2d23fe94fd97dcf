"""What every Gluon algorithm shares, written once because the distributed rules in it are the
easiest to get subtly wrong:

* the devices of the host, and a batch split across them by the plan's documented rule;
* the same number of batches per epoch on every worker (dist_sync waits for all of them);
* the Trainer, with the learning-rate schedule inside the optimizer (a distributed kvstore ignores
  Trainer.set_learning_rate) and the optimizer's arguments from the algorithm's schema;
* gradients normalised by the global batch (the kvstore sums over workers);
* FullyReplicated data split by rank, ShardedByS3Key data read whole;
* validation only on the first worker (the primary host, which alone writes the model);
* float16 training with float32 master weights, exported through a float32 twin;
* metric sums that stay on the devices (`Tally`);
* weights and optimizer states that a restarted job can load.

A Task extends it with what is its own: network, data, loss, metrics, evaluation and export.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import mxnet as mx
from mxnet import autograd, gluon
from mxnet.gluon import HybridBlock

from sagemaker_cv.contract import logs
from sagemaker_cv.contract.config import data_shard
from sagemaker_cv.contract.environment import JobSettings
from sagemaker_cv.contract.errors import ClientError
from sagemaker_cv.training.devices import DevicePlan, contexts
from sagemaker_cv.training.export import copy_params, init_trainer, materialize, structural_params
from sagemaker_cv.training.incremental import PREPARED_KEY
from sagemaker_cv.training.job import Job
from sagemaker_cv.training.optim import optimizer_params, step_schedule, steps_per_epoch
from sagemaker_cv.training.seeding import derive
from sagemaker_cv.training.tally import Tally
from sagemaker_cv.training.task import Metrics, Prepared, Task

DEVICE_STATISTICS = "device_statistics.params"
log = logs.get("training")


def log_interval_from_env(environ: Mapping[str, str] | None = None) -> int:
    return JobSettings.from_env(environ).log_interval


def skipped_note(source: str, count: int, names: list[str]) -> str:
    """The warning about undecodable images, repeated after every epoch (`names`: the first ones)."""
    listed = ", ".join(names[:5]) + (" ..." if count > 5 else "")
    return f"Skipped {count} undecodable image(s) in {source}: {listed}"


def equal_batches(make_pass: Callable[[], Iterable], steps: int) -> Iterator[Any]:
    """Exactly `steps` batches, starting a new pass over the data whenever one runs out: every
    worker of a dist_sync job must run the same number of steps, whatever its share of the data."""
    produced = 0
    while produced < steps:
        got = 0
        for batch in make_pass():
            yield batch
            produced += 1
            got += 1
            if produced == steps:
                return
        if not got:
            raise RuntimeError("the training data yields no batches")


class GluonTask(Task):
    def __init__(self, job: Job, plan: DevicePlan, scratch: Path):
        self.job, self.plan, self.scratch = job, plan, scratch
        self.hp = job.hyperparameters
        self.schema = job.algorithm.schema
        self.log_interval = log_interval_from_env()
        self.dtype = "float16" if self.hp.get("precision_dtype") == "float16" else "float32"
        self.tally = Tally()
        self.notes: tuple[str, ...] = ()
        #: Pipe-mode channels (`inputs.stream.RecordStream`), set by `setup_data` when they stream
        self.train_stream = self.val_stream = None
        self.epoch, self.passes = 0, 0

    # ---- what a task provides -----------------------------------------------------------------

    @abstractmethod
    def build_network(self, pretrained: bool, ctx: list) -> HybridBlock:
        """The training network with every parameter initialised (loaded or fresh) on `ctx`."""

    @abstractmethod
    def input_shape(self) -> tuple[int, ...]:
        """(channels, height, width) of one training sample."""

    @abstractmethod
    def setup_data(self, prepared: Prepared) -> tuple[Callable[[], Iterable], int]:
        """Build the iterators (validation ones only when `self.validates`), the loss and the
        metric names. Returns a function that starts one pass over this worker's training data
        and the number of usable training samples in the whole channel; or, for a stream (Pipe
        mode), a function that yields a whole epoch with the equal batch count of
        `pipe.batches_per_epoch`, and None."""

    @abstractmethod
    def device_parts(self, batch: Any) -> list[tuple]:
        """The batch as one tuple of arrays per device (usually `self.split(...)`)."""

    @abstractmethod
    def forward(self, parts: list[tuple]) -> tuple[list, Any]:
        """Inside autograd.record: one loss array per device, and what `score` needs."""

    @abstractmethod
    def score(self, parts: list[tuple], outputs: Any, losses: list) -> None:
        """Add this batch's training metrics to `self.tally` (device arrays, no waiting)."""

    @abstractmethod
    def validation_scores(self) -> Metrics | None:
        """Validation metrics on this (primary) worker, or None without validation data."""

    #: names of the training metrics, in log order
    metric_names: list[str]

    def load_start_model(self, directory: Path) -> None:
        """Incremental training: load the earlier job's weights (unpacked in `directory`, checked
        by training.incremental) into the float32 network, before any float16 cast."""
        raise NotImplementedError(f"{type(self).__name__} does not load models from a model channel")

    def batch_samples(self, batch: Any) -> int:
        """Samples in one host batch."""
        return batch.data[0].shape[0]

    def gradient_denominator(self, samples: int) -> float:
        """What this worker's summed gradient is divided by. Losses summed per sample: the batch.
        (A loss already normalised over the batch, like SSD's, returns 1.)"""
        return samples

    def lr_schedule(self, iters_per_epoch: int):
        """The learning-rate schedule inside the optimizer; by default the built-ins' step decay."""
        return step_schedule(
            self.hp.learning_rate,
            self.hp.get("lr_scheduler_step") or (),
            self.hp.get("lr_scheduler_factor", 0.1),
            iters_per_epoch,
        )

    def trainable_parameters(self) -> gluon.ParameterDict:
        return self.net.collect_params()

    # ---- shared ---------------------------------------------------------------------------------

    def check_splits(
        self, splits: Iterable[str], streams: Mapping[str, Any], prepare: Callable[[str], Any]
    ) -> Prepared:
        """The split loop of every algorithm's check_data: a split in `streams` (Pipe mode) is
        logged and checked as it arrives; the others are prepared (`prepare(split)`: checked and
        made readable, an object with `source`, `count`, `skipped` (the first names) and
        `skipped_count`) and the training count is checked; every split's problems end in one
        ClientError. Then skipped images are noted."""
        prepared, problems = {}, []
        for split in splits:
            if split in streams:
                self.log_streamed(split)
                continue
            try:
                prepared[split] = prepare(split)
                if split == "train":
                    self.check_training_count(prepared[split])
            except ClientError as exc:  # every split is checked: one error lists every problem
                problems.extend(exc.problems)
        if problems:
            raise ClientError(problems)
        notes = tuple(self.skipped_note(p) for p in prepared.values() if p.skipped)
        for note in notes:
            log.warning(note)
        return Prepared({split: p.count for split, p in prepared.items()}, notes, {**prepared, **streams})

    def skipped_note(self, prepared) -> str:
        """The warning about a split's undecodable images, repeated after every epoch."""
        return skipped_note(prepared.source, prepared.skipped_count, prepared.skipped)

    def log_streamed(self, split: str) -> None:
        """Say that a split is read in Pipe mode: its FIFOs are not there to be checked before
        training, so its records are checked as they arrive."""
        channel = self.job.paths.channel(split)
        log.info(
            "Reading %s in Pipe mode from %s_0, %s_1, ... (checked as it streams)", split, channel, channel
        )

    def check_training_count(self, prepared) -> None:
        """Refuse fewer usable training images (of the prepared train split) than a batch; say when
        num_training_samples (which sets up the schedule) disagrees with the data."""
        hp, source, count = self.hp, prepared.source, prepared.count
        if count < hp.mini_batch_size:
            raise ClientError(
                f"{source}: {count} usable training image(s), fewer than "
                f"mini_batch_size={hp.mini_batch_size}; add images or lower mini_batch_size"
            )
        if count != hp.num_training_samples:
            log.warning(
                "num_training_samples=%d but the train channel holds %d usable images; the learning-rate "
                "schedule counts iterations from num_training_samples",
                hp.num_training_samples,
                count,
            )

    @property
    def validates(self) -> bool:
        """Only the first worker validates: it is on the primary host, which writes the model."""
        return self.plan.rank == 0

    def setup(self, prepared: Prepared) -> None:
        hp = self.hp
        self.ctx = contexts(self.plan)
        self.notes = prepared.notes
        start = prepared.data.get(PREPARED_KEY)  # incremental training: the model channel's model
        self.net = self.build_network(bool(hp.get("use_pretrained_model")) and start is None, self.ctx)
        materialize(self.net, self.input_shape(), self.ctx[0])
        if start is not None:
            self.load_start_model(start.directory)
        self.twin = None  # the float32 copy that float16 training exports through
        if self.dtype == "float16":
            self.net.cast("float16")
            self.twin = self.build_network(False, [mx.cpu()])
            materialize(self.twin, self.input_shape(), mx.cpu())
        self.net.hybridize(static_alloc=True, static_shape=True)

        self.iters_per_epoch = steps_per_epoch(
            hp.num_training_samples, hp.mini_batch_size, self.plan.num_workers
        )
        self.trainer = gluon.Trainer(
            self.trainable_parameters(),
            hp.optimizer,
            optimizer_params(
                self.schema,
                hp,
                lr_scheduler=self.lr_schedule(self.iters_per_epoch),
                multi_precision=self.dtype == "float16",
            ),
            kvstore=self.plan.kvstore,
        )
        self.train_pass, count = self.setup_data(prepared)
        if count is None:  # a stream (Pipe mode) runs the equal batch count of pipe.batches_per_epoch
            self.steps = None
            return
        parts, _ = self.shard("train")
        # A host's ShardedByS3Key part has its own size, so the count every worker agrees on is
        # then the documented total; a FullyReplicated channel holds all of it on every host.
        total = count if parts == self.plan.num_workers else hp.num_training_samples
        self.steps = steps_per_epoch(total, hp.mini_batch_size, self.plan.num_workers)

    def shard(self, channel: str) -> tuple[int, int]:
        """(num_parts, part_index) of a channel's data that this worker reads."""
        return data_shard(self.job.channels[channel].distribution, self.plan.num_workers, self.plan.rank)

    def split(self, *arrays) -> list[tuple]:
        """One tuple of slices per device, sized by the plan's documented rule (the first devices
        take the remainder; gluon's uneven split would give it all to the last)."""
        sizes = self.plan.per_device_batch(arrays[0].shape[0])
        bounds = [sum(sizes[:i]) for i in range(len(sizes) + 1)]
        return [
            tuple(a[lo:hi].as_in_context(ctx) for a in arrays)
            for lo, hi, ctx in zip(bounds, bounds[1:], self.ctx)
            if hi > lo
        ]

    def cast_input(self, x):
        return x.astype("float16") if self.dtype == "float16" else x

    def as_float32(self, y):
        return y.astype("float32") if self.dtype == "float16" else y

    def batches(self, epoch: int) -> Iterator[Any]:
        self.epoch, self.passes = epoch, 0
        if self.steps is None:
            return iter(self.train_pass())
        return equal_batches(self.train_pass, self.steps)

    def pass_seed(self) -> int:
        """A seed for the next pass over the training data: a function of the job seed, the
        epoch and the pass only, so a resumed job shuffles and augments as an uninterrupted one."""
        self.passes += 1
        return derive(self.job.seed, "data", self.epoch, self.passes, self.plan.rank)

    def forward_backward(self, parts: list[tuple]) -> tuple[list, Any]:
        """Forward (recorded) and backward over every device's part; returns `forward`'s result.
        A task whose devices must meet inside a step (SyncBatchNorm) runs it per device in threads."""
        with autograd.record():
            losses, outputs = self.forward(parts)
        autograd.backward(losses)
        return losses, outputs

    def train_step(self, batch: Any) -> int:
        parts = self.device_parts(batch)
        losses, outputs = self.forward_backward(parts)
        samples = self.batch_samples(batch)
        # Gradients are summed over devices (and over workers by the kvstore): normalise by the global batch.
        self.trainer.step(self.gradient_denominator(samples) * self.plan.num_workers)
        self.score(parts, outputs, losses)
        return samples

    def running_metrics(self) -> Metrics:
        return self.tally.since_mark(self.metric_names)

    def train_metrics(self) -> Metrics:
        values = self.tally.values([*self.metric_names, "loss"])
        self.tally.reset()
        return values

    def epoch_validation(self) -> Metrics | None:
        return self.validation_scores() if self.validates else None

    def epoch_notes(self) -> list[str]:
        """The data's notes, and the undecodable images each Pipe-mode stream skipped."""
        streams = [s for s in (self.train_stream, self.val_stream) if s is not None and s.skipped]
        return [
            *self.notes,
            *(skipped_note(f"the {s.channel.name} stream", len(s.skipped), s.skipped) for s in streams),
        ]

    def export_source(self) -> tuple[HybridBlock, Any]:
        """The float32 network to export, with this step's weights, and the context to read them on."""
        if self.twin is None:
            return self.net, self.ctx[0]
        copy_params(self.net, self.twin, self.ctx[0])
        return self.twin, mx.cpu()

    # ---- state for a restarted job --------------------------------------------------------------

    def save_state(self, directory: Path) -> list[Path]:
        """Weights and optimizer states (with the update count that drives the schedule).

        On several hosts the optimizer runs on the parameter servers (update_on_kvstore), and
        MXNet cannot save its states from a worker: only the weights are written, and a resumed
        job restarts momentum (or Adam's moments) from zero with the schedule where it was
        (`load_state`)."""
        directory.mkdir(parents=True, exist_ok=True)
        weights, states = directory / "weights.params", directory / "optimizer.states"
        self.net.save_parameters(str(weights))
        files = [weights]
        if len(self.ctx) > 1:
            # Each device keeps its own BatchNorm running statistics, and save_parameters stores
            # their average: keep every device's, so a resumed job goes on with exactly them.
            statistics = directory / DEVICE_STATISTICS
            mx.nd.save(
                str(statistics),
                {
                    f"{i}:{name}": value
                    for name, param in structural_params(self.net).items()
                    if param.grad_req == "null"
                    for i, value in enumerate(param.list_data())
                },
            )
            files.append(statistics)
        if not self.plan.distributed:
            self.trainer.save_states(str(states))
            files.append(states)
        return files

    def load_state(self, directory: Path, updates: int, optimizer: bool = True) -> None:
        """Continue from `save_state`'s files after `updates` optimizer steps; `optimizer=False`
        keeps this job's fresh optimizer (its hyperparameters changed)."""
        self.net.load_parameters(str(directory / "weights.params"), ctx=self.ctx, cast_dtype=True)
        states = directory / "optimizer.states"
        if optimizer and states.exists() and not self.plan.distributed:
            self.trainer.load_states(str(states))
        else:
            self._fresh_optimizer_at(updates, warn=optimizer and self.plan.distributed)
        if (directory / DEVICE_STATISTICS).exists() and len(self.ctx) > 1:
            # After the kvstore's first pull, which copies the first device's values to all.
            init_trainer(self.trainer)
            saved = mx.nd.load(str(directory / DEVICE_STATISTICS))
            for name, param in structural_params(self.net).items():
                for i, value in enumerate(param.list_data()):
                    if f"{i}:{name}" in saved:  # another device count keeps the average
                        value[:] = saved[f"{i}:{name}"].astype(value.dtype).as_in_context(value.context)

    def _fresh_optimizer_at(self, updates: int, warn: bool) -> None:
        if warn:
            log.warning(
                "Optimizer states are not in checkpoints of multi-host jobs (the parameter servers hold "
                "them, and MXNet cannot save them): momentum restarts from zero, the learning-rate "
                "schedule continues from update %d",
                updates,
            )
        # Set before the first step, so the optimizer the kvstore sends to the servers carries it.
        opt = self.trainer.optimizer
        opt.begin_num_update = opt.num_update = updates
