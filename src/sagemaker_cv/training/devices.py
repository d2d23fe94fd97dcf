"""The one place that decides where training runs: contexts, kvstore, rank and worker count.

`plan_devices` is pure; `probe_gpus` and `contexts` touch MXNet. Setting
SAGEMAKER_CV_CPU_DEVICES=N runs N CPU contexts, so the split-and-load and gradient aggregation
paths of multi-GPU training are exercised on machines without GPUs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class DevicePlan:
    kind: str  # "gpu" | "cpu"
    count: int  # devices on this host
    kvstore: str | None  # None: a single device needs no store
    num_workers: int = 1  # hosts taking part (one worker each)
    rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.num_workers > 1

    def per_device_batch(self, batch_size: int) -> list[int]:
        """How a host's batch is split: as even as possible, the first devices taking the remainder."""
        base, extra = divmod(batch_size, self.count)
        return [base + (1 if i < extra else 0) for i in range(self.count)]


def kvstore_name(num_hosts: int, num_devices: int, kind: str, requested: str | None) -> str | None:
    if num_hosts > 1:
        return requested or "dist_sync"
    if num_devices > 1:
        return "device" if kind == "gpu" else "local"
    return None


def plan_devices(
    num_gpus: int, *, cpu_devices: int = 1, num_hosts: int = 1, rank: int = 0, kv_store: str | None = None
) -> DevicePlan:
    kind, count = ("gpu", num_gpus) if num_gpus > 0 else ("cpu", max(1, cpu_devices))
    return DevicePlan(kind, count, kvstore_name(num_hosts, count, kind, kv_store), num_hosts, rank)


def fit_to_batch(plan: DevicePlan, batch_size: int | None) -> tuple[DevicePlan, str | None]:
    """Every device needs at least one sample of each batch (a device without one leaves its
    gradients stale, and Gluon refuses to step): with fewer samples than devices, train on as
    many devices as the batch has samples, and say so."""
    if batch_size is None or batch_size >= plan.count:
        return plan, None
    warning = (
        f"mini_batch_size={batch_size} is smaller than the {plan.count} {plan.kind} devices of this host: "
        f"training on {batch_size} of them (every device needs at least one sample per batch)"
    )
    return replace(
        plan, count=batch_size, kvstore=kvstore_name(plan.num_workers, batch_size, plan.kind, plan.kvstore)
    ), warning


def cpu_devices_from_env(environ: dict | None = None) -> int:
    from sagemaker_cv.contract.environment import JobSettings

    return JobSettings.from_env(environ).cpu_devices


def probe_gpus() -> int:
    """GPUs MXNet can see (CUDA_VISIBLE_DEVICES applies); 0 with the CPU build or no driver."""
    import mxnet as mx

    try:
        return mx.context.num_gpus()
    except Exception:  # noqa: BLE001 - the GPU build raises when no driver is present
        return 0


def contexts(plan: DevicePlan) -> list:
    import mxnet as mx

    make = mx.gpu if plan.kind == "gpu" else (lambda i: mx.cpu(i))
    return [make(i) for i in range(plan.count)]
