"""A model served by the SageMaker Python SDK v3's local mode, as a user writes it: a local endpoint
and a local batch transform of a folder of images. test_local_deploy_v3.py runs this file with
the SDK v3 environment's Python (one environment cannot hold SDK v2 and v3).

SDK v3's local serving of a bring-your-own image is sagemaker-core's local session (the one
ModelBuilder's LocalEndpoint wraps): `create_model`, `endpoint_from_production_variants` and the
runtime client's `invoke_endpoint`, and `sagemaker.core.transformer.Transformer`; ModelBuilder's
own LOCAL_CONTAINER mode runs only the model servers it knows (TorchServe, DJL, Triton, ...) with
its own command and mounts (docs/serving.md).

    python sdk3_local_deploy.py --image IMAGE --model-data model.tar.gz --root DIR --port N
        --images DIR --output DIR [--accept TYPE]

Writes OUTPUT/endpoint/<file>.out (the endpoint's answer to each image, with --accept) and
OUTPUT/transform/<file>.out (the transform job's).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"  # local mode never assumes it
#: SDK telemetry off: local mode would try to reach AWS with every call
SDK_CONFIG = {"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--image", required=True)
    parser.add_argument("--model-data", type=Path, required=True, help="a model.tar.gz")
    parser.add_argument("--root", type=Path, required=True, help="local.container_root")
    parser.add_argument("--port", type=int, required=True, help="local.serving_port")
    parser.add_argument("--images", type=Path, required=True)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--accept")
    args = parser.parse_args()

    from sagemaker.core.local import LocalSession
    from sagemaker.core.transformer import Transformer

    session = LocalSession(sagemaker_config=SDK_CONFIG)
    session.config = {
        "local": {"local_code": True, "container_root": str(args.root), "serving_port": args.port}
    }
    name = "sagemaker-cv-local"
    session.create_model(
        name,
        ROLE,
        container_defs={"Image": args.image, "ModelDataUrl": f"file://{args.model_data}", "Environment": {}},
    )
    start = time.monotonic()
    variant = {
        "VariantName": "AllTraffic",
        "ModelName": name,
        "InitialInstanceCount": 1,
        "InstanceType": "local",
    }
    # wait=False: the local endpoint is in service once create_endpoint returns (it waits for /ping)
    session.endpoint_from_production_variants(name, [variant], wait=False)
    print(f"endpoint in service after {time.monotonic() - start:.1f} s", flush=True)
    try:
        out = args.output / "endpoint"
        out.mkdir(parents=True)
        for image in sorted(args.images.iterdir()):
            extra = {"Accept": args.accept} if args.accept else {}
            reply = session.sagemaker_runtime_client.invoke_endpoint(
                EndpointName=name, Body=image.read_bytes(), ContentType="application/x-image", **extra
            )
            (out / f"{image.name}.out").write_bytes(reply["Body"].read())
    finally:
        session.delete_endpoint(name)

    start = time.monotonic()
    # strategy: as with SDK v2, local mode cannot take the container's "SINGLE_RECORD"; a job name
    # base: without one the SDK looks the model up in AWS to name the job.
    transformer = Transformer(
        name,
        1,
        "local",
        strategy="SingleRecord",
        accept=args.accept,
        output_path=f"file://{args.output / 'transform'}",
        base_transform_job_name=name,
        sagemaker_session=session,
    )
    transformer.transform(
        f"file://{args.images}", content_type="application/x-image", split_type=None, logs=False
    )
    print(f"transform done after {time.monotonic() - start:.1f} s", flush=True)


if __name__ == "__main__":
    main()
