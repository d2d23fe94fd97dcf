"""The SageMaker Python SDK v2's local mode against the image: what users run before paying for
a training job. Needs docker compose (`docker compose` or Debian's `docker-compose` package).
SDK v3's local mode is in test_local_mode_v3.py."""

from __future__ import annotations

import tarfile
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
from container_helpers import (
    LOCAL_NETWORK,
    docker,
    has_compose,
    make_tree,
    record_seconds,
    remove_local_mode_leftovers,
)

pytestmark = pytest.mark.container


@pytest.fixture
def local_session(tmp_path, monkeypatch):
    sagemaker = pytest.importorskip(
        "sagemaker", reason="the SageMaker Python SDK (sagemaker<3) is not installed"
    )
    if not sagemaker.__version__.startswith("2."):
        pytest.skip(f"sagemaker {sagemaker.__version__}: this test drives SDK v2's local mode")
    if not has_compose():
        pytest.skip("no docker compose: install Debian's docker-compose package or the compose plugin")
    from sagemaker.local import LocalSession

    # Local mode needs a region; no AWS call is made (file:// data and output, a local image).
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    # No EC2 metadata lookups (each would wait for a timeout on a machine outside EC2).
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    network_existed = docker("network", "inspect", LOCAL_NETWORK).returncode == 0
    session = LocalSession()
    session.config = {"local": {"local_code": True, "container_root": str(tmp_path)}}
    yield session
    remove_local_mode_leftovers(tmp_path, network_existed)


def _fit(session, image: str, tmp_path: Path, instance_count: int, **extra_hp: str) -> Path:
    from sagemaker.estimator import Estimator
    from sagemaker.inputs import TrainingInput

    tree = tmp_path / "ml"
    hp = make_tree(tree, **extra_hp)
    data = tree / "input" / "data"
    estimator = Estimator(
        image_uri=image,
        role="arn:aws:iam::123456789012:role/SageMakerRole",  # local mode never assumes it
        instance_count=instance_count,
        instance_type="local",
        output_path=f"file://{tmp_path / 'output'}",
        hyperparameters=hp,
        sagemaker_session=session,
    )
    start = time.monotonic()
    estimator.fit(
        {
            "train": TrainingInput(f"file://{data / 'train'}", content_type="application/x-recordio"),
            "validation": TrainingInput(
                f"file://{data / 'validation'}", content_type="application/x-recordio"
            ),
        }
    )
    record_seconds(f"SDK v2 local mode fit, instance_count={instance_count}", time.monotonic() - start)
    return Path(urlparse(estimator.model_data).path)


def _members(archive: Path) -> list[str]:
    assert archive.name == "model.tar.gz" and archive.is_file(), archive
    with tarfile.open(archive) as tar:
        return sorted(m.name for m in tar.getmembers() if m.isfile())


def test_estimator_fits_in_local_mode(local_session, cpu_image, tmp_path):
    names = _members(_fit(local_session, cpu_image, tmp_path, 1))
    assert "image-classification-symbol.json" in names, names
    assert "model-shapes.json" in names, names
    assert any(n.startswith("image-classification-") and n.endswith(".params") for n in names), names


def test_two_instances_train_together_in_local_mode(local_session, cpu_image, tmp_path):
    # Two containers on compose's network, as two SageMaker hosts: parameter-server training
    # across them, and the model written once (by hosts[0]) into the shared model directory.
    names = _members(_fit(local_session, cpu_image, tmp_path, 2, kv_store="dist_sync"))
    assert "image-classification-symbol.json" in names, names
    assert any(n.startswith("image-classification-") and n.endswith(".params") for n in names), names
