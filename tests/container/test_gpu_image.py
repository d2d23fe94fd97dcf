"""The GPU flavor, proven without a GPU: every library mxnet-cu112 loads must be in the image,
except the driver's libcuda.so.1, which the NVIDIA container runtime mounts from the host."""

from __future__ import annotations

import json
import re

import pytest
from container_helpers import docker, make_tree

pytestmark = [pytest.mark.container, pytest.mark.gpu_image]

# The CUDA libraries libmxnet.so (mxnet-cu112 1.9.1) links, by soname (readelf -d).
CUDA_SONAMES = (
    "libcudart.so.11.0",
    "libcublas.so.11",
    "libcublasLt.so.11",
    "libcufft.so.10",
    "libcurand.so.10",
    "libcusolver.so.11",
    "libnvrtc.so.11.2",
    "libnvToolsExt.so.1",
    "libcudnn.so.8",
    "libnccl.so.2",
)

# ldd of libmxnet.so, then of every library the nvidia wheels ship (cuDNN dlopen()s its
# sub-libraries, e.g. libcudnn_ops_infer.so.8, so ldd of libmxnet.so alone would not reach them).
LDD_ALL = r"""
site=$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
for f in "$site/mxnet/libmxnet.so" $(find "$site/nvidia" -name 'lib*.so*' -type f | sort); do
  echo "== $f"; ldd "$f"
done
"""


def parse_ldd(text: str) -> dict[str, dict[str, str]]:
    """{library file: {needed soname: resolved path or 'not found'}}"""
    result: dict[str, dict[str, str]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("== "):
            current = line[3:].strip()
            result[current] = {}
            continue
        m = re.match(r"\s+(\S+) => (not found|\S+)", line)
        if m and current:
            result[current][m.group(1)] = m.group(2)
    return result


def test_every_library_resolves_except_the_driver(gpu_image):
    result = docker("run", "--rm", "--network", "none", "--entrypoint", "sh", gpu_image, "-c", LDD_ALL)
    assert result.returncode == 0, result.stdout[-4000:]
    libs = parse_ldd(result.stdout)
    libmxnet = next(lib for lib in libs if lib.endswith("/mxnet/libmxnet.so"))
    assert len(libs) > 10, f"expected libmxnet.so and the nvidia wheels' libraries, got {list(libs)}"

    missing = {(lib, so) for lib, needs in libs.items() for so, path in needs.items() if path == "not found"}
    assert {so for _, so in missing} == {"libcuda.so.1"}, sorted(missing)
    assert libs[libmxnet]["libcuda.so.1"] == "not found"
    for soname in CUDA_SONAMES:
        path = libs[libmxnet].get(soname)
        assert path and "/site-packages/nvidia/" in path, f"{soname} -> {path}"
    cudnn_parts = [lib for lib in libs if re.search(r"/libcudnn_\w+\.so\.8", lib)]
    assert cudnn_parts, "cuDNN's sub-libraries (libcudnn_*_infer/train.so.8) are missing"


def test_import_mxnet_fails_only_for_the_missing_driver(gpu_image):
    result = docker(
        "run", "--rm", "--network", "none", "--entrypoint", "python", gpu_image, "-c", "import mxnet"
    )
    assert result.returncode != 0
    last = result.stdout.strip().splitlines()[-1]
    assert last == "OSError: libcuda.so.1: cannot open shared object file: No such file or directory", (
        result.stdout
    )


def test_nvidia_runtime_settings(gpu_image):
    config = json.loads(
        docker("image", "inspect", "--format", "{{json .Config}}", gpu_image, check=True).stdout
    )
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["NVIDIA_VISIBLE_DEVICES"] == "all"
    assert env["NVIDIA_DRIVER_CAPABILITIES"] == "compute,utility"
    assert env["SAGEMAKER_CV_ALGORITHM"] == "image-classification"
    assert config["Entrypoint"] == ["sagemaker-cv"]


def test_without_a_gpu_the_job_fails_naming_the_driver(gpu_image, tmp_path):
    # A GPU image started on a CPU instance must say why it cannot train.
    tree = tmp_path / "ml"
    make_tree(tree)
    result = docker(
        "run", "--rm", "--network", "none", "-v", f"{tree}:/opt/ml", gpu_image, "train", timeout=300
    )
    assert result.returncode != 0
    reason = (tree / "output" / "failure").read_text()
    assert "libcuda.so.1" in reason, reason
