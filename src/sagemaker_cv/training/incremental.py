"""Incremental training: start from the model of an earlier job, given in the `model` channel
(content type application/x-sagemaker-model, File mode) as its model.tar.gz.

The archive is unpacked safely (`contract.model_archive`); the algorithm reads what the files
say about the network (`Algorithm.incremental.facts`) and every hyperparameter the network's
shape depends on (`Algorithm.incremental.keys`) must be the job's: each mismatch is named with
both values. The task then loads the weights (`GluonTask.load_start_model`) before training.
Log lines as the built-in object detector prints them (contract 3.6).

Framework-free except `graph_signature`'s callers: `validate` checks the channel without MXNet.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sagemaker_cv.contract import logs, model_archive
from sagemaker_cv.contract.content_types import MODEL
from sagemaker_cv.contract.errors import ClientError
from sagemaker_cv.training.job import Job

log = logs.get("incremental")

CHANNEL = "model"
PREPARED_KEY = "start_model"  # where the start model travels in Prepared.data


@dataclass(frozen=True)
class StartModel:
    directory: Path  # the earlier job's model files, unpacked
    facts: dict[str, Any]
    origin: str = "channel 'model'"  # how messages name it


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return list(a) == list(b)
    return a == b


def _show(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else repr(value)


def mismatches(facts: Mapping[str, Any], hp: Mapping[str, Any], keys: Sequence[str]) -> list[str]:
    """One line per must-match hyperparameter whose value differs from the earlier model's."""
    return [
        f"{key}: the model in the model channel has {_show(facts[key])}, this job has {_show(hp.get(key))}"
        for key in keys
        if key in facts and not _same(facts[key], hp.get(key))
    ]


def channel_problems(job: Job) -> list[str]:
    channel = job.channels.get(CHANNEL)
    if channel is None:
        return []
    problems = []
    if job.algorithm.incremental is None:
        problems.append(
            f"channel 'model': incremental training is not available for {job.algorithm.name} in this version; "
            "remove the channel"
        )
    if channel.media_type not in (None, MODEL):
        problems.append(f"channel 'model' ContentType={channel.content_type!r}: expected {MODEL}")
    if channel.input_mode != "File":
        problems.append(
            f"channel 'model' TrainingInputMode={channel.input_mode!r}: the model channel is read in File mode"
        )
    return problems


def prepare(job: Job, scratch: Path) -> StartModel | None:
    """Unpack and check the model channel; None without one."""
    if CHANNEL not in job.channels:
        return None
    problems = channel_problems(job)
    if problems:
        raise ClientError(problems)
    spec = job.algorithm.incremental
    log.info("Start training from the model in the model channel.")
    channel_dir = job.paths.channel(CHANNEL)
    archive = model_archive.find_archive(channel_dir)
    if archive is None:
        directory = channel_dir  # already unpacked (e.g. a local tree)
    else:
        log.info("Found a model archive file. Extracting %s", archive.name)
        directory = model_archive.extract(archive, scratch / "model-channel")
    facts = spec.read_facts(directory)
    found = mismatches(facts, job.hyperparameters, spec.keys)
    if found:
        raise ClientError(
            [
                "channel 'model': the earlier model's network differs from this job's; these hyperparameters "
                "must be the same",
                *found,
            ]
        )
    return StartModel(directory, facts)


def graph_signature(graph: Mapping[str, Any]) -> list[tuple]:
    """An MXNet symbol JSON without its names: each node's operator, attributes and inputs (by
    position). Two networks of the same structure have the same signature whatever their
    parameters are called, so parameters can be matched by position."""
    signature = []
    for node in graph.get("nodes", []):
        attrs = {} if node.get("op") == "null" else node.get("attrs", node.get("param", {}))
        signature.append(
            (
                node.get("op"),
                tuple(sorted((k, str(v)) for k, v in attrs.items() if not k.startswith("__"))),
                tuple(tuple(i[:2]) for i in node.get("inputs", [])),
            )
        )
    return signature
