"""Semantic segmentation on two hosts over loopback (something the built-in cannot do): every
"host" is a `sagemaker-cv train` process with its own /opt/ml tree, and SAGEMAKER_CV_HOST_MAP maps
the host names to 127.0.0.1."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
from test_distributed_training import free_ports

from sagemaker_cv.tools.segmentation_demo import write_segmentation_tree

pytestmark = pytest.mark.cluster

HOSTS = ["algo-1", "algo-2"]
HP = {
    "epochs": 2,
    "crop_size": 17,
    "base_size": 24,
    "mini_batch_size": 2,
    "optimizer": "sgd",
    "learning_rate": 0.002,
}


def test_two_hosts_train_one_model_and_only_the_primary_validates_and_writes(tmp_path):
    roots = [tmp_path / name for name in HOSTS]
    write_segmentation_tree(
        roots[0], train=8, validation=2, sizes=(21, 29), label_map="scale", hyperparameters=HP
    )
    shutil.copytree(roots[0], roots[1])
    port = free_ports()
    procs, logs = {}, {}
    try:
        for name, root in zip(HOSTS, roots):
            (root / "input/config/resourceconfig.json").write_text(
                json.dumps({"current_host": name, "hosts": HOSTS})
            )
            env = dict(os.environ)
            env.update(
                SAGEMAKER_CV_HOST_MAP=",".join(f"{h}=127.0.0.1" for h in HOSTS),
                SAGEMAKER_CV_PS_PORT=str(port),
                SAGEMAKER_CV_LOG_INTERVAL="1",
                SAGEMAKER_CV_RENDEZVOUS_TIMEOUT="60",
                SAGEMAKER_CV_DUMP_PARAMS=str(tmp_path / f"{name}-params.npz"),
            )
            logs[name] = tmp_path / f"{name}.log"
            with open(logs[name], "w") as out:
                procs[name] = subprocess.Popen(
                    [sys.executable, "-m", "sagemaker_cv", "train", "--algorithm", "semantic-segmentation"]
                    + ["--ml-root", str(root)],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,  # the cleanup ends exactly this job's process groups
                )
        codes = {name: proc.wait(timeout=600) for name, proc in procs.items()}
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    text = {name: logs[name].read_text() for name in HOSTS}
    assert codes == {"algo-1": 0, "algo-2": 0}, text["algo-1"][-3000:] + text["algo-2"][-3000:]

    # dist_sync: both workers end with the same weights, changed from the same start.
    params = [dict(np.load(tmp_path / f"{name}-params.npz")) for name in HOSTS]
    trainable = [k for k in params[0] if k.startswith("trainable/")]
    assert len(trainable) > 100
    assert not [k for k in trainable if not np.array_equal(params[0][k], params[1][k])]

    # 8 images, 2 per batch, 2 workers: 2 batches per epoch on each host, with its own throughput.
    for rank, name in enumerate(HOSTS):
        assert (
            len(
                re.findall(
                    r"#progress_notice\. epoch: 0, iterations: \d+ speed: \S+ samples/sec learning_rate",
                    text[name],
                )
            )
            == 2
        )
        assert f"Host {name} (worker {rank} of 2): Epoch[1] Throughput:" in text[name]
        assert (
            "kv_store dist_sync" in text[name]
            and "LRScheduler setup: iters per epoch: 2, num_epochs 2" in text[name]
        )
        assert f"#quality_metric. host: {name}, epoch: 1, train loss:" in text[name]
    # The poly schedule runs on the servers; every worker logs the rate of its latest update.
    rates = [float(r) for r in re.findall(r"learning_rate: ([0-9.]+)", text["algo-2"])]
    assert (
        len(rates) == 4
        and rates[0] == 0.002
        and rates == sorted(rates, reverse=True)
        and rates[-1] < rates[0]
    )
    # Only the primary validates and writes the model.
    assert "validation mIOU:" in text["algo-1"] and "validation mIOU:" not in text["algo-2"]
    assert sorted(p.name for p in (roots[0] / "model").iterdir()) == [
        "hyperparams.json",
        "model_algo-1",
        "model_algo-1-0000.params",
        "model_algo-1-symbol.json",
    ]
    assert list((roots[1] / "model").iterdir()) == []
