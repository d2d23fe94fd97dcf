"""Image classification benchmarks, each a ratio against a reference run in the same process.

1. trainer: images/s of our training loop (task + engine hooks) over a bare hybridized Gluon loop
   on the same network, data iterator and batch (target >= 0.97);
2. input: images/s of our RecordIO input path over a plain mx.io.ImageRecordIter reading the same
   file with the same augmentation (target >= 1.0);
3. startup: seconds from `sagemaker-cv train` process start to the first logged batch (target <= 10).

    python bench/bench_classification.py [--layers 18] [--batch 32] [--steps 60]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mxnet as mx
from mxnet import autograd, gluon

from sagemaker_cv import algorithms
from sagemaker_cv.algorithms.classification import data
from sagemaker_cv.algorithms.classification.network import classification_network
from sagemaker_cv.algorithms.classification.task import ClassificationTask
from sagemaker_cv.contract.paths import MLPaths
from sagemaker_cv.tools.demo import write_example_tree
from sagemaker_cv.training import engine
from sagemaker_cv.training import hooks as h
from sagemaker_cv.training.devices import plan_devices
from sagemaker_cv.training.job import load_job


def make_tree(root: Path, layers: int, batch: int, size: int) -> None:
    write_example_tree(
        root,
        per_class=200,
        val_per_class=10,
        image_size=size + 8,
        hyperparameters={"num_layers": str(layers), "mini_batch_size": str(batch), "epochs": "1000"},
    )


def ours(root: Path, steps: int, repeats: int) -> float:
    """Images/s of the real task and loop (batch lines, metrics, timers; no validation or saving)."""
    job = load_job(MLPaths(root), algorithms.get("image-classification"), num_gpus=0)
    with tempfile.TemporaryDirectory() as scratch:
        task = ClassificationTask(job, plan_devices(0), Path(scratch))
        task.setup(task.check_data())
        task.steps = steps
        hooks = [h.EpochTimer(), h.Speedometer(20), h.ModelWriter(enabled=False)]
        engine.fit(task, hooks, epochs=1)  # warm-up: graph building, memory pools
        best = 0.0
        for _ in range(repeats):
            tic = time.perf_counter()
            state = engine.fit(task, hooks, epochs=1)
            mx.nd.waitall()
            best = max(best, state.epoch_samples / (time.perf_counter() - tic))
        task.close()
    return best


def bare(root: Path, steps: int, repeats: int, layers: int, batch: int, size: int) -> float:
    """The reference: the textbook hybridized Gluon loop on the same network and iterator."""
    job = load_job(MLPaths(root), algorithms.get("image-classification"), num_gpus=0)
    hp = job.hyperparameters
    with tempfile.TemporaryDirectory() as scratch:
        task = ClassificationTask(job, plan_devices(0), Path(scratch))
        train = task.check_data().data["train"]
        it = data.record_iter(train, batch_size=batch, rules=task.rules, train=True, augmentation="crop")
        ctx = [mx.cpu()]
        net = classification_network(layers, hp.num_classes, 3, False, ctx)
        net.hybridize(static_alloc=True, static_shape=True)
        trainer = gluon.Trainer(
            net.collect_params(), "sgd", {"learning_rate": 0.05, "momentum": 0.9, "wd": 1e-4}
        )
        loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()

        def run() -> int:
            n = 0
            it.reset()
            while n < steps:
                try:
                    b = it.next()
                except StopIteration:
                    it.reset()
                    continue
                x, y = b.data[0].as_in_context(ctx[0]), b.label[0].as_in_context(ctx[0])
                with autograd.record():
                    loss = loss_fn(net(x), y)
                loss.backward()
                trainer.step(x.shape[0])
                n += 1
            mx.nd.waitall()
            return n * batch

        run()
        best = 0.0
        for _ in range(repeats):
            tic = time.perf_counter()
            samples = run()
            best = max(best, samples / (time.perf_counter() - tic))
    return best


def input_paths(root: Path, batch: int, repeats: int) -> tuple[float, float]:
    """Both iterators on ImageNet-sized JPEGs (256 px, 224 px random crops), epochs interleaved."""
    write_example_tree(
        root, per_class=100, val_per_class=5, image_size=256, hyperparameters={"image_shape": "3,224,224"}
    )
    job = load_job(MLPaths(root), algorithms.get("image-classification"), num_gpus=0)
    with tempfile.TemporaryDirectory() as scratch:
        task = ClassificationTask(job, plan_devices(0), Path(scratch))
        train = task.check_data().data["train"]
        rec = next((root / "input" / "data" / "train").glob("*.rec"))
        iterators = {
            "ours": data.record_iter(
                train, batch_size=batch, rules=task.rules, train=True, augmentation="crop"
            ),
            "plain": mx.io.ImageRecordIter(
                path_imgrec=str(rec),
                data_shape=(3, 224, 224),
                batch_size=batch,
                rand_crop=True,
                rand_mirror=True,
                shuffle=True,
            ),
        }
        best = dict.fromkeys(iterators, 0.0)
        for _ in range(repeats + 1):  # the first round warms the page cache
            for name, it in iterators.items():
                it.reset()
                tic = time.perf_counter()
                n = sum(b.data[0].shape[0] for b in it)
                best[name] = max(best[name], n / (time.perf_counter() - tic))
        return best["ours"], best["plain"]


def startup(root: Path) -> float:
    env = dict(os.environ, SAGEMAKER_CV_LOG_INTERVAL="1")
    tic = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "sagemaker_cv", "train", "--ml-root", str(root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        for line in proc.stdout:
            if "Epoch[0] Batch [1]" in line:
                return time.perf_counter() - tic
        raise RuntimeError("training ended before its first batch")
    finally:
        proc.kill()
        proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", type=int, default=18)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ml"
        make_tree(root, args.layers, args.batch, args.size)
        print(
            f"resnet{args.layers}, batch {args.batch}, {args.size}x{args.size} px, {args.steps} steps, best of {args.repeats}"
        )
        reference = trainer = 0.0
        for _ in range(2):  # interleaved: load from other processes hits both alike
            reference = max(
                reference, bare(root, args.steps, args.repeats, args.layers, args.batch, args.size)
            )
            trainer = max(trainer, ours(root, args.steps, args.repeats))
        print(
            f"trainer: {trainer:8.1f} img/s  bare Gluon loop: {reference:8.1f} img/s  ratio {trainer / reference:.3f} (target >= 0.97)"
        )
        mine, plain = input_paths(Path(tmp) / "large", args.batch, args.repeats)
        print(
            f"input:   {mine:8.1f} img/s  mx.io.ImageRecordIter: {plain:8.1f} img/s  ratio {mine / plain:.3f} (target >= 1.0)"
        )
        seconds = startup(root)
        print(f"startup: {seconds:.2f} s from process start to the first batch (target <= 10)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
