"""How well our trainers learn against GluonCV's own recipes: the same generated data, network,
initial weights, optimizer, batch, epochs and seed, side by side in one process, both scored by the
same evaluator after every epoch.

* detection: our DetectionTask (MXNet's ImageDetRecordIter, batch targets, the task's train_step)
  against train_ssd.py's loop (SSDDefaultTrainTransform with its target generator, a gluon
  DataLoader, SSDMultiBoxLoss, trainer.step(1)), both from the same random SSD weights; VOC07 mAP
  of both on the validation split through the same exported-graph block (`Detections`);
* segmentation: our SegmentationTask against scripts/segmentation/train.py's loop
  (`_sync_transform`, MixSoftmaxCrossEntropyLoss with the auxiliary head, trainer.step(batch), poly
  schedule, 10x learning rate on the heads), FCN ResNet-50 from the same weights; mIOU of both by
  our validation (whole images, one confusion matrix).

The built-in's default optimizer unless told otherwise (sgd, momentum 0.9, weight decay 0.0005 for
detection and 0.0001 for segmentation, learning rate 0.001). The recipe's loader runs in the main
process (num_workers=0): its augmentation draws from NumPy's generator, seeded per epoch (forked
DataLoader workers would all inherit one generator state).

    python bench/bench_learning.py [--algorithm detection] [--base resnet-50] [--images 120] [--epochs 12]
    python bench/bench_learning.py --algorithm segmentation [--images 32] [--epochs 12]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import mxnet as mx
import numpy as np

from sagemaker_cv import algorithms
from sagemaker_cv.contract.paths import MLPaths
from sagemaker_cv.training.devices import plan_devices
from sagemaker_cv.training.job import load_job
from sagemaker_cv.training.seeding import derive, seed_all

#: GluonCV's transforms normalise with these (ImageNet's mean and spread, 0-255)
GLUONCV_MEAN = (123.675, 116.28, 103.53)
GLUONCV_STD = (58.395, 57.12, 57.375)


def quiet():
    """Our tasks log to stdout; the bench prints its own lines."""
    return contextlib.redirect_stdout(io.StringIO())


def our_epoch(task, epoch: int, seed: int) -> float:
    """One epoch as engine.fit runs it (EpochSeeds, then train_step over the task's batches);
    returns the epoch's first training metric (detection: cross-entropy per positive anchor)."""
    seed_all(derive(seed, "epoch", epoch, 0))
    for batch in task.batches(epoch):
        task.train_step(batch)
    return task.train_metrics()[0][1]  # waits for the last step


# ---- detection -------------------------------------------------------------------------------------


def detection_sides(args, recipes: int = 1):
    """Our DetectionTask set up on a generated tree, and `recipes` recipe loops, each on its own
    network started from the task's initial weights; returns (task, [Recipe, ...])."""
    from bench_detection import SHAPE, Recipe

    from sagemaker_cv.algorithms.detection.network import build_detector
    from sagemaker_cv.algorithms.detection.task import DetectionTask
    from sagemaker_cv.tools.detection_demo import write_detection_tree

    work = Path(tempfile.mkdtemp(prefix="bench-learning-"))
    root = work / "ml"
    hp = {
        "base_network": args.base,
        "use_pretrained_model": "0",
        "mini_batch_size": str(args.batch),
        "epochs": str(args.epochs),
        "optimizer": "sgd",
        "learning_rate": str(args.lr),
        "momentum": "0.9",
        "weight_decay": "0.0005",
    }
    write_detection_tree(
        root,
        content="recordio",
        num_classes=args.classes,
        train_images=args.images,
        val_images=args.val_images,
        max_objects=args.max_objects,
        seed=args.seed,
        hyperparameters=hp,
    )
    seed_all(args.seed)
    with quiet():
        task = DetectionTask(
            replace(load_job(MLPaths(root), algorithms.get("object-detection"), num_gpus=0), seed=args.seed),
            plan_devices(0),
            work / "ours",
        )
        prepared = task.check_data()
        task.setup(prepared)
    task.net.save_parameters(str(work / "start.params"))
    loops = []
    for number in range(recipes):
        ctx = [mx.cpu()]
        detector = build_detector(args.base, args.classes, SHAPE, pretrained=False, ctx=ctx)
        detector.net(mx.nd.zeros((1, 3, SHAPE, SHAPE)))
        detector.net.load_parameters(str(work / "start.params"), ctx=ctx)  # the same start
        (work / f"recipe{number}").mkdir()
        loops.append(
            Recipe(
                prepared.data["train"].rec,
                work / f"recipe{number}",
                args.base,
                args.batch,
                args.classes,
                sgd={"learning_rate": args.lr, "wd": 5e-4, "momentum": 0.9},
                workers=0,
                detector=detector,
                static=False,
            )
        )
    return task, loops


def detection(args) -> tuple[list[float], list[float]]:
    from bench_detection import SHAPE, _ssd_step

    from sagemaker_cv.algorithms.detection.evaluation import VOC07MeanAP
    from sagemaker_cv.algorithms.detection.labels import ground_truth
    from sagemaker_cv.algorithms.detection.network import Detections

    task, (recipe, *twin) = detection_sides(args, recipes=2 if args.control else 1)
    recipe_block = Detections(recipe.detector.net, SHAPE)
    recipe_block.hybridize()

    def mean_ap(block) -> float:
        """task.validation_scores()'s evaluation, for any exported-graph block."""
        metric = VOC07MeanAP(0.5)
        task.val_iter.reset()
        for batch in task.val_iter:
            keep = batch.data[0].shape[0] - (batch.pad or 0)
            found = block(batch.data[0])[:keep].asnumpy()
            boxes, ids = ground_truth(batch.label[0].asnumpy()[:keep], 1.0)
            metric.update(found, boxes, ids[:, :, 0])
        return metric.value()

    def recipe_epoch(epoch: int, loop=recipe, stream: str = "recipe") -> float:
        seed_all(derive(args.seed, stream, epoch))
        values = []
        for batch in loop.loader:
            x, cls_targets, box_targets = (a.as_in_context(mx.cpu()) for a in batch)
            losses = _ssd_step(loop.net, loop.trainer, loop.loss_fn, x, cls_targets, box_targets)
            values.append(sum(loss.sum().asscalar() for loss in losses))
            if not np.isfinite(values[-1]):
                raise Diverged("the recipe's loss diverged")
        return float(np.mean(values))  # cross-entropy per positive anchor, as our metric

    print(
        f"SSD {args.base} at {SHAPE} px from scratch, {args.images} training images ({args.classes} classes, "
        f"up to {args.max_objects} objects), {args.val_images} validation images, sgd lr {args.lr:g} "
        f"momentum 0.9 wd 0.0005, batch {args.batch}, seed {args.seed}",
        flush=True,
    )
    if args.control:  # "ours" is the recipe again, on other augmentation draws
        (control,) = twin
        control_block = Detections(control.detector.net, SHAPE)
        control_block.hybridize()
        print("control: the 'ours' column is a second recipe loop (same start, other augmentation draws)")
        first, first_score = (lambda e: recipe_epoch(e, control, "control")), (lambda: mean_ap(control_block))
    else:
        first, first_score = (lambda e: our_epoch(task, e, args.seed)), (lambda: mean_ap(task.export_block))
    return side_by_side(args.epochs, first, recipe_epoch, first_score, lambda: mean_ap(recipe_block), "mAP")


def lockstep(args) -> None:
    """The same recipe batches through three loops from the same weights, step by step: our task
    (fed the batch's raw pixels, normalised by the network with GluonCV's constants), the recipe,
    and a second recipe fed the same inputs after the round trip to raw pixels and back (they
    differ by float32 rounding only). Prints each loop's loss per positive anchor per step: when
    ours follows the rounded recipe digit for digit, the training steps are the same computation,
    and any difference between ours and the recipe is what rounding alone does to this training."""
    from bench_detection import _ssd_step

    task, (recipe, rounded) = detection_sides(args, recipes=2)
    mean = mx.nd.array(GLUONCV_MEAN).reshape((1, 3, 1, 1))
    std = mx.nd.array(GLUONCV_STD).reshape((1, 3, 1, 1))
    task.net.mean.set_data(mean)  # the recipe's transform normalises with these
    task.net.std.set_data(std)
    np.random.seed(args.seed)
    print(
        f"step: loss per positive of ours, the recipe, the recipe on rounded inputs ({args.base}, batch {args.batch})"
    )
    for step, batch in zip(range(args.lockstep), recipe.loader):
        x, cls_targets, box_targets = (a.as_in_context(mx.cpu()).copy() for a in batch)
        raw = x * std + mean
        losses, (cls_losses, _) = task.forward_backward([(raw, cls_targets, box_targets)])
        task.trainer.step(1)
        values = [cls_losses[0].sum().asscalar()]
        for loop, inputs in ((recipe, x), (rounded, (raw - mean) / std)):
            values.append(
                _ssd_step(loop.net, loop.trainer, loop.loss_fn, inputs, cls_targets, box_targets)[0]
                .sum()
                .asscalar()
            )
        print(f"{step:4d}: " + "  ".join(f"{v:12.6f}" for v in values), flush=True)


# ---- segmentation ----------------------------------------------------------------------------------


def segmentation(args) -> tuple[list[float], list[float]]:
    from bench_segmentation import Recipe
    from gluoncv.utils import LRScheduler

    from sagemaker_cv.algorithms.segmentation.metrics import Confusion
    from sagemaker_cv.algorithms.segmentation.network import WholeImage, segmentation_network
    from sagemaker_cv.algorithms.segmentation.task import SegmentationTask
    from sagemaker_cv.tools.segmentation_demo import write_segmentation_tree

    work = Path(tempfile.mkdtemp(prefix="bench-learning-"))
    root = work / "ml"
    crop, base = args.crop, args.crop * 6 // 5
    write_segmentation_tree(
        root,
        train=args.images,
        validation=args.val_images,
        sizes=(crop + 1, crop * 3 // 2),
        seed=args.seed,
        hyperparameters={
            "crop_size": crop,
            "base_size": base,
            "epochs": args.epochs,
            "mini_batch_size": args.batch,
            "optimizer": "sgd",
            "learning_rate": args.lr,
            "momentum": 0.9,
            "weight_decay": 0.0001,
            "lr_scheduler": "poly",
        },
    )
    seed_all(args.seed)
    with quiet():
        task = SegmentationTask(
            replace(
                load_job(MLPaths(root), algorithms.get("semantic-segmentation"), num_gpus=0), seed=args.seed
            ),
            plan_devices(0),
            work / "ours",
        )
        task.setup(task.check_data())
    ctx = [mx.cpu()]
    net = segmentation_network("fcn", "resnet-50", 3, crop, False, ctx)
    task.net.save_parameters(str(work / "start.params"))
    net.load_parameters(str(work / "start.params"), ctx=ctx)  # the same start
    steps = args.images // args.batch  # the recipe's loader rolls the last partial batch over
    # scripts/segmentation/train.py's optimizer: poly (power 0.9) over every iteration of the job
    schedule = LRScheduler("poly", base_lr=args.lr, nepochs=args.epochs, iters_per_epoch=steps, power=0.9)
    sgd = {"learning_rate": args.lr, "wd": 1e-4, "momentum": 0.9, "lr_scheduler": schedule}
    with quiet():
        recipe = Recipe(root, crop, base, args.batch, 0, model=net.model, sgd=sgd)
    recipe_whole = WholeImage(net)
    recipe_whole.hybridize()

    def miou(whole) -> float:
        """task.validation_scores()'s evaluation (whole images, one confusion matrix), for any network."""
        confusion = Confusion(3)
        for (pixels, labels), keep in task._validation_batches():
            x = mx.nd.array(pixels[:keep], dtype=np.uint8).astype("float32").transpose((0, 3, 1, 2))
            confusion.update(labels[:keep], whole(x).argmax(axis=1).astype("uint8").asnumpy())
        return confusion.mean_iou()

    def recipe_epoch(epoch: int) -> None:
        seed_all(derive(args.seed, "recipe", epoch))
        recipe.batches = iter(recipe.loader)
        recipe.run(steps)  # reads its losses but keeps none

    print(
        f"FCN ResNet-50 from scratch, crop {crop} (base {base}), {args.images} training images, "
        f"{args.val_images} validation images, sgd lr {args.lr:g} momentum 0.9 wd 0.0001 poly, "
        f"batch {args.batch}, seed {args.seed}",
        flush=True,
    )
    return side_by_side(
        args.epochs,
        lambda e: our_epoch(task, e, args.seed),
        recipe_epoch,
        lambda: miou(task.whole),
        lambda: miou(recipe_whole),
        "mIOU",
    )


class Diverged(Exception):
    """A side's training loss became NaN or infinite."""


def side_by_side(epochs, ours_epoch, recipe_epoch, ours_score, recipe_score, name):
    """Alternate one epoch of each, scoring both after each; a side that diverges scores NaN
    from then on (the other goes on)."""
    from sagemaker_cv.contract.errors import ClientError

    sides = {"ours": (ours_epoch, ours_score), "recipe": (recipe_epoch, recipe_score)}
    scores: dict[str, list[float]] = {side: [] for side in sides}
    diverged: set[str] = set()
    for epoch in range(epochs):
        line = [f"epoch {epoch:3d}:"]
        for side, (train, score) in sides.items():
            loss = None
            tic = time.perf_counter()
            if side not in diverged:
                try:
                    with quiet():
                        loss = train(epoch)
                except (Diverged, ClientError) as exc:
                    if "diverged" not in str(exc):
                        raise
                    diverged.add(side)
            value = float("nan") if side in diverged else score()
            scores[side].append(value)
            note = "diverged" if side in diverged else f"{time.perf_counter() - tic:.0f} s"
            if side not in diverged and loss is not None:
                note = f"train loss {loss:.3f}, {note}"
            line.append(f"{side} {name} {value:.4f} ({note})")
        print("   ".join(line), flush=True)
    return scores["ours"], scores["recipe"]


def report(ours: list[float], recipe: list[float], name: str) -> None:
    """Best and late scores of both and their ratios (a small validation set's score jumps from
    epoch to epoch: the best, which the job keeps, is the headline)."""
    last = min(3, len(ours))
    late = {
        side: float(np.nanmean(v[-last:])) if np.isfinite(v[-last:]).any() else 0.0
        for side, v in (("ours", ours), ("recipe", recipe))
    }
    best = {
        side: float(np.nanmax(v)) if np.isfinite(v).any() else 0.0
        for side, v in (("ours", ours), ("recipe", recipe))
    }
    for label, values in (("best", best), (f"mean of the last {last} epochs", late)):
        ratio = values["ours"] / values["recipe"] if values["recipe"] > 0 else float("nan")
        print(
            f"{label} {name}: ours {values['ours']:.4f}, recipe {values['recipe']:.4f}, ours / recipe {ratio:.3f}"
        )
    print("target: ours / recipe (best) >= 0.9")


def report_seeds(seeds: list[int], runs: list[tuple[list[float], list[float]]], name: str) -> None:
    """Each seed's best score of both sides, then the means over seeds and their ratio."""
    best = [[float(np.nanmax(v)) if np.isfinite(v).any() else 0.0 for v in run] for run in runs]
    for seed, (ours, recipe) in zip(seeds, best):
        print(f"seed {seed}: best {name} ours {ours:.4f}, recipe {recipe:.4f}")
    ours, recipe = (float(np.mean(side)) for side in zip(*best))
    ratio = ours / recipe if recipe > 0 else float("nan")
    print(
        f"mean best {name} over {len(seeds)} seeds: ours {ours:.4f}, recipe {recipe:.4f}, ours / recipe {ratio:.3f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--algorithm", choices=("detection", "segmentation"), default="detection")
    parser.add_argument("--base", default="resnet-50", choices=("resnet-50", "vgg-16"))
    parser.add_argument("--images", type=int, default=120)
    parser.add_argument("--val-images", type=int, default=30)
    parser.add_argument("--classes", type=int, default=3)
    parser.add_argument("--max-objects", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=0.001)
    parser.add_argument(
        "--seeds",
        type=lambda text: [int(v) for v in text.split(",")],
        default=[1],
        help="comma-separated seeds: one run of both sides per seed (data, start weights, order), then "
        "the mean over seeds (one run of SSD from scratch is noisy)",
    )
    parser.add_argument(
        "--lockstep",
        type=int,
        default=0,
        metavar="STEPS",
        help="detection: run STEPS recipe batches through ours, the recipe and the recipe on rounded "
        "inputs in lockstep, printing each step's loss (no evaluation)",
    )
    parser.add_argument(
        "--control",
        action="store_true",
        help="detection: replace ours by a second recipe loop on other augmentation draws (the spread "
        "of the recipe against itself)",
    )
    parser.add_argument("--crop", type=int, default=40, help="segmentation: crop_size")
    args = parser.parse_args(argv)
    if args.lockstep:
        args.seed = args.seeds[0]
        lockstep(args)
        return 0
    run, name = (detection, "mAP") if args.algorithm == "detection" else (segmentation, "mIOU")
    runs = []
    for seed in args.seeds:
        args.seed = seed
        ours, recipe = run(args)
        report(ours, recipe, name)
        runs.append((ours, recipe))
    if len(runs) > 1:
        report_seeds(args.seeds, runs, name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
