"""Everything a training job is told, read once at the edge and validated as a whole.

The job carries its algorithm's record (`algorithms.record.Algorithm`), resolved once by the entry
point: nothing below the algorithms looks an algorithm up by name again."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sagemaker_cv.contract import config as env
from sagemaker_cv.contract.errors import ClientError
from sagemaker_cv.contract.paths import MLPaths
from sagemaker_cv.schema import Context, HyperParameters

if TYPE_CHECKING:  # the record's type only: the job is handed the record, never the registry
    from sagemaker_cv.algorithms.record import Algorithm


@dataclass(frozen=True)
class Job:
    algorithm: Algorithm
    paths: MLPaths
    hyperparameters: HyperParameters
    resource: env.ResourceConfig
    channels: dict[str, env.Channel]
    num_gpus: int = 0
    warnings: tuple[str, ...] = field(default=())
    raw_hyperparameters: dict = field(default_factory=dict)
    seed: int = 0  # every random draw derives from it (training.seeding); set by the runner


def load_job(paths: MLPaths, algorithm: Algorithm, num_gpus: int) -> Job:
    """Read and validate the config files; every problem found goes into one ClientError."""
    schema = algorithm.schema
    if not paths.config_dir.is_dir():
        # Otherwise every missing file reads as "not given", and the job blames a missing num_classes.
        raise ClientError(
            f"{paths.config_dir}: no such directory; SageMaker writes the job's config files there "
            "(is --ml-root or SAGEMAKER_CV_ML_ROOT right?)"
        )
    problems: list[str] = []
    failed = object()  # a loader that raised (a file holding JSON `null` loads as None)

    def collect(loader):
        """Run one loader; its ClientError problems join the others instead of stopping here."""
        try:
            return loader()
        except ClientError as exc:
            problems.extend(exc.problems)
            return failed

    raw_hp = collect(lambda: env.load_json(paths.hyperparameters, required=False, default={}))
    resource = collect(
        lambda: env.parse_resource_config(env.load_json(paths.resource_config, required=False))
    )
    channels = collect(
        lambda: env.parse_input_data_config(env.load_json(paths.input_data_config, required=False))
    )
    resource = None if resource is failed else resource
    channels = None if channels is failed else channels
    if channels is not None and not channels:
        channels = _channels_from_directories(paths)
    hp = None
    warnings: list[str] = []
    if raw_hp is not failed:
        context = Context(
            num_gpus=num_gpus,
            num_hosts=resource.num_hosts if resource else 1,
            content_types={c.name: c.content_type for c in (channels or {}).values()},
        )
        try:
            hp, warnings = schema.validate(raw_hp, context)
        except ClientError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ClientError(problems)
    return Job(
        algorithm=algorithm,
        paths=paths,
        hyperparameters=hp,
        resource=resource,
        channels=channels,
        num_gpus=num_gpus,
        warnings=tuple(warnings),
        raw_hyperparameters=dict(raw_hp),
    )


def _channels_from_directories(paths: MLPaths) -> dict[str, env.Channel]:
    """No inputdataconfig.json (a hand-made local tree): every directory under input/data is a channel."""
    if not paths.data_dir.is_dir():
        return {}
    return {d.name: env.Channel(name=d.name) for d in sorted(paths.data_dir.iterdir()) if d.is_dir()}
