"""Pure parsers for the three config files SageMaker writes into /opt/ml/input/config.

Each parser takes the decoded JSON (whatever shape the user or the platform gave) and returns a
frozen object, or raises ClientError naming every problem. Reading files happens in `load_json`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sagemaker_cv.contract import files
from sagemaker_cv.contract.content_types import media_type
from sagemaker_cv.contract.errors import ClientError

INPUT_MODES = ("File", "FastFile", "Pipe")
DISTRIBUTIONS = ("FullyReplicated", "ShardedByS3Key")


# SageMaker allows 100 hyperparameters of at most 2500 characters; a larger file is not a config
# file, and reading it whole would cost memory and a log line of its size.
CONFIG_LIMIT = 1 << 20
MAX_DEPTH = 32  # config files are flat objects; deeper JSON only exhausts the parser's recursion


def load_json(path: Path, *, required: bool, default: Any = None) -> Any:
    """Decode one config file; a missing optional file gives `default`. A file that is not a
    readable regular file of UTF-8 JSON (a byte-order mark is fine) is a ClientError naming it."""
    if not path.exists() and not path.is_symlink():
        if required:
            raise ClientError(f"{path} is missing: SageMaker writes it for every training job")
        return default
    text = files.read_text(path, str(path), limit=CONFIG_LIMIT)
    nested = ClientError(f"{path}: JSON nested more than {MAX_DEPTH} levels deep; expected a flat object")
    try:
        data = json.loads(text)
    except RecursionError:
        raise nested from None
    except ValueError as exc:  # JSONDecodeError, or an integer too long to convert
        raise ClientError(f"{path} is not valid JSON: {files.json_problem(exc)}") from None
    if files.json_depth(data, MAX_DEPTH) > MAX_DEPTH:
        raise nested
    return data


@dataclass(frozen=True)
class ResourceConfig:
    current_host: str = "algo-1"
    hosts: tuple[str, ...] = ("algo-1",)
    network_interface_name: str | None = None
    current_instance_type: str | None = None

    @property
    def primary_host(self) -> str:
        return self.hosts[0]

    @property
    def is_primary(self) -> bool:
        return self.current_host == self.primary_host

    @property
    def num_hosts(self) -> int:
        return len(self.hosts)

    @property
    def rank(self) -> int:
        return self.hosts.index(self.current_host)


def parse_resource_config(data: Any) -> ResourceConfig:
    """resourceconfig.json; absent keys take single-host defaults (older local mode omits some)."""
    if data is None:
        return ResourceConfig()
    if not isinstance(data, dict):
        raise ClientError(f"resourceconfig.json must be a JSON object, got {type(data).__name__}")
    problems = []
    hosts = data.get("hosts", ["algo-1"])
    if not isinstance(hosts, list) or not hosts or not all(isinstance(h, str) and h for h in hosts):
        problems.append(f"resourceconfig.json hosts={hosts!r}: expected a non-empty list of host names")
        hosts = ["algo-1"]
    current = data.get("current_host", hosts[0])
    if not isinstance(current, str) or current not in hosts:
        problems.append(f"resourceconfig.json current_host={current!r}: expected one of hosts {hosts}")
    if len(set(hosts)) != len(hosts):
        problems.append(f"resourceconfig.json hosts={hosts!r}: host names must be unique")
    iface = data.get("network_interface_name")
    if iface is not None and not isinstance(iface, str):
        problems.append(f"resourceconfig.json network_interface_name={iface!r}: expected a string")
    if problems:
        raise ClientError(problems)
    return ResourceConfig(
        current_host=current,
        hosts=tuple(hosts),
        network_interface_name=iface or None,
        current_instance_type=data.get("current_instance_type"),
    )


@dataclass(frozen=True)
class Channel:
    name: str
    content_type: str | None = None
    input_mode: str = "File"
    distribution: str = "FullyReplicated"
    record_wrapper: str | None = None
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def media_type(self) -> str | None:
        """The content type without parameters (`application/x-recordio; label-format=...`)."""
        return media_type(self.content_type)

    @property
    def content_type_params(self) -> dict[str, str]:
        if not self.content_type:
            return {}
        params = {}
        for part in self.content_type.split(";")[1:]:
            key, _, value = part.partition("=")
            params[key.strip().lower()] = value.strip().lower()
        return params


def parse_input_data_config(data: Any) -> dict[str, Channel]:
    """inputdataconfig.json: every key but TrainingInputMode may be missing."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ClientError(f"inputdataconfig.json must be a JSON object, got {type(data).__name__}")
    channels, problems = {}, []
    for name, spec in data.items():
        if not isinstance(spec, dict):
            problems.append(f"inputdataconfig.json channel {name!r}: expected an object, got {spec!r}")
            continue
        mode = spec.get("TrainingInputMode", "File")
        if mode not in INPUT_MODES:
            problems.append(
                f"channel {name!r} TrainingInputMode={mode!r}: expected one of {list(INPUT_MODES)}"
            )
        dist = spec.get("S3DistributionType", "FullyReplicated")
        if dist not in DISTRIBUTIONS:
            problems.append(
                f"channel {name!r} S3DistributionType={dist!r}: expected one of {list(DISTRIBUTIONS)}"
            )
        ctype = spec.get("ContentType")
        if ctype is not None and not isinstance(ctype, str):
            problems.append(f"channel {name!r} ContentType={ctype!r}: expected a string")
            ctype = None
        known = {"TrainingInputMode", "S3DistributionType", "ContentType", "RecordWrapperType"}
        channels[name] = Channel(
            name=name,
            content_type=ctype or None,
            input_mode=mode,
            distribution=dist,
            record_wrapper=spec.get("RecordWrapperType"),
            extra={k: v for k, v in spec.items() if k not in known},
        )
    if problems:
        raise ClientError(problems)
    return channels


@dataclass(frozen=True)
class CheckpointConfig:
    local_path: str = "/opt/ml/checkpoints"  # as SageMaker gives it (MLPaths.under_root moves it)


def parse_checkpoint_config(data: Any) -> CheckpointConfig | None:
    """checkpointconfig.json: absent (None) means checkpoints are off; LocalPath defaults to
    /opt/ml/checkpoints, as CheckpointConfig documents."""
    if data is None:
        return None
    if not isinstance(data, dict):
        raise ClientError(f"checkpointconfig.json must be a JSON object, got {type(data).__name__}")
    local = data.get("LocalPath") or CheckpointConfig.local_path
    if not isinstance(local, str) or not local.startswith("/"):
        raise ClientError(f"checkpointconfig.json LocalPath={local!r}: expected an absolute path")
    return CheckpointConfig(local)


def data_shard(distribution: str, num_workers: int, rank: int) -> tuple[int, int]:
    """(num_parts, part_index) for reading one channel: FullyReplicated data (the same files on
    every host) is split by rank so each sample is seen once per epoch across the cluster;
    ShardedByS3Key data is already a different part on each host and is read whole."""
    if distribution == "ShardedByS3Key":
        return 1, 0
    return num_workers, rank
