"""One SageMaker Python SDK v3 local-mode job, as a user writes it (`ModelTrainer` with
`Mode.LOCAL_CONTAINER`). test_local_mode_v3.py runs this file with the SDK v3 environment's Python:
the tests' own environment holds SDK v2 (`sagemaker<3`), and one environment cannot hold both.

    python sdk3_local_mode.py --image IMAGE --root DIR --data DIR --instances N --hyperparameters JSON
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--image", required=True)
    parser.add_argument("--root", type=Path, required=True, help="local_container_root (fresh per job)")
    parser.add_argument("--data", type=Path, required=True, help="holds the train and validation channels")
    parser.add_argument("--instances", type=int, default=1)
    parser.add_argument("--hyperparameters", type=json.loads, required=True)
    args = parser.parse_args()

    from sagemaker.train import ModelTrainer
    from sagemaker.train.configs import Compute, InputData
    from sagemaker.train.model_trainer import Mode

    trainer = ModelTrainer(
        training_image=args.image,
        training_mode=Mode.LOCAL_CONTAINER,
        compute=Compute(instance_type="local", instance_count=args.instances),
        hyperparameters=args.hyperparameters,
        input_data_config=[
            InputData(
                channel_name=name, data_source=str(args.data / name), content_type="application/x-recordio"
            )
            for name in ("train", "validation")
        ],
        local_container_root=str(args.root),
    )
    trainer.train()


if __name__ == "__main__":
    main()
