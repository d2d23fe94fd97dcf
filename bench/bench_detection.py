"""Object detection (SSD) throughput, each figure a ratio against a reference run in the same process,
on the same network, data and batch:

1. recipe: images/s of our trainer (task + engine hooks) over GluonCV's own recipe as train_ssd.py
   runs it: SSDDefaultTrainTransform (augmentation and targets per image) in a gluon DataLoader with
   worker processes, the multibox loss, trainer.step(1) (target >= 1.0);
2. bare: images/s of our trainer over a bare hybridized Gluon SSD loop fed precomputed batches
   (images and targets already in memory: the network alone) (target >= 0.95).

On CPUs the data work per image (decode, augment, targets) is of the order of the network step, so
these ratios measure the input pipeline as much as the loop.

    python bench/bench_detection.py [--base resnet-50] [--batch 8] [--steps 8] [--repeats 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import mxnet as mx
from mxnet import autograd, gluon

from sagemaker_cv import algorithms
from sagemaker_cv.algorithms.detection.network import build_detector
from sagemaker_cv.algorithms.detection.task import DetectionTask
from sagemaker_cv.contract.paths import MLPaths
from sagemaker_cv.inputs.recordio import write_index
from sagemaker_cv.tools.detection_demo import write_detection_tree
from sagemaker_cv.training import engine
from sagemaker_cv.training import hooks as h
from sagemaker_cv.training.devices import plan_devices
from sagemaker_cv.training.job import load_job

SHAPE = 300
WORKERS = 4  # train_ssd.py's default --num-workers; our iterator also decodes with 4 threads


def make_tree(root: Path, base: str, batch: int, images: int) -> None:
    write_detection_tree(
        root,
        content="images",
        train_images=images,
        val_images=4,
        max_objects=3,
        hyperparameters={
            "base_network": base,
            "mini_batch_size": str(batch),
            "epochs": "1000",
            "optimizer": "sgd",
            "learning_rate": "0.0001",
        },
    )


class Ours:
    """The real task and loop (batch lines, metrics, timers; no validation or saving)."""

    def __init__(self, root: Path, scratch: Path):
        job = load_job(MLPaths(root), algorithms.get("object-detection"), num_gpus=0)
        self.task = DetectionTask(job, plan_devices(0), scratch)
        self.prepared = self.task.check_data()
        self.task.setup(self.prepared)
        self.hooks = [h.EpochTimer(), h.Speedometer(20), h.ModelWriter(enabled=False)]

    def run(self, steps: int) -> float:
        self.task.steps = steps
        tic = time.perf_counter()
        state = engine.fit(self.task, self.hooks, epochs=1)
        mx.nd.waitall()
        return state.epoch_samples / (time.perf_counter() - tic)


def _ssd_step(net, trainer, loss_fn, x, cls_targets, box_targets) -> list:
    with autograd.record():
        cls_preds, box_preds, _ = net(x)
        total, cls_loss, box_loss = loss_fn([cls_preds], [box_preds], [cls_targets], [box_targets])
    autograd.backward(total)
    trainer.step(1)
    return cls_loss


class Recipe:
    """GluonCV's train_ssd.py: per-image SSDDefaultTrainTransform with targets in DataLoader workers."""

    def __init__(
        self,
        rec: Path,
        scratch: Path,
        base: str,
        batch: int,
        classes: int,
        *,
        sgd: dict | None = None,
        workers: int = WORKERS,
        detector=None,
        static: bool = True,
    ):
        """`sgd`: the optimizer's arguments (learning_rate, wd, momentum); `detector`: a network
        from build_detector to train (a fresh one by default); `static`: hybridize with a static
        graph, as train_ssd.py does (a dynamic one lets `detector.net` evaluate the same weights)."""
        from gluoncv.data import RecordFileDetection
        from gluoncv.data.batchify import Stack, Tuple
        from gluoncv.data.transforms.presets.ssd import SSDDefaultTrainTransform
        from gluoncv.loss import SSDMultiBoxLoss

        write_index(scratch / "recipe.idx", [rec])
        (scratch / "recipe.rec").symlink_to(rec)
        dataset = RecordFileDetection(str(scratch / "recipe.rec"))
        if detector is None:
            detector = build_detector(base, classes, SHAPE, pretrained=False, ctx=[mx.cpu()])
        self.detector = detector
        self.net = detector.ssd  # GluonCV's own SSD block: it takes the transform's normalised tensors
        self.net.hybridize(static_alloc=static, static_shape=static)
        with autograd.train_mode():  # as train_ssd.py: the anchors of the training graph's output
            _, _, anchors = self.net(mx.nd.zeros((1, 3, SHAPE, SHAPE)))
        self.loader = gluon.data.DataLoader(
            dataset.transform(SSDDefaultTrainTransform(SHAPE, SHAPE, anchors)),
            batch,
            shuffle=True,
            batchify_fn=Tuple(Stack(), Stack(), Stack()),
            last_batch="rollover",
            num_workers=workers,
        )
        self.trainer = gluon.Trainer(
            self.net.collect_params(), "sgd", sgd or {"learning_rate": 1e-4, "wd": 5e-4, "momentum": 0.9}
        )
        self.loss_fn = SSDMultiBoxLoss()
        self.metric = mx.metric.Loss("CrossEntropy")
        self.batch = batch

    def run(self, steps: int) -> float:
        samples = 0
        tic = time.perf_counter()
        while samples < steps * self.batch:
            for batch in self.loader:
                # As train_ssd.py's split_and_load: the workers' batches live in shared memory.
                x, cls_targets, box_targets = (a.as_in_context(mx.cpu()) for a in batch)
                cls_loss = _ssd_step(self.net, self.trainer, self.loss_fn, x, cls_targets, box_targets)
                self.metric.update(0, [loss * x.shape[0] for loss in cls_loss])
                samples += x.shape[0]
                if samples >= steps * self.batch:
                    break
        mx.nd.waitall()
        return samples / (time.perf_counter() - tic)


