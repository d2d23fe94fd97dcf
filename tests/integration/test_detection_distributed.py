"""Object detection on two loopback "hosts" over MXNet's parameter server, with the launcher and
cluster helpers of the distributed tests: the same rules as image classification (data split by
rank, equal batch counts, only the primary validates and writes)."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest
from test_distributed_training import Cluster, alive

from sagemaker_cv.tools.detection_demo import write_detection_tree

pytestmark = pytest.mark.cluster

HP = {"mini_batch_size": "2", "epochs": "1", "optimizer": "sgd", "learning_rate": "0.0001"}


def detection_cluster(tmp_path, hosts: int) -> Cluster:
    """The distributed tests' cluster (a tree and resourceconfig.json per host), with each host's
    data and hyperparameters replaced by a detection job's."""
    c = Cluster(tmp_path, hosts, per_class=2)
    template = tmp_path / "template"
    write_detection_tree(template, content="images", train_images=4, val_images=2, hyperparameters=HP)
    for root in c.roots:
        shutil.rmtree(root / "input" / "data")
        shutil.copytree(template / "input" / "data", root / "input" / "data")
        for name in ("hyperparameters.json", "inputdataconfig.json"):
            shutil.copy(template / "input" / "config" / name, root / "input" / "config" / name)
    return c


def test_two_hosts_train_one_model_with_identical_weights(tmp_path):
    c = detection_cluster(tmp_path, 2)
    algorithm = {"SAGEMAKER_CV_ALGORITHM": "object-detection"}
    try:
        c.start(env={name: algorithm for name in c.names})
        codes = c.wait(600)
    finally:
        c.stop()
    assert codes == {"algo-1": 0, "algo-2": 0}, c.tail("algo-1") + c.tail("algo-2")
    primary, other = c.log("algo-1"), c.log("algo-2")
    for name, text in (("algo-1", primary), ("algo-2", other)):
        assert "(kv_store: dist_sync)" in text
        # 4 images, 2 per batch, 2 workers: one batch each per epoch.
        assert re.search(
            rf"Host {name} \(worker \d of 2\): Epoch\[0\] Throughput: .* \(2 samples in", text
        ), name
    assert "validation mAP <score>" in primary and "validation mAP <score>" not in other
    assert sorted(p.name for p in (c.roots[0] / "model").iterdir()) == [
        "hyperparams.json",
        "model_algo_1-0000.params",
        "model_algo_1-symbol.json",
    ]
    assert list((c.roots[1] / "model").iterdir()) == []
    one, two = c.params("algo-1"), c.params("algo-2")
    trainable = [k for k in one if k.startswith("trainable/")]
    assert len(trainable) > 100
    assert [k for k in trainable if not np.array_equal(one[k], two[k])] == []
    assert not any(alive(pid) for pid in c.role_pids().values())
