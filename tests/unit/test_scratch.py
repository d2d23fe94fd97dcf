"""Scratch space lives under the ml root; leftovers of killed runs go, live runs' stay."""

from __future__ import annotations

import fcntl
import os
import tempfile

from sagemaker_cv.contract.paths import MLPaths
from sagemaker_cv.training.scratch import LOCK, scratch_space


def test_scratch_is_under_the_ml_root_and_removed_at_the_end(tmp_path, monkeypatch):
    elsewhere = tmp_path / "tmp"
    elsewhere.mkdir()
    monkeypatch.setenv("TMPDIR", str(elsewhere))
    tempfile.tempdir = None  # forget a cached default
    paths = MLPaths(tmp_path / "ml")
    with scratch_space(paths) as scratch:
        assert scratch.parent == tmp_path / "ml" / "input" / "sagemaker-cv-scratch"
        (scratch / "train.rec").write_bytes(b"x")
    assert not scratch.exists() and list(elsewhere.iterdir()) == []
    tempfile.tempdir = None


def test_leftovers_of_a_killed_run_are_removed_and_a_live_run_is_left_alone(tmp_path, caplog):
    paths = MLPaths(tmp_path)
    killed = paths.scratch_dir / "run-killed"
    killed.mkdir(parents=True)
    (killed / LOCK).write_text("")
    (killed / "train.rec").write_bytes(b"x" * 2**20)
    live = paths.scratch_dir / "run-live"
    live.mkdir()
    holder = os.open(live / LOCK, os.O_RDWR | os.O_CREAT)
    fcntl.flock(holder, fcntl.LOCK_EX)  # as a concurrent `validate` on the same tree holds it
    try:
        with scratch_space(paths):
            assert not killed.exists() and live.exists()
    finally:
        os.close(holder)
