"""What an object-detection job needs to train, checked before anything is built: the memory of
one training step on a CPU host, from the batch and image_shape (the bound on image_shape itself,
2048, is the schema's). Pure but for the memory probe.

Measured on MXNet 1.9.1 (CPU, float32; peak RSS of two SGD steps of the SSD training network
with GluonCV's targets and loss, batch 1-2, image_shape 300-1024): about 0.55 GB for the
network and its optimizer, plus per input pixel of each image of the batch 2.2 KB (ResNet-50
base) or 2.6 KB (VGG-16), so a batch of 32 at 512 needs about 22 GB with VGG-16. The estimate
uses these figures, so a refused job would have failed.
"""

from __future__ import annotations

from sagemaker_cv.training.devices import DevicePlan
from sagemaker_cv.training.memory import HostMemory, fit, host_memory

NETWORK_BYTES = int(0.55 * (1 << 30))
BYTES_PER_PIXEL = {"resnet-50": 2300, "vgg-16": 2700}


def training_bytes(base_network: str, image_shape: int, batch: int, devices: int = 1) -> int:
    """Estimated peak memory of one training step of `batch` images on `devices` CPU contexts
    (each holds its own copy of the network)."""
    return NETWORK_BYTES * devices + batch * image_shape**2 * BYTES_PER_PIXEL[base_network]


def problems(hp, plan: DevicePlan, memory: HostMemory | None = None) -> tuple[list[str], list[str]]:
    """(problems, warnings) of a job's hyperparameters on this host's devices. GPU memory is not
    estimated (MXNet's out-of-memory error is reported as a ClientError)."""
    if plan.kind != "cpu":
        return [], []
    needed = training_bytes(hp.base_network, hp.image_shape, hp.mini_batch_size, plan.count)
    what = f"base_network={hp.base_network} at image_shape={hp.image_shape} with mini_batch_size={hp.mini_batch_size}"
    return fit(needed, what, "lower mini_batch_size or image_shape", memory or host_memory())
