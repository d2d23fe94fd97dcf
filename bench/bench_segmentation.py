"""Semantic segmentation: speed against GluonCV's recipe and a bare Gluon loop, and memory.

    python bench/bench_segmentation.py                  # throughput ratios at a small crop (a few minutes)
    python bench/bench_segmentation.py --rss            # + peak RSS of CLI training runs at crop 480, batch 4

Throughput (images/s, FCN ResNet-50, one CPU context) of three loops on the same images:

* ours: SegmentationTask.train_step over its own batches (OpenCV augmentation in a thread pool,
  uint8 batches, hybridized static graph, per-sample loss, device-side loss sums);
* recipe: GluonCV's `SegmentationDataset._sync_transform` (PIL) in a gluon DataLoader with worker
  processes, `MixSoftmaxCrossEntropyLoss(aux=True, aux_weight=0.5)` through DataParallelModel and
  DataParallelCriterion, as scripts/segmentation/train.py runs it (no hybridize, waitall and the
  loss read every step);
* bare: the hybridized network and our loss on batches already on the device.

The loops run in one process, interleaved over several rounds, and the median of each is compared
(the machine is shared: timings are noisy). RSS is measured in separate processes (`os.wait4`).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon

from sagemaker_cv import algorithms
from sagemaker_cv.algorithms.segmentation.loss import MixedLoss
from sagemaker_cv.algorithms.segmentation.task import SegmentationTask
from sagemaker_cv.contract.paths import MLPaths
from sagemaker_cv.tools.segmentation_demo import write_segmentation_tree
from sagemaker_cv.training.devices import plan_devices
from sagemaker_cv.training.job import load_job

ALGORITHM = "semantic-segmentation"


def tree(root: Path, images: int, sizes: tuple[int, int], **hp) -> Path:
    write_segmentation_tree(root, train=images, validation=2, sizes=sizes, hyperparameters=hp)
    return root


def our_task(root: Path, devices: int = 1) -> SegmentationTask:
    job = load_job(MLPaths(root), algorithms.get(ALGORITHM), num_gpus=0)
    task = SegmentationTask(job, plan_devices(0, cpu_devices=devices), root / "scratch")
    task.setup(task.check_data())
    return task


class Ours:
    name = "ours"

    def __init__(self, root: Path):
        self.task = our_task(root)
        self.batches = iter(())

    def run(self, steps: int) -> int:
        samples = 0
        for _ in range(steps):
            batch = next(self.batches, None)
            if batch is None:
                self.batches = self.task.batches(0)
                batch = next(self.batches)
            samples += self.task.train_step(batch)
        self.task.train_metrics()  # reads the loss sums: waits for the devices
        return samples


class Recipe:
    """GluonCV's scripts/segmentation/train.py loop on the same files."""

    name = "recipe"

    def __init__(
        self,
        root: Path,
        crop: int,
        base: int,
        batch: int,
        workers: int,
        *,
        model=None,
        sgd: dict | None = None,
    ):
        """`model`: a GluonCV FCN (with aux head) to train, a fresh Xavier-initialised one by
        default; `sgd`: the optimizer's arguments (learning_rate, wd, momentum, lr_scheduler)."""
        from gluoncv.data.segbase import SegmentationDataset
        from gluoncv.loss import MixSoftmaxCrossEntropyLoss
        from gluoncv.model_zoo.fcn import FCN
        from gluoncv.utils.parallel import DataParallelCriterion, DataParallelModel
        from mxnet.gluon.data.vision import transforms
        from PIL import Image

        images = sorted((root / "input/data/train").iterdir())

        class Files(SegmentationDataset):
            NUM_CLASS = 3

            def __getitem__(self, i):
                img = Image.open(images[i]).convert("RGB")
                mask = Image.open(root / "input/data/train_annotation" / f"{images[i].stem}.png")
                img, mask = self._sync_transform(img, mask)
                return self.transform(img), mask

            def _mask_transform(self, mask):  # as VOCSegmentation: 255 becomes the ignored -1
                target = np.array(mask).astype("int32")
                target[target == 255] = -1
                return mx.nd.array(target, mx.cpu(0))

            def __len__(self):
                return len(images)

        normalize = transforms.Compose(
            [transforms.ToTensor(), transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])]
        )
        dataset = Files(str(root), "train", "train", normalize, base_size=base, crop_size=crop)
        self.loader = gluon.data.DataLoader(
            dataset, batch, shuffle=True, last_batch="rollover", num_workers=workers
        )
        self.batch = batch
        if model is None:
            model = FCN(3, backbone="resnet50", aux=True, pretrained_base=False, crop_size=crop)
            model.initialize(mx.init.Xavier(), ctx=[mx.cpu()])
        self.net = DataParallelModel(model, [mx.cpu()], False)
        self.criterion = DataParallelCriterion(
            MixSoftmaxCrossEntropyLoss(True, aux_weight=0.5), [mx.cpu()], False
        )
        self.trainer = gluon.Trainer(
            model.collect_params(), "sgd", sgd or {"learning_rate": 0.001, "wd": 1e-4, "momentum": 0.9}
        )
        self.batches = iter(())

    def run(self, steps: int) -> int:
        for _ in range(steps):
            batch = next(self.batches, None)
            if batch is None:
                self.batches = iter(self.loader)
                batch = next(self.batches)
            data, target = batch
            with autograd.record(True):
                outputs = self.net(data)
                losses = self.criterion(outputs, target)
                mx.nd.waitall()
                autograd.backward(losses)
            self.trainer.step(self.batch)
            for loss in losses:
                loss.asnumpy()
            mx.nd.waitall()
        return steps * self.batch


