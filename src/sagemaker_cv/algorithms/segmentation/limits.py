"""What a semantic-segmentation job needs to train, checked before anything is built: the memory
of one training step on a CPU host, from mini_batch_size and crop_size (the bounds on crop_size
and base_size themselves, 2048, are the schema's). Pure but for the memory probe.

Measured on MXNet 1.9.1 (CPU, float32, ResNet-50 backbone; peak RSS of two SGD steps with the
auxiliary loss, batch 1-2, crops of 480-960): about 0.7 GB for the network and its optimizer,
plus per pixel of each crop of the batch 5.4 KB (fcn), 6.6 KB (psp) and 6.6 KB (deeplab, whose
cost per pixel grows with the crop: 11-16 KB at 480-720 for one image). ResNet-101 costs more.
The estimate takes the lower figures, so a refused job would have failed.

SyncBatchNorm needs GPUs. On several CPU contexts (SAGEMAKER_CV_CPU_DEVICES) MXNet 1.9 can
deadlock it: a device waiting inside SyncBatchNorm for the others blocks its engine thread with
its later operators queued, and CPU contexts are not independent the way GPUs are: they share one
pool of temporary-memory slots (MXNET_CPU_TEMP_COPY, default 4, handed out round robin as
operators are pushed), and device 0's thread also runs the kvstore's updates and copies. When
another device's earlier operator waits on one of those, neither moves. Measured on two CPU
contexts, FCN ResNet-50 at crop 20: with 4 slots 2 of 2 jobs of 30 steps hung (and a one-step job
in CI once); with 1024 slots a 30-step job hung in its third epoch at 13.8 GB (every slot keeps
the largest buffer it served); with 4096 one ran out of 23 GB. A 20-layer toy hung in 5 of 5 runs
with 4 slots and in none of 6 with 4096, so no slot count is both safe and affordable: such a job
is refused. GPUs have their own slots and threads; GluonCV trains SyncBatchNorm on them the same
way (a thread per device).
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


def syncbn_problem(hp, plan: DevicePlan) -> str | None:
    """Why SyncBatchNorm cannot run on this host's contexts, or None."""
    if not hp.syncbn or plan.kind != "cpu" or plan.count < 2:
        return None
    return (
        f"syncbn=True on {plan.count} CPU contexts (SAGEMAKER_CV_CPU_DEVICES={plan.count}) can deadlock in MXNet: "
        "SyncBatchNorm waits for every device while CPU contexts share temporary memory and threads; "
        "it synchronises GPUs only. Set syncbn=False or SAGEMAKER_CV_CPU_DEVICES=1"
    )


def problems(hp, plan: DevicePlan, memory: HostMemory | None = None) -> tuple[list[str], list[str]]:
    """(problems, warnings) of a job's hyperparameters on this host's devices: CPU memory, and
    SyncBatchNorm on CPU contexts."""
    if plan.kind != "cpu":
        return [], []
    syncbn = syncbn_problem(hp, plan)
    needed = training_bytes(hp.algorithm, hp.crop_size, hp.mini_batch_size, plan.count)
    what = f"algorithm={hp.algorithm} with crop_size={hp.crop_size} and mini_batch_size={hp.mini_batch_size}"
    found, warnings = fit(needed, what, "lower mini_batch_size or crop_size", memory or host_memory())
    return ([syncbn] if syncbn else []) + found, warnings
