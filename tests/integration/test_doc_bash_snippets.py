"""The bash blocks of docs/ that run on one machine without AWS or Docker, run in bash as written
(the README's bash blocks and every ```python block: test_doc_snippets.py).

- docs/inputs.md, Pipe mode outside SageMaker: two `pipefeed` writers and a Pipe-mode job on a
  small demo tree at demo/ml, its RecordIO files in data/, with the page's inputdataconfig.json.
- docs/distributed.md, two hosts on loopback: trees h1 and h2 with the resourceconfig.json the
  block's comments give; only the scheduler port is replaced, by a free one.

Each block is found on its page by its first line, so a block that is gone or changed there fails
here by name. It runs in a session of its own, killed in the end: the feeders wait for epochs that
never come, and a host whose peer died waits forever.

Tier: slow (Pipe mode) and cluster (two hosts)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from test_distributed_training import free_ports
from test_doc_snippets import REPO, environment, snippets

from sagemaker_cv.tools.demo import write_example_tree

#: a job of seconds: 2 epochs of 48 pictures, a ResNet-20 on 16 px crops
HP = {"epochs": "2", "mini_batch_size": "8", "num_layers": "20", "image_shape": "3,16,16"}
PIPE_FIRST_LINE = (
    "python -m sagemaker_cv.tools.pipefeed --ml-root demo/ml --channel train --epochs 30 data/train.rec &"
)
HOSTS_FIRST_LINE = "export SAGEMAKER_CV_HOST_MAP=algo-1=127.0.0.1,algo-2=127.0.0.1 SAGEMAKER_CV_PS_PORT=9100"


def block(page: str, first_line: str) -> str:
    """The ```bash block of docs/`page` whose first line is `first_line`."""
    found = [code for _, code in snippets(REPO / "docs" / page, "bash") if code.split("\n")[0] == first_line]
    assert len(found) == 1, f"docs/{page}: {len(found)} ```bash blocks start with {first_line!r}"
    return found[0]


def json_above(page: str, first_line: str) -> dict:
    """The last ```json block of docs/`page` above the ```bash block starting with `first_line`."""
    text = (REPO / "docs" / page).read_text()
    above = text[: text.index(f"```bash\n{first_line}\n")]
    return json.loads(re.findall(r"^```json\n(.*?)^```", above, re.S | re.M)[-1])


def write_tree(root: Path) -> None:
    write_example_tree(root, per_class=16, val_per_class=4, image_size=24, hyperparameters=HP)


def run_block(script: str, cwd: Path, timeout: float, **env) -> tuple[int, str]:
    """Run `script` in bash in a session of its own; (exit code, output). The output goes to a file,
    not a pipe: what the block leaves running in the background would hold a pipe open."""
    log = cwd / "block.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            ["bash", "-c", script],
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**environment(), **{k: str(v) for k, v in env.items()}},
            start_new_session=True,
        )
    try:
        exit_code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the block still ran after {timeout:.0f} s:\n{log.read_text()[-3000:]}")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    return exit_code, log.read_text()


def test_pipe_mode_outside_sagemaker_runs_as_the_inputs_page_shows(tmp_path):
    code = block("inputs.md", PIPE_FIRST_LINE)
    root = tmp_path / "demo" / "ml"
    write_tree(root)
    (tmp_path / "data").mkdir()
    for channel in ("train", "validation"):
        (rec,) = (root / "input" / "data" / channel).glob("*.rec")
        rec.replace(tmp_path / "data" / f"{channel}.rec")
        (root / "input" / "data" / channel).rmdir()  # the channel arrives through FIFOs only
    config = json_above("inputs.md", PIPE_FIRST_LINE)
    assert {spec["TrainingInputMode"] for spec in config.values()} == {"Pipe"}, config
    (root / "input" / "config" / "inputdataconfig.json").write_text(json.dumps(config))

    # A FIFO nobody writes fails the job in 2 minutes rather than the default 15.
    exit_code, out = run_block(code, tmp_path, timeout=600, SAGEMAKER_CV_PIPE_TIMEOUT=120)
    assert exit_code == 0, out[-3000:]
    for channel in ("train", "validation"):
        assert f"Reading {channel} in Pipe mode from demo/ml/input/data/{channel}_0, " in out, out[-3000:]
        for n in range(2):
            assert f"Reading demo/ml/input/data/{channel}_{n} (Pipe mode)" in out, out[-3000:]
        assert f"Reading demo/ml/input/data/{channel}_2 (Pipe mode)" not in out
    assert len(re.findall(r"Epoch\[[01]\] Validation-accuracy=\d\.\d+", out)) == 2, out[-3000:]
    written = sorted(p.name for p in (root / "model").iterdir())
    assert re.fullmatch(r"image-classification-000[12]\.params", written[0]), written
    assert written[1:] == ["image-classification-symbol.json", "model-shapes.json"], written


@pytest.mark.cluster
def test_two_hosts_on_loopback_train_as_the_distributed_page_shows(tmp_path):
    code = block("distributed.md", HOSTS_FIRST_LINE)
    # The block's comments say what each tree's resourceconfig.json holds.
    hosts = re.findall(
        r"^sagemaker-cv train --ml-root (\S+) & \w+=\$!\s+# resourceconfig: (\{.*\})$", code, re.M
    )
    assert [root for root, _ in hosts] == ["h1", "h2"], code
    write_tree(tmp_path / "h1")
    shutil.copytree(tmp_path / "h1", tmp_path / "h2")
    for root, resource in hosts:
        (tmp_path / root / "input" / "config" / "resourceconfig.json").write_text(resource)
    port = free_ports()  # the scheduler's and, one above, the launchers' control link
    code, replaced = re.subn(r"SAGEMAKER_CV_PS_PORT=\d+", f"SAGEMAKER_CV_PS_PORT={port}", code)
    assert replaced == 1, code

    # A host that never joins fails the job in 2 minutes rather than the default 15.
    exit_code, out = run_block(code, tmp_path, timeout=600, SAGEMAKER_CV_RENDEZVOUS_TIMEOUT=120)
    assert exit_code == 0, out[-3000:]  # the block waits for each host by its PID: both succeeded
    # Each host's outcome is also in its tree: a failing host writes output/failure.
    for root in ("h1", "h2"):
        failure = tmp_path / root / "output" / "failure"
        assert not failure.exists(), f"{root}: {failure.read_text()}\n{out[-3000:]}"
    for rank, name in enumerate(("algo-1", "algo-2")):
        assert f"Host {name} (worker {rank} of 2): Epoch[1] Throughput:" in out, out[-3000:]
        assert f"worker on host {name} finished" in out, out[-3000:]
    # Only the primary validates and writes the model.
    assert len(re.findall(r"Epoch\[[01]\] Validation-accuracy=\d\.\d+", out)) == 2, out[-3000:]
    assert "Training finished; model files are in h1/model" in out
    written = sorted(p.name for p in (tmp_path / "h1" / "model").iterdir())
    assert re.fullmatch(r"image-classification-000[12]\.params", written[0]), written
    assert written[1:] == ["image-classification-symbol.json", "model-shapes.json"], written
    assert list((tmp_path / "h2" / "model").iterdir()) == []
