"""Fixtures shared by the unit and integration tests."""

from __future__ import annotations

import subprocess

import pytest

from sagemaker_cv.tools import pipefeed


@pytest.fixture
def feeders():
    """Start Pipe-mode feeder processes (`pipefeed.start(root, channel, epochs, *args)`); any still
    running when the test ends (it failed before reading every FIFO) is ended."""
    started: list[subprocess.Popen] = []

    def start(*args, **kwargs) -> subprocess.Popen:
        kwargs.setdefault("stderr", subprocess.PIPE)
        started.append(pipefeed.start(*args, **kwargs))
        return started[-1]

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
