"""`sagemaker-cv predict` without a model: which files it reads and where their answers go, how a
refused image is reported while the others go on, the progress lines, and the refusals that come
before anything is loaded (a hostile archive, a missing input).

Tier: fast (no MXNet, a handler that answers from the bytes).
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from sagemaker_cv.cli import main
from sagemaker_cv.serving.handler import Response, error
from sagemaker_cv.tools.predict import Progress, duration, inputs, predict


def files(root: Path, *names: str) -> Path:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(name.encode())
    return root


def test_a_folder_is_read_whole_and_named_as_batch_transform_names_its_outputs(tmp_path):
    source = files(tmp_path / "in", "b.jpg", "a.png", "day1/c.jpg", ".DS_Store", ".cache/d.jpg")
    out = tmp_path / "out"
    assert inputs(source, out) == [
        (source / "a.png", out / "a.png.out"),
        (source / "b.jpg", out / "b.jpg.out"),
        (source / "day1" / "c.jpg", out / "day1" / "c.jpg.out"),
    ]
    assert inputs(source / "b.jpg", out) == [(source / "b.jpg", out / "b.jpg.out")]


def test_an_output_folder_inside_the_input_is_not_read_again(tmp_path):
    source = files(tmp_path / "in", "a.jpg", "predictions/a.jpg.out")
    assert inputs(source, source / "predictions") == [
        (source / "a.jpg", source / "predictions" / "a.jpg.out")
    ]


def test_a_missing_or_empty_input_is_named(tmp_path):
    with pytest.raises(Exception, match=r"--input .*nowhere: no such file or directory"):
        inputs(tmp_path / "nowhere", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    files(tmp_path / "empty", ".hidden")
    with pytest.raises(Exception, match="holds no files"):
        inputs(tmp_path / "empty", tmp_path / "out")


class Echo:
    """Answers 200 with the body reversed, 400 for bodies that start with "bad"."""

    def __init__(self):
        self.calls = []

    def __call__(self, body, content_type, accept):
        self.calls.append((body, content_type, accept))
        if body.startswith(b"bad"):
            return error(400, "the request body is not an image")
        return Response(200, body[::-1], "application/json")


class Clock:
    def __init__(self, step: float):
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_a_bad_image_is_reported_by_name_and_the_others_go_on(tmp_path):
    source = files(tmp_path / "in", "a.jpg", "bad.jpg", "sub/c.jpg")
    out = tmp_path / "out"
    err = io.StringIO()
    handler = Echo()
    failed = predict(handler, inputs(source, out), "application/json", source, out, err=err)
    assert failed == 1
    assert (out / "a.jpg.out").read_bytes() == b"gpj.a" and (
        out / "sub" / "c.jpg.out"
    ).read_bytes() == b"gpj.c/bus"
    assert not (out / "bad.jpg.out").exists() and not list(out.rglob(".*"))  # no partial files left
    assert [c[1:] for c in handler.calls] == [("application/x-image", "application/json")] * 3
    lines = err.getvalue().splitlines()
    assert "predict: bad.jpg: the request body is not an image (400)" in lines
    assert lines[-1].endswith(f"2 written to {out}, 1 failed")


def test_an_unreadable_file_is_a_failure_of_its_own(tmp_path):
    source = files(tmp_path / "in", "a.jpg", "b.jpg")
    pairs = inputs(source, tmp_path / "out")
    (source / "a.jpg").unlink()  # gone between the listing and the reading
    err = io.StringIO()
    assert predict(Echo(), pairs, None, source, tmp_path / "out", err=err) == 1
    assert "predict: a.jpg: cannot be read" in err.getvalue()


def test_progress_lines_say_files_rate_and_time_left():
    progress = Progress(100, Clock(1.0), interval=5)
    lines = [progress.tick(done) for done in range(1, 101)]
    shown = [line for line in lines if line]
    # One line per 5 s of a 1 s/file clock, none once every file is done.
    assert len(shown) == 19 and lines[-1] is None
    assert shown[0] == "predict: 5/100 files, 1.00 images/s, ETA 1 min 35 s"
    assert progress.summary(98, 2, Path("out")).startswith(
        "predict: 100 file(s) in 1 min 41 s (0.99 images/s)"
    )


def test_durations():
    assert [duration(s) for s in (0.4, 59, 60, 3599, 3600, 7625)] == [
        "0 s", "59 s", "1 min 00 s", "59 min 59 s", "1 h 00 min", "2 h 07 min",
    ]  # fmt: skip


def test_a_hostile_archive_is_refused_before_anything_is_loaded(tmp_path, capsys):
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("../evil")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    files(tmp_path / "in", "a.jpg")
    code = main(
        ["predict", "--model", str(archive), "--input", str(tmp_path / "in"), "--output", str(tmp_path / "o")]
    )
    assert code == 2
    assert "leaves the directory ('..')" in capsys.readouterr().err
    assert not (tmp_path / "evil").exists() and not (tmp_path / "o").exists()


def test_a_model_of_no_known_algorithm_is_named(tmp_path, capsys):
    model = files(tmp_path / "model", "weights.bin")
    files(tmp_path / "in", "a.jpg")
    code = main(
        ["predict", "--model", str(model), "--input", str(tmp_path / "in"), "--output", str(tmp_path / "o")]
    )
    err = capsys.readouterr().err
    assert code == 2 and "no model file of a known algorithm (it holds weights.bin)" in err, err
    assert "Traceback" not in err
