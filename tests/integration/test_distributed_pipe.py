"""Pipe mode and checkpoints on several hosts (loopback, as test_distributed_training): each host's
FullyReplicated pipe carries every record, each worker keeps its share and all run the same
number of batches (dist_sync would hang otherwise); only the primary writes checkpoints, and
every host resumes from them."""

from __future__ import annotations

import json
import re
import shutil

import pytest
from test_distributed_training import Cluster

pytestmark = pytest.mark.cluster


def set_epochs(root, epochs: int) -> None:
    path = root / "input" / "config" / "hyperparameters.json"
    hp = json.loads(path.read_text())
    hp["epochs"] = str(epochs)
    path.write_text(json.dumps(hp))


def test_two_hosts_share_a_pipe_and_resume_from_the_primarys_checkpoints(tmp_path, feeders):
    # 3 classes x 11 images = 33 records: the hosts keep 17 and 16, 3 and 2 batches of 8 on their
    # own; both must run 3.
    c = Cluster(tmp_path, 2, hyperparameters={"epochs": "2"}, per_class=11)
    rec = tmp_path / "train.rec"
    shutil.copy(next((c.roots[0] / "input/data/train").glob("*.rec")), rec)
    for root in c.roots:
        shutil.rmtree(root / "input/data/train")
        config = root / "input/config/inputdataconfig.json"
        channels = json.loads(config.read_text())
        channels["train"]["TrainingInputMode"] = "Pipe"
        config.write_text(json.dumps(channels))
        (root / "input/config/checkpointconfig.json").write_text(
            json.dumps({"LocalPath": "/opt/ml/checkpoints"})
        )
    try:
        started = [feeders(root, "train", 2, rec) for root in c.roots]
        c.start(env={name: {"SAGEMAKER_CV_PIPE_TIMEOUT": "60"} for name in c.names})
        codes = c.wait(300)
        assert codes == {"algo-1": 0, "algo-2": 0}, c.tail("algo-1") + c.tail("algo-2")
        for f in started:
            assert f.wait(timeout=30) == 0
        for rank, name in enumerate(c.names):
            text = c.log(name)
            assert len(re.findall(r"Epoch\[1\] Batch \[\d+\]", text)) == 3, name
            assert f"Host {name} (worker {rank} of 2): Epoch[1] Throughput:" in text
            assert "(24 samples in" in text
        # Only the primary writes checkpoints.
        assert sorted(p.name for p in (c.roots[0] / "checkpoints").iterdir()) == [
            "checkpoint-0001",
            "checkpoint-0002",
        ]
        assert not (c.roots[1] / "checkpoints").exists()
        assert not (
            c.roots[0] / "checkpoints/checkpoint-0002/optimizer.states"
        ).exists()  # held by the servers

        # A restart with one more epoch: SageMaker fills every host's LocalPath from the job's S3
        # checkpoint prefix, which holds what the primary wrote. Pipes start again at train_0.
        shutil.copytree(c.roots[0] / "checkpoints", c.roots[1] / "checkpoints")
        for root in c.roots:
            set_epochs(root, 3)
            for log in c.logs.values():
                log.write_text("")
        started = [feeders(root, "train", 1, rec) for root in c.roots]
        c.start(env={name: {"SAGEMAKER_CV_PIPE_TIMEOUT": "60"} for name in c.names})
        codes = c.wait(300)
        assert codes == {"algo-1": 0, "algo-2": 0}, c.tail("algo-1") + c.tail("algo-2")
        for root, name in zip(c.roots, c.names):
            text = c.log(name)
            assert "epochs 0 to 1 are done, training continues with epoch 2" in text, name
            assert "momentum restarts from zero, the learning-rate schedule continues from update 6" in text
            assert "Epoch[2] Batch [3]" in text and "Epoch[1] Batch" not in text
            assert f"Reading {root}/input/data/train_0 (Pipe mode)" in text
        assert (c.roots[0] / "checkpoints/checkpoint-0003").is_dir()
    finally:
        c.stop()
