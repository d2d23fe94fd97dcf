"""Every /opt/ml path, derived from one injectable root. No I/O here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_ROOT = Path("/opt/ml")


@dataclass(frozen=True)
class MLPaths:
    root: Path = DEFAULT_ROOT

    @property
    def config_dir(self) -> Path:
        return self.root / "input" / "config"

    @property
    def hyperparameters(self) -> Path:
        return self.config_dir / "hyperparameters.json"

    @property
    def resource_config(self) -> Path:
        return self.config_dir / "resourceconfig.json"

    @property
    def input_data_config(self) -> Path:
        return self.config_dir / "inputdataconfig.json"

    @property
    def data_dir(self) -> Path:
        return self.root / "input" / "data"

    def channel(self, name: str) -> Path:
        return self.data_dir / name

    @property
    def scratch_dir(self) -> Path:
        """Our prepared data: on the ml root's (large) volume, outside what SageMaker uploads."""
        return self.root / "input" / "sagemaker-cv-scratch"

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def output_dir(self) -> Path:
        return self.root / "output"

    @property
    def output_data_dir(self) -> Path:
        """SageMaker packs it into output.tar.gz beside the model; a local run leaves it here."""
        return self.output_dir / "data"

    @property
    def metrics_file(self) -> Path:
        return self.output_data_dir / "metrics.jsonl"

    @property
    def curves_file(self) -> Path:
        return self.output_data_dir / "training-curves.png"

    @property
    def default_tensorboard_dir(self) -> Path:
        """TensorBoardOutputConfig's default LocalPath: SageMaker uploads it while the job runs."""
        return self.output_dir / "tensorboard"

    @property
    def failure_file(self) -> Path:
        return self.output_dir / "failure"

    @property
    def checkpoint_config(self) -> Path:
        """Present when the job has a CheckpointConfig (spot training, or resumable jobs)."""
        return self.config_dir / "checkpointconfig.json"

    @property
    def default_checkpoint_dir(self) -> Path:
        return self.root / "checkpoints"

    def under_root(self, path: str | Path) -> Path:
        """A path SageMaker gives as /opt/ml/..., moved under this root (a local tree run with
        --ml-root); any other path as it is."""
        path = Path(path)
        if self.root != DEFAULT_ROOT and path.is_relative_to(DEFAULT_ROOT):
            return self.root / path.relative_to(DEFAULT_ROOT)
        return path


@dataclass(frozen=True)
class TensorBoardSettings:
    """Where the TensorBoard event files go: $SAGEMAKER_CV_TENSORBOARD_DIR (a job whose
    TensorBoardOutputConfig sets another LocalPath says so there), else the default LocalPath."""

    directory: Path

    @classmethod
    def from_env(cls, paths: MLPaths, environ: Mapping[str, str] | None = None) -> TensorBoardSettings:
        from sagemaker_cv.contract.environment import JobSettings

        value = JobSettings.from_env(environ).tensorboard_dir
        return cls(paths.default_tensorboard_dir if value is None else paths.under_root(value))
