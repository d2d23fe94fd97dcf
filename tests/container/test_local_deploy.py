"""The SageMaker Python SDK v2's local mode serving the image, as a user deploys before paying for an
endpoint: `Model(...).deploy(1, "local")` and `predict()` of image bytes, `estimator.deploy()` after a
local `fit()`, and a local batch transform over a folder of images, whose `<file>.out` files are, byte
for byte, what `sagemaker-cv predict` writes in the same image. Needs docker compose.

Local mode publishes the server's port on the host from compose's `sagemaker-local` network; each
test takes a free port (`local.serving_port`) so that other work on the engine keeps 8080.
SDK v3's local serving is in test_local_deploy_v3.py.
"""

from __future__ import annotations

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
from deploy_helpers import (
    ACCEPTS,
    ALGORITHMS,
    ROLE,
    SDK_CONFIG,
    SIZES,
    check_answer,
    files_of,
    free_port,
    predict_in_image,
    request_images,
)

pytestmark = pytest.mark.container

#: the Accept of each algorithm's transform (None: the batch default, JSON Lines for classification)
TRANSFORM_ACCEPT = {
    "image-classification": None,
    "object-detection": None,
    "semantic-segmentation": "application/x-recordio-protobuf",
}


@pytest.fixture
def session(tmp_path, monkeypatch):
    sagemaker = pytest.importorskip(
        "sagemaker", reason="the SageMaker Python SDK (sagemaker<3) is not installed"
    )
    if not sagemaker.__version__.startswith("2."):
        pytest.skip(f"sagemaker {sagemaker.__version__}: this test drives SDK v2's local mode")
    if not has_compose():
        pytest.skip("no docker compose: install Debian's docker-compose package or the compose plugin")
    from sagemaker.local import LocalSession

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")  # needed, never used: no AWS call is made
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    network_existed = docker("network", "inspect", LOCAL_NETWORK).returncode == 0
    session = LocalSession(sagemaker_config=SDK_CONFIG)
    root = tmp_path / "local"
    root.mkdir()
    session.config = {"local": {"local_code": True, "container_root": str(root), "serving_port": free_port()}}
    yield session
    remove_local_mode_leftovers(tmp_path, network_existed)


def model_of(session, image: str, archive: Path):
    from sagemaker.model import Model
    from sagemaker.predictor import Predictor

    return Model(
        image_uri=image,
        model_data=f"file://{archive}",
        role=ROLE,
        predictor_cls=Predictor,
        sagemaker_session=session,
    )


def predict_each_format(predictor, algorithm: str, images: Path) -> None:
    for file, (height, width) in SIZES.items():
        for accept in ACCEPTS[algorithm]:
            body = predictor.predict((images / file).read_bytes(), initial_args={"Accept": accept})
            check_answer(algorithm, accept, body, height, width)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_model_deploys_locally_and_predicts(session, cpu_images, models, tmp_path, algorithm):
    from sagemaker.serializers import IdentitySerializer

    model = model_of(session, cpu_images[algorithm], models[algorithm].archive)
    start = time.monotonic()
    # wait=False: local mode's deploy returns once /ping answers 200; waiting would only poll
    # the local endpoint's status after 30 s.
    predictor = model.deploy(1, "local", serializer=IdentitySerializer("image/jpeg"), wait=False)
    record_seconds(f"SDK v2 Model.deploy(1, 'local') [{algorithm}]", time.monotonic() - start)
    try:
        predict_each_format(predictor, algorithm, request_images(tmp_path / "images"))
    finally:
        predictor.delete_endpoint()


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_local_batch_transform_writes_what_predict_writes(session, cpu_images, models, tmp_path, algorithm):
    image, archive, accept = cpu_images[algorithm], models[algorithm].archive, TRANSFORM_ACCEPT[algorithm]
    images = request_images(tmp_path / "images")
    out = tmp_path / "transform"
    # strategy: SDK v2's local mode takes the container's BatchStrategy ("SINGLE_RECORD", as the
    # API spells it) only to refuse it (its own names are SingleRecord, MultiRecord): given here,
    # the container's answer is not asked for.
    transformer = model_of(session, image, archive).transformer(
        1, "local", strategy="SingleRecord", accept=accept, output_path=f"file://{out}"
    )
    start = time.monotonic()
    # logs=False: the SDK would read the job's logs from CloudWatch
    transformer.transform(f"file://{images}", content_type="application/x-image", split_type=None, logs=False)
    record_seconds(f"SDK v2 local Transformer.transform [{algorithm}]", time.monotonic() - start)
    transformed = files_of(out)
    assert sorted(transformed) == sorted(f"{name}.out" for name in SIZES), sorted(transformed)
    default = {"image-classification": "application/jsonlines", "object-detection": "application/json"}
    for name, (height, width) in SIZES.items():
        check_answer(algorithm, accept or default[algorithm], transformed[f"{name}.out"], height, width)

    start = time.monotonic()
    run = predict_in_image(
        image, archive, images, tmp_path / "predict", *(["--accept", accept] if accept else [])
    )
    record_seconds(f"docker run predict [{algorithm}]", time.monotonic() - start)
    assert run.returncode == 0, run.stdout[-3000:]
    assert files_of(tmp_path / "predict") == transformed


def test_estimator_deploys_after_a_local_fit(session, cpu_image, tmp_path):
    from sagemaker.estimator import Estimator
    from sagemaker.inputs import TrainingInput

    tree = tmp_path / "ml"
    hp = make_tree(tree, epochs="1")
    data = tree / "input" / "data"
    estimator = Estimator(
        image_uri=cpu_image,
        role=ROLE,
        instance_count=1,
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
    assert Path(urlparse(estimator.model_data).path).is_file(), estimator.model_data
    # No serializer: the SDK's default sends the bytes as application/octet-stream, as a notebook
    # that calls predictor.predict(open("x.jpg", "rb").read()) after fit does.
    predictor = estimator.deploy(1, "local", wait=False)
    assert predictor.serializer.CONTENT_TYPE == "application/octet-stream"
    record_seconds("SDK v2 local fit + estimator.deploy", time.monotonic() - start)
    try:
        images = request_images(tmp_path / "images")
        body = predictor.predict((images / "street.jpg").read_bytes())
        probabilities = check_answer("image-classification", "application/json", body, *SIZES["street.jpg"])
        assert len(probabilities) == int(hp["num_classes"])
    finally:
        predictor.delete_endpoint()
