"""Image classification end to end on CPU through the real command line and an /opt/ml tree."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time

import mxnet as mx
import numpy as np
import pytest
from ml_tree import cli_env, in_process, set_hyperparameters, train

from sagemaker_cv import algorithms
from sagemaker_cv.tools.spec import metric_definitions

LEARN = {"optimizer": "adam", "learning_rate": "0.005", "epochs": "6", "mini_batch_size": "16", "top_k": "2"}
PREFIX = r"\[\d\d/\d\d/\d{4} \d\d:\d\d:\d\d INFO \d+\] "


def validation_images(root, crop):
    """Decode the validation .rec and center-crop like the built-in's evaluation does."""
    rec = next((root / "input" / "data" / "validation").glob("*.rec"))
    reader = mx.recordio.MXRecordIO(str(rec), "r")
    images, labels = [], []
    while (item := reader.read()) is not None:
        header, img = mx.recordio.unpack_img(item, iscolor=1)  # BGR
        h, w = img.shape[:2]
        y, x = (h - crop) // 2, (w - crop) // 2
        images.append(img[y : y + crop, x : x + crop, ::-1].transpose(2, 0, 1))  # RGB, CHW
        labels.append(int(header.label))
    return np.stack(images).astype(np.float32), np.array(labels)


@pytest.mark.fast
def test_recordio_from_im2rec_learns_and_writes_the_builtin_artifacts(tree):
    root = tree(per_class=60, val_per_class=15, hyperparameters=LEARN)
    run = train(root)
    assert run.code == 0, run.out[-3000:]
    accuracies = run.values("Validation-accuracy")
    assert len(accuracies) == 6 and max(accuracies) > 0.6, accuracies  # chance is 1/3

    # The built-in's log lines, exactly (with real TABs), and the job ETA.
    assert re.search(
        PREFIX + r"Final configuration: \{'num_classes': 3, 'num_training_samples': 180, ", run.out
    )
    assert re.search(
        PREFIX
        + r"Epoch\[0\] Batch \[2\]\tSpeed: \d+\.\d{3} samples/sec\taccuracy=\d\.\d{6}\ttop_k_accuracy_2=\d\.\d{6}\n",
        run.out,
    )
    for pattern in (
        r"Epoch\[5\] Train-accuracy=\d\.\d{6}\n",
        r"Epoch\[5\] Train-top_k_accuracy_2=\d\.\d{6}\n",
        r"Epoch\[5\] Time cost=\d+\.\d{3}\n",
        r"Epoch\[5\] Validation-accuracy=\d\.\d{6}\n",
        r"Storing the best model with validation accuracy: \d\.\d{6}\n",
        r'Saved checkpoint to "' + re.escape(str(root)) + r'/model/image-classification-\d{4}\.params"\n',
        r"Epoch\[0\] Estimated time remaining for the job: \d+:\d\d:\d\d \(5 epochs left\)\n",
        r"checkpoint_frequency not set, will store the best model\n",
    ):
        assert re.search(PREFIX + pattern, run.out), pattern

    # Every MetricDefinition finds its value in the real output.
    for definition in metric_definitions(algorithms.get("image-classification")):
        match = re.search(definition["Regex"], run.out)
        assert match, definition["Name"]
        float(match.group(1))
    best = max(accuracies)
    assert (
        float(re.findall(metric_definitions(algorithms.get("image-classification"))[6]["Regex"], run.out)[-1])
        in accuracies
    )

    # Only the best epoch is kept, numbered as the built-in numbers it (epoch N -> N+1).
    best_epoch = accuracies.index(best) + 1
    assert run.model_files == [
        f"image-classification-{best_epoch:04d}.params",
        "image-classification-symbol.json",
        "model-shapes.json",
    ]
    shapes = json.loads((root / "model" / "model-shapes.json").read_text())
    # The built-in's entry, and the shorter side of the job's images (32 px), which serving resizes to.
    assert shapes == [{"shape": [16, 3, 24, 24], "name": "data", "resize": 32}]

    # The exported network takes raw RGB pixels and gives the trained network's predictions:
    # its accuracy on the validation set is the logged best validation accuracy.
    images, labels = validation_images(root, crop=24)
    prefix = str(root / "model" / "image-classification")
    sym, args, aux = mx.model.load_checkpoint(prefix, best_epoch)
    module = mx.mod.Module(sym, data_names=["data"], label_names=None, context=mx.cpu())
    module.bind(data_shapes=[("data", images.shape)], for_training=False)
    module.set_params(args, aux)
    module.forward(mx.io.DataBatch([mx.nd.array(images)]), is_train=False)
    probs = module.get_outputs()[0].asnumpy()
    assert probs.shape == (len(labels), 3) and np.allclose(probs.sum(axis=1), 1, atol=1e-4)
    assert abs((probs.argmax(axis=1) == labels).mean() - best) < 1e-6

    block = mx.gluon.SymbolBlock.imports(
        f"{prefix}-symbol.json", ["data"], f"{prefix}-{best_epoch:04d}.params"
    )
    assert np.allclose(block(mx.nd.array(images)).asnumpy(), probs, atol=1e-5)


