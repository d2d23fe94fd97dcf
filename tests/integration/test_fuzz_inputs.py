"""Whatever is under /opt/ml, `validate` answers with success or a ClientError: never an
AlgorithmError, never a traceback in the failure file, never a hang, never a file outside the ml
root. Each example breaks a small valid job (RecordIO or images + .lst) in one to three ways:
config files, hyperparameter values, channel settings, data files, record headers, .lst lines,
images, FIFOs, directories and symlinks where files should be.

Tier: fast with 10 examples, slow with the full 60 (tests/tiers.py TWINS)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import tempfile
import threading
from pathlib import Path

import mxnet as mx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from sagemaker_cv import algorithms, cli
from sagemaker_cv.contract.errors import ClientError
from sagemaker_cv.inputs import recordio
from sagemaker_cv.tools.demo import write_example_tree
from tiers import TWINS, examples

NAMES = sorted({p.name for p in algorithms.get("image-classification").schema.params})
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(
        ["0", "1", "-1", "1e400", "nan", "１", "1_0", "3,16,16", "1,16,16", "3,0,16", '"sgd"', ""]
    ),
)
documents = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
CONFIGS = ("hyperparameters.json", "inputdataconfig.json", "resourceconfig.json")
CONTENT_TYPES = ["application/x-recordio", "application/x-image", "image/png", "text/csv", "", "x/y; a=b"]


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    made = {}
    for content in ("recordio", "lst"):
        root = tmp_path_factory.mktemp(content) / "ml"
        write_example_tree(
            root,
            content=content,
            per_class=3,
            val_per_class=2,
            image_size=24,
            hyperparameters={
                "mini_batch_size": "4",
                "num_layers": "20",
                "image_shape": "3,16,16",
                "epochs": "1",
            },
        )
        made[content] = root
    return made


# ---- ways to break a job ---------------------------------------------------------------------------


def read_object(path: Path) -> dict | None:
    """A config file as the breakers find it (an earlier breaker may have broken it already)."""
    if not path.is_file():  # also never open a FIFO here: it would block the test
        return None
    try:
        value = json.loads(path.read_bytes())
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def set_hyperparameter(root: Path, data) -> None:
    path = root / "input/config/hyperparameters.json"
    hp = read_object(path)
    if hp is None:
        return
    hp[data.draw(st.sampled_from(NAMES) | st.text(max_size=10), "key")] = data.draw(scalars, "value")
    path.write_text(json.dumps(hp))


def break_config_file(root: Path, data) -> None:
    path = root / "input/config" / data.draw(st.sampled_from(CONFIGS), "config file")
    how = data.draw(st.sampled_from(["bytes", "json", "bom", "dir", "fifo", "missing", "deep"]), "how")
    original = path.read_bytes() if path.is_file() else b"{}"
    if path.is_dir() and not path.is_symlink():
        path.rmdir()
    path.unlink(missing_ok=True)
    if how == "bytes":
        path.write_bytes(data.draw(st.binary(max_size=100), "bytes"))
    elif how == "json":
        path.write_text(json.dumps(data.draw(documents, "document")))
    elif how == "bom":
        path.write_bytes("\ufeff".encode() + original)
    elif how == "dir":
        path.mkdir()
    elif how == "fifo":
        os.mkfifo(path)
    elif how == "deep":
        depth = data.draw(st.integers(30, 5000), "depth")
        path.write_text("[" * depth + "]" * depth)


def change_channel(root: Path, data) -> None:
    path = root / "input/config/inputdataconfig.json"
    channels = read_object(path)
    if channels is None:
        return
    name = data.draw(st.sampled_from([*channels, "model", "extra"]), "channel")
    spec = channels.setdefault(name, {})
    if not isinstance(spec, dict):
        return
    key = data.draw(
        st.sampled_from(["ContentType", "TrainingInputMode", "S3DistributionType", None]), "field"
    )
    if key is None:
        del channels[name]
    else:
        spec[key] = data.draw(
            st.sampled_from([*CONTENT_TYPES, "File", "Pipe", "ShardedByS3Key"]) | scalars, "v"
        )
    path.write_text(json.dumps(channels))


def data_files(root: Path) -> list[Path]:
    return sorted(p for p in (root / "input/data").rglob("*") if p.is_file())


def break_data_file(root: Path, data) -> None:
    files = data_files(root)
    if not files:
        return
    path = data.draw(st.sampled_from(files), "data file")
    content = path.read_bytes()
    how = data.draw(
        st.sampled_from(
            ["truncate", "overwrite", "append", "replace", "empty", "fifo", "dir", "link out", "copy"]
        ),
        "how",
    )
    if how == "truncate":
        path.write_bytes(content[: data.draw(st.integers(0, len(content)), "at")])
    elif how == "overwrite":
        at = data.draw(st.integers(0, len(content)), "at")
        junk = data.draw(st.binary(min_size=1, max_size=16), "junk")
        path.write_bytes(content[:at] + junk + content[at + len(junk) :])
    elif how == "append":
        path.write_bytes(content + data.draw(st.binary(min_size=1, max_size=64), "junk"))
    elif how == "replace":
        path.write_bytes(data.draw(st.binary(max_size=256), "junk"))
    elif how == "empty":
        path.write_bytes(b"")
    elif how in ("fifo", "dir", "link out"):
        path.unlink()
        if how == "fifo":
            os.mkfifo(path)
        elif how == "dir":
            path.mkdir()
        else:
            outside = root.parent / f"outside{path.suffix}"
            outside.write_bytes(content)
            path.symlink_to(outside)
    else:
        path.with_name("copy-" + path.name).write_bytes(content)


def edit_lst(root: Path, data) -> None:
    lists = sorted(p for p in (root / "input/data").rglob("*.lst") if p.is_file())
    if not lists:
        return
    path = data.draw(st.sampled_from(lists), "lst")
    lines = path.read_text(errors="replace").splitlines()
    line = data.draw(
        st.text(max_size=40)
        | st.builds(
            "\t".join,
            st.lists(
                st.text(max_size=12)
                | st.sampled_from(["0", "1", "nan", "1e400", "..", "/etc/passwd", "a\x00b"]),
                min_size=1,
                max_size=5,
            ),
        ),
        "line",
    )
    at = data.draw(st.integers(0, len(lines)), "at")
    path.write_text("\n".join([*lines[:at], line, *lines[at:]]) + "\n")


def edit_record_header(root: Path, data) -> None:
    recs = sorted(p for p in (root / "input/data").rglob("*.rec") if p.is_file())
    if not recs:
        return
    path = data.draw(st.sampled_from(recs), "rec")
    try:
        records = [r.payload for r in recordio.read_records(path, path.name)]
    except ClientError:  # an earlier breaker damaged it already
        return
    if not records:
        return
    n = data.draw(st.integers(0, len(records) - 1), "record")
    flag = data.draw(st.sampled_from([0, 1, 3, 2**31, 2**32 - 1]) | st.integers(0, 2**32 - 1), "flag")
    label = data.draw(st.floats(width=32), "label")
    records[n] = struct.pack("IfQQ", flag, label, n, 0) + records[n][24:]
    writer = mx.recordio.MXRecordIO(str(path), "w")
    for item in records:
        writer.write(item)
    writer.close()


BREAKERS = [
    set_hyperparameter,
    break_config_file,
    change_channel,
    break_data_file,
    edit_lst,
    edit_record_header,
]


# ---- the property ----------------------------------------------------------------------------------


def expired(signum, frame):
    raise TimeoutError("validate blocked for 60 s")


def alarm_main_thread(seconds: float) -> threading.Timer:
    """SIGALRM to the main thread itself: MXNet's threads may take a process-directed signal, and
    then a system call blocked in the main thread is never interrupted."""
    main = threading.main_thread().ident
    timer = threading.Timer(seconds, signal.pthread_kill, (main, signal.SIGALRM))
    timer.start()
    return timer


@pytest.mark.parametrize("tier", TWINS)
def test_any_broken_job_is_valid_or_a_client_error(bases, tier):
    """10 broken jobs in the fast tier, 60 in the slow one."""

    @settings(
        max_examples=examples(60, tier),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(data=st.data())
    def check(data):
        validate_broken_job(bases, data)

    check()


def validate_broken_job(bases, data):
    content = data.draw(st.sampled_from(sorted(bases)), "format")
    work = Path(tempfile.mkdtemp(dir=bases[content].parent.parent))
    root = work / "ml"
    shutil.copytree(bases[content], root, symlinks=True)
    elsewhere = work / "tmp"
    elsewhere.mkdir()
    for breaker in data.draw(st.lists(st.sampled_from(BREAKERS), min_size=1, max_size=3), "breakers"):
        breaker(root, data)
    previous = signal.signal(signal.SIGALRM, expired)
    timer = alarm_main_thread(60)
    saved_tmp, tempfile.tempdir = tempfile.tempdir, str(elsewhere)
    try:
        code = cli.main(["validate", "--ml-root", str(root)])
    finally:
        timer.cancel()
        signal.signal(signal.SIGALRM, previous)
        tempfile.tempdir = saved_tmp
    failure_file = root / "output" / "failure"
    failure = failure_file.read_text() if failure_file.exists() else None
    # `pytest --hypothesis-show-statistics` shows how far the broken jobs got.
    event("passed" if code == 0 else (failure or "")[:40])
    try:
        assert code in (0, 2), failure
        assert (failure is None) == (code == 0), failure
        if failure is not None:
            assert failure.startswith("ClientError: "), failure
            for trace in ("Traceback", 'File "', "dmlc-core", "Stack trace", "[bt]"):
                assert trace not in failure, failure
        assert list(elsewhere.iterdir()) == []  # nothing outside the ml root
    finally:
        shutil.rmtree(work, ignore_errors=True)