class Bare:
    """The network alone: forward, loss, backward, update on batches prepared beforehand."""

    def __init__(self, ours: Ours, base: str, classes: int, batches: int):
        task = ours.task
        self.batches = []
        iterator = task.train_pass()
        for _ in range(batches):
            batch = next(iterator)
            (x, cls_targets, box_targets), *_ = task.device_parts(batch)
            self.batches.append((x.copy(), cls_targets.copy(), box_targets.copy()))
        from gluoncv.loss import SSDMultiBoxLoss

        detector = build_detector(base, classes, SHAPE, pretrained=False, ctx=[mx.cpu()])
        self.net = detector.net
        self.net(mx.nd.zeros((1, 3, SHAPE, SHAPE)))
        self.net.hybridize(static_alloc=True, static_shape=True)
        self.trainer = gluon.Trainer(
            self.net.collect_params(), "sgd", {"learning_rate": 1e-4, "wd": 5e-4, "momentum": 0.9}
        )
        self.loss_fn = SSDMultiBoxLoss()

    def run(self, steps: int) -> float:
        tic = time.perf_counter()
        samples = 0
        for i in range(steps):
            x, cls_targets, box_targets = self.batches[i % len(self.batches)]
            _ssd_step(self.net, self.trainer, self.loss_fn, x, cls_targets, box_targets)
            samples += x.shape[0]
        mx.nd.waitall()
        return samples / (time.perf_counter() - tic)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", default="resnet-50", choices=("resnet-50", "vgg-16"))
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--images", type=int, default=64)
    args = parser.parse_args()
    classes = 3
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ml"
        make_tree(root, args.base, args.batch, args.images)
        (Path(tmp) / "ours").mkdir()
        (Path(tmp) / "recipe").mkdir()
        ours = Ours(root, Path(tmp) / "ours")
        runs = {
            "ours": ours,
            "recipe": Recipe(
                ours.prepared.data["train"].rec, Path(tmp) / "recipe", args.base, args.batch, classes
            ),
            "bare": Bare(ours, args.base, classes, batches=4),
        }
        print(
            f"SSD {args.base} at {SHAPE} px, batch {args.batch}, {args.steps} steps, best of {args.repeats} "
            f"interleaved runs after a warm-up, {WORKERS} decoding threads/workers"
        )
        best = dict.fromkeys(runs, 0.0)
        for run in runs.values():  # warm-up: graph building, memory pools, worker start
            run.run(2)
        for _ in range(args.repeats):  # interleaved: load from other processes hits all alike
            for name, run in runs.items():
                best[name] = max(best[name], run.run(args.steps))
        print(
            f"ours: {best['ours']:.2f} img/s  recipe: {best['recipe']:.2f} img/s  bare loop: {best['bare']:.2f} img/s"
        )
        print(f"ours / GluonCV recipe: {best['ours'] / best['recipe']:.3f} (target >= 1.0)")
        print(f"ours / bare loop:      {best['ours'] / best['bare']:.3f} (target >= 0.95)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