class Bare:
    """The same hybridized network and loss on batches already on the device: the ceiling."""

    name = "bare"

    def __init__(self, batch: int, crop: int):
        from sagemaker_cv.algorithms.segmentation.network import segmentation_network

        self.net = segmentation_network("fcn", "resnet-50", 3, crop, False, [mx.cpu()])
        self.net.hybridize(static_alloc=True, static_shape=True)
        self.loss = MixedLoss(0.5)
        self.loss.hybridize()
        self.trainer = gluon.Trainer(
            self.net.collect_params(), "sgd", {"learning_rate": 0.001, "wd": 1e-4, "momentum": 0.9}
        )
        rng = np.random.default_rng(0)
        self.data = [mx.nd.array(rng.uniform(0, 255, (batch, 3, crop, crop))) for _ in range(4)]
        self.label = [mx.nd.array(rng.integers(0, 3, (batch, crop, crop))) for _ in range(4)]
        self.batch = batch

    def run(self, steps: int) -> int:
        for i in range(steps):
            x, y = self.data[i % 4], self.label[i % 4]
            with autograd.record():
                loss = self.loss(y, *self.net(x))
            loss.backward()
            self.trainer.step(self.batch)
        mx.nd.waitall()
        return steps * self.batch


def throughput(args) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-seg-"))
    root = tree(
        work / "ml",
        args.images,
        (args.crop + args.crop // 2, args.crop * 2),
        crop_size=args.crop,
        base_size=args.crop * 2,
        mini_batch_size=args.batch,
        _workers=args.workers,
        optimizer="sgd",
    )
    with contextlib.redirect_stdout(io.StringIO()):
        ours = Ours(root)
        loops = [
            ours,
            Recipe(root, args.crop, args.crop * 2, args.batch, args.workers),
            Bare(args.batch, args.crop),
        ]
    for loop in loops:
        loop.run(2)  # warm-up: graphs, memory plans, loader threads/processes
    speeds: dict[str, list[float]] = {loop.name: [] for loop in loops}
    for round_number in range(args.rounds):
        for loop in loops[round_number % 3 :] + loops[: round_number % 3]:  # rotate the order
            time.sleep(1.0)  # let the previous loop's loader finish prefetching: it would steal CPU
            tic = time.perf_counter()
            samples = loop.run(args.steps)
            speeds[loop.name].append(samples / (time.perf_counter() - tic))
    median = {name: statistics.median(v) for name, v in speeds.items()}
    print(
        f"FCN ResNet-50, crop {args.crop}, batch {args.batch}, {args.workers} loader workers, one CPU context"
    )
    for name, values in speeds.items():
        print(f"  {name:7s} {median[name]:6.2f} images/s (rounds: {', '.join(f'{v:.2f}' for v in values)})")
    print(f"  ours / recipe = {median['ours'] / median['recipe']:.2f} (target >= 1.0)")
    print(f"  ours / bare   = {median['ours'] / median['bare']:.2f} (target >= 0.95)")


def peak_rss_mb(root: Path, extra_env: dict | None = None) -> tuple[float, float, int]:
    """Peak RSS (MB) and seconds of one `sagemaker-cv train` process, and its exit code."""
    env = dict(os.environ, SAGEMAKER_CV_LOG_INTERVAL="1", **(extra_env or {}))
    tic = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "sagemaker_cv", "train", "--algorithm", ALGORITHM, "--ml-root", str(root)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    return usage.ru_maxrss / 1024, time.perf_counter() - tic, os.waitstatus_to_exitcode(status)


def rss_at_480(args) -> None:
    print("Peak RSS of `sagemaker-cv train`, FCN ResNet-50, crop 480, batch 4, 1 epoch, images 375-500 px:")
    work = Path(tempfile.mkdtemp(prefix="bench-seg-rss-"))
    for images in args.rss_images:
        root = tree(
            work / f"n{images}",
            images,
            (375, 500),
            crop_size=480,
            base_size=520,
            mini_batch_size=4,
            epochs=1,
            validation_mini_batch_size=1,
        )
        rss, seconds, code = peak_rss_mb(root)
        print(f"  {images:4d} training images: peak RSS {rss:7.0f} MB ({seconds:.0f} s, exit {code})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--crop", type=int, default=64)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--steps", type=int, default=6, help="steps per loop and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rss", action="store_true", help="peak RSS of training runs at crop 480, batch 4")
    parser.add_argument("--rss-images", type=lambda s: [int(v) for v in s.split(",")], default=[4, 16])
    parser.add_argument("--skip-throughput", action="store_true", help="only the memory measurements")
    args = parser.parse_args(argv)
    if not args.skip_throughput:
        throughput(args)
    if args.rss:
        rss_at_480(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