@pytest.mark.fast
def test_lst_images_and_model_archive(tree, tmp_path):
    root = tree(content="lst", hyperparameters={"epochs": "1"})
    archive = tmp_path / "out" / "model.tar.gz"
    run = train(root, "--model-archive", str(archive))
    assert run.code == 0, run.out[-3000:]
    assert "Creating record files for train.lst" in run.out and "image resize size: 32" in run.out
    import tarfile

    with tarfile.open(archive) as tar:
        assert sorted(tar.getnames()) == run.model_files
    assert not any(name.endswith(".tar.gz") for name in run.model_files)


def test_multi_label_with_weighted_loss(tree):
    """Trains, then serves through `predict`. Tier: slow (about 20 s)."""
    root = tree(
        content="lst",
        multi_label=True,
        per_class=50,
        val_per_class=15,
        image_size=48,
        hyperparameters={**LEARN, "top_k": None, "epochs": "8", "use_weighted_loss": "1"},
    )
    set_hyperparameters(root, top_k=None)
    run = train(root)
    assert run.code == 0, run.out[-3000:]
    assert "label-format is multi-hot" in run.out and "Weighted loss: positive-class weights" in run.out
    # Accuracy is averaged over the per-class decisions; always answering "present" scores about 2/3.
    accuracies = run.values("Validation-accuracy")
    assert max(accuracies) > 0.75, accuracies
    params = next((root / "model").glob("*.params"))
    sym = mx.sym.load(str(root / "model" / "image-classification-symbol.json"))
    assert "sigmoid" in sym.tojson() and params.exists()

    # Served as the built-in serves it: one probability per class, each its own sigmoid (they need
    # not sum to 1). `predict` answers what a batch-transform server answers; its per-class
    # decisions (p > 0.5) on the validation images, scored against the .lst's labels, score what
    # training logged for the kept epoch (the same lossless PNGs, the same resize and centre crop).
    validation = root / "input" / "data" / "validation"
    out = root.parent / "predictions"
    served = subprocess.run(
        [sys.executable, "-m", "sagemaker_cv", "predict", "--model", str(root / "model"), "--input", str(validation),
         "--output", str(out)],
        capture_output=True, text=True, timeout=300, env=cli_env(),
    )  # fmt: skip
    assert served.returncode == 0, served.stderr[-3000:]
    truth = {}
    for line in (root / "input" / "data" / "validation_lst" / "validation.lst").read_text().splitlines():
        _, *labels, rel = line.split("\t")
        truth[rel] = [int(float(v)) for v in labels]
    answers = {rel: json.loads((out / f"{rel}.out").read_text())["prediction"] for rel in truth}
    assert len(list(out.rglob("*.out"))) == len(answers)
    decisions = []
    for rel, probabilities in answers.items():
        assert len(probabilities) == 3 and all(0 <= p <= 1 for p in probabilities), (rel, probabilities)
        decisions += [(p > 0.5) == bool(label) for p, label in zip(probabilities, truth[rel])]
    sums = [sum(probabilities) for probabilities in answers.values()]
    assert max(sums) - min(sums) > 0.1, sums  # sigmoids, not a softmax's constant 1
    assert abs(np.mean(decisions) - max(accuracies)) < 1e-6, (np.mean(decisions), accuracies)


@pytest.mark.parametrize("augmentation", ["crop", "crop_color", "crop_color_transform"])
def test_each_augmentation_type_trains(tree, augmentation):
    root = tree(
        per_class=8, val_per_class=4, hyperparameters={"epochs": "1", "augmentation_type": augmentation}
    )
    run = train(root)
    assert run.code == 0, run.out[-3000:]
    assert f"augmentation_type: {augmentation}" in run.out and run.values("Validation-accuracy")


def test_augmentations_change_what_the_network_sees(tree, tmp_path):
    """None is deterministic; crop moves and flips; crop_color also shifts colours."""
    from sagemaker_cv.algorithms.classification.data import record_iter
    from sagemaker_cv.algorithms.classification.records import LabelRules, scan_recordio
    from sagemaker_cv.inputs.recordio import find_shards

    root = tree(per_class=4, val_per_class=2, image_size=40)
    rules = LabelRules(3, False, (3, 32, 32), None)
    prepared = scan_recordio(find_shards(root / "input/data/train", "train"), "train", rules, tmp_path / "s")

    def first_batches(augmentation, seed):
        # Augmenters apply to training iterators only; validation reads center crops.
        train = augmentation is not None
        it = record_iter(
            prepared, batch_size=12, rules=rules, train=train, augmentation=augmentation, seed=seed
        )
        return next(iter(it)).data[0].asnumpy()

    plain = first_batches(None, 1)
    assert np.array_equal(plain, first_batches(None, 2))
    crop = first_batches("crop", 1)
    assert not np.array_equal(crop, first_batches("crop", 2))
    color = first_batches("crop_color", 1)
    # Same crops and flips (same seed), different colours.
    assert not np.allclose(color, crop)


