"""Fault injection and inspection for the multi-host tests, and nothing else: hooks that only a
test switches on, through the SAGEMAKER_CV_TEST_* and SAGEMAKER_CV_DUMP_PARAMS variables
(contract.environment lists them as "tests only"). A real job never sets them."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from sagemaker_cv.contract import logs
from sagemaker_cv.training.engine import Hook, State

DUMP_PARAMS_ENV = "SAGEMAKER_CV_DUMP_PARAMS"
EXIT_AT_STEP_ENV = "SAGEMAKER_CV_TEST_EXIT_AT_STEP"
EXIT_WHEN_TRAINED_ENV = "SAGEMAKER_CV_TEST_EXIT_WHEN_TRAINED"
log = logs.get("worker")


def hooks_from_env(environ: Mapping[str, str]) -> list[Hook]:
    """The hooks a test asked the worker for (none in a real job)."""
    hooks: list[Hook] = []
    if environ.get(DUMP_PARAMS_ENV):
        hooks.append(DumpParameters(Path(environ[DUMP_PARAMS_ENV])))
    if environ.get(EXIT_AT_STEP_ENV):
        hooks.append(ExitAtStep(int(environ[EXIT_AT_STEP_ENV])))
    return hooks


class ExitAtStep(Hook):
    def __init__(self, step: int):
        self.step = step

    def after_step(self, task, state: State, samples: int) -> None:
        if state.step == self.step:
            exit_now(f"Exiting after step {state.step} ({EXIT_AT_STEP_ENV})")


def exit_now(why: str) -> None:
    """End the process at once, as if it crashed, but with code 0."""
    log.info(why)
    sys.stdout.flush()
    os._exit(0)


class DumpParameters(Hook):
    def __init__(self, path: Path):
        self.path = path

    def after_train(self, task, state: State) -> None:
        import numpy as np

        from sagemaker_cv.training.export import structural_params

        arrays = {}
        for name, param in structural_params(task.net).items():
            group = "aux" if param.grad_req == "null" else "trainable"
            arrays[f"{group}/{name}"] = param.data(param.list_ctx()[0]).asnumpy()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "wb") as f:
            np.savez(f, **arrays)
