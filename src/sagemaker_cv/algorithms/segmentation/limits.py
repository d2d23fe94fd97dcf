"""What a semantic-segmentation job needs to train, checked before anything is built: the memory
of one training step on a CPU host, from mini_batch_size and crop_size (the bounds on crop_size
and base_size themselves, 2048, are the schema's). Pure but for the memory probe.

Measured on MXNet 1.9.1 (CPU, float32, ResNet-50 backbone; peak RSS of two SGD steps with the
auxiliary loss, batch 1-2, crops of 480-960): about 0.7 GB for the network and its optimizer,
plus per pixel of each crop of the batch 5.4 KB (fcn), 6.6 KB (psp) and 6.6 KB (deeplab, whose
cost per pixel grows with the crop: 11-16 KB at 480-720 for one image). ResNet-101 costs more.
The estimate takes the lower figures, so a refused job would have failed.
"""

from __future__ import annotations

from sagemaker_cv.algorithms.segmentation.transforms import round_up8
from sagemaker_cv.training.devices import DevicePlan
from sagemaker_cv.training.memory import HostMemory, fit, host_memory

NETWORK_BYTES = int(0.7 * (1 << 30))
BYTES_PER_PIXEL = {"fcn": 5300, "psp": 6600, "deeplab": 6600}


def training_bytes(algorithm: str, crop_size: int, batch: int, devices: int = 1) -> int:
    """Estimated peak memory of one training step of `batch` crops on `devices` CPU contexts."""
    return NETWORK_BYTES * devices + batch * round_up8(crop_size) ** 2 * BYTES_PER_PIXEL[algorithm]


def problems(hp, plan: DevicePlan, memory: HostMemory | None = None) -> tuple[list[str], list[str]]:
    """(problems, warnings) of a job's hyperparameters on this host's devices (CPU memory only)."""
    if plan.kind != "cpu":
        return [], []
    needed = training_bytes(hp.algorithm, hp.crop_size, hp.mini_batch_size, plan.count)
    what = f"algorithm={hp.algorithm} with crop_size={hp.crop_size} and mini_batch_size={hp.mini_batch_size}"
    return fit(needed, what, "lower mini_batch_size or crop_size", memory or host_memory())