def test_early_stopping_ends_training(tree):
    root = tree(
        per_class=8,
        val_per_class=4,
        hyperparameters={
            "epochs": "10",
            "early_stopping": "True",
            "early_stopping_min_epochs": "2",
            "early_stopping_patience": "1",
            "early_stopping_tolerance": "1.0",  # an improvement must double the accuracy
        },
    )
    run = train(root)
    assert run.code == 0, run.out[-3000:]
    assert "Early stopping at epoch" in run.out
    assert 2 <= len(run.values("Validation-accuracy")) < 10


def test_checkpoint_frequency_keeps_every_nth_epoch(tree):
    root = tree(per_class=8, val_per_class=4, hyperparameters={"epochs": "4", "checkpoint_frequency": "2"})
    run = train(root)
    assert run.code == 0, run.out[-3000:]
    assert [f for f in run.model_files if f.endswith(".params")] == [
        "image-classification-0002.params",
        "image-classification-0004.params",
    ]


def test_pretrained_weights_from_a_local_file(tree, tmp_path):
    from gluoncv.model_zoo import get_model

    home = tmp_path / "mxnet-home"
    (home / "models").mkdir(parents=True)
    reference = get_model("resnet18_v1b", classes=1000)
    reference.initialize(mx.init.Uniform(0.5))
    reference(mx.nd.zeros((1, 3, 32, 32)))
    reference.save_parameters(str(home / "models" / "resnet18_v1b-0123abcd.params"))
    root = tree(
        per_class=8,
        val_per_class=4,
        hyperparameters={
            "epochs": "1",
            "num_layers": "18",
            "use_pretrained_model": "1",
            "learning_rate": "0",
        },
    )
    run = train(root, MXNET_HOME=home)
    assert run.code == 0, run.out[-3000:]
    assert "Using pretrained model for initializing weights and transfer learning." in run.out
    saved = mx.nd.load(str(next((root / "model").glob("*.params"))))
    # learning_rate=0: the backbone is exactly the file's; the output layer is new (3 classes).
    assert np.array_equal(
        saved["arg:" + reference.conv1.weight.name].asnumpy(), reference.conv1.weight.data().asnumpy()
    )
    assert [
        v.shape for k, v in saved.items() if k.startswith("arg:") and k.endswith("_weight") and "dense" in k
    ] == [(3, 512)]

    missing = train(root, MXNET_HOME=tmp_path / "empty")
    assert missing.code == 2
    assert (
        "no pretrained weights resnet18_v1b-*.params in " + str(tmp_path / "empty" / "models")
        in missing.failure
    )
    assert "sagemaker-cv weights import FILE --network resnet18_v1b" in missing.failure


def test_sigterm_mid_epoch_saves_the_model_and_exits_quickly(tree):
    root = tree(per_class=60, val_per_class=4, hyperparameters={"epochs": "50", "checkpoint_frequency": "50"})
    proc = subprocess.Popen(
        [sys.executable, "-m", "sagemaker_cv", "train", "--ml-root", str(root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=cli_env(SAGEMAKER_CV_LOG_INTERVAL=1),
    )
    out = []
    for line in proc.stdout:
        out.append(line)
        if "Epoch[1] Batch [3]" in line:
            break
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    rest, _ = proc.communicate(timeout=30)
    elapsed = time.monotonic() - started
    text = "".join(out) + rest
    assert proc.returncode == 0, text[-3000:]
    assert elapsed < 10, elapsed
    assert "Received SIGTERM" in text and "Epoch[1] Batch [5]" not in text
    assert sorted(p.name for p in (root / "model").iterdir()) == [
        "image-classification-0002.params",
        "image-classification-symbol.json",
        "model-shapes.json",
    ]


def test_several_cpu_devices_split_the_batch(tree):
    root = tree(per_class=8, val_per_class=4, hyperparameters={"epochs": "1", "mini_batch_size": "7"})
    run = train(root, SAGEMAKER_CV_CPU_DEVICES=3)
    assert run.code == 0, run.out[-3000:]
    assert "Training on 3 cpu device(s)" in run.out and "kv_store: local" in run.out


@pytest.mark.fast
def test_validate_checks_everything_without_training(tree):
    root = tree(content="lst")
    run = in_process(root)
    assert run.code == 0, run.out[-3000:]
    assert (
        "Final configuration" in run.out
        and "Validation passed: train: 72 samples, validation: 30 samples" in run.out
    )
    assert run.model_files == []
