from __future__ import annotations

import pytest

from sagemaker_cv import algorithms
from sagemaker_cv.contract.errors import ClientError
from sagemaker_cv.training.devices import cpu_devices_from_env, fit_to_batch, kvstore_name, plan_devices
from sagemaker_cv.training.optim import optimizer_params, steps_per_epoch


def test_plans():
    assert plan_devices(0) == plan_devices(0, cpu_devices=1)
    one_gpu = plan_devices(1)
    assert (one_gpu.kind, one_gpu.count, one_gpu.kvstore) == ("gpu", 1, None)
    four = plan_devices(4)
    assert (four.kind, four.count, four.kvstore) == ("gpu", 4, "device")
    cpus = plan_devices(0, cpu_devices=3)
    assert (cpus.kind, cpus.count, cpus.kvstore) == ("cpu", 3, "local")
    multi = plan_devices(2, num_hosts=3, rank=2)
    assert (multi.kvstore, multi.num_workers, multi.rank, multi.distributed) == ("dist_sync", 3, 2, True)
    assert plan_devices(0, num_hosts=2, kv_store="dist_async").kvstore == "dist_async"
    assert kvstore_name(1, 1, "gpu", "dist_sync") is None


def test_batch_split_is_documented_rounding():
    assert plan_devices(4).per_device_batch(32) == [8, 8, 8, 8]
    assert plan_devices(3).per_device_batch(32) == [11, 11, 10]


def test_cpu_devices_env():
    assert cpu_devices_from_env({}) == 1
    assert cpu_devices_from_env({"SAGEMAKER_CV_CPU_DEVICES": "3"}) == 3
    with pytest.raises(ClientError, match="SAGEMAKER_CV_CPU_DEVICES='x'"):
        cpu_devices_from_env({"SAGEMAKER_CV_CPU_DEVICES": "x"})


def test_steps_per_epoch_counts_global_updates():
    assert steps_per_epoch(100, 32) == 4
    assert steps_per_epoch(100, 32, num_workers=2) == 2
    assert steps_per_epoch(1, 32) == 1


def test_step_schedule_is_inside_the_optimizer():
    import mxnet as mx

    from sagemaker_cv.training.optim import step_schedule

    schema = algorithms.get("image-classification").schema
    hp, _ = schema.parse({"num_classes": "2", "num_training_samples": "10", "learning_rate": "0.1"})
    schedule = step_schedule(0.1, (2, 4), 0.5, iters_per_epoch=10)
    opt = mx.optimizer.create("sgd", **optimizer_params(schema, hp, lr_scheduler=schedule))
    assert opt.lr_scheduler(10) == pytest.approx(0.1)
    assert opt.lr_scheduler(21) == pytest.approx(0.05)
    assert opt.lr_scheduler(41) == pytest.approx(0.025)
    assert step_schedule(0.1, (), 0.5, 10) is None


def test_a_batch_smaller_than_the_devices_trains_on_fewer_devices():
    plan, warning = fit_to_batch(plan_devices(8), 4)
    assert (plan.count, plan.kvstore) == (4, "device")
    assert warning == (
        "mini_batch_size=4 is smaller than the 8 gpu devices of this host: training on 4 of them "
        "(every device needs at least one sample per batch)"
    )
    assert fit_to_batch(plan_devices(0, cpu_devices=4), 1)[0].kvstore is None
    assert fit_to_batch(plan_devices(2, num_hosts=2), 1)[0].kvstore == "dist_sync"
    assert fit_to_batch(plan_devices(4), 4) == (plan_devices(4), None)


@pytest.mark.parametrize("value", ["abc", "٣", "0", "1.5", "-2", "99999999"])
def test_cpu_devices_env_refuses_what_is_no_device_count(value):
    with pytest.raises(ClientError, match="SAGEMAKER_CV_CPU_DEVICES"):
        cpu_devices_from_env({"SAGEMAKER_CV_CPU_DEVICES": value})


@pytest.mark.parametrize("value", ["abc", "0", "٣", "-1", ""])
def test_log_interval_env_refuses_what_is_no_batch_count(value):
    from sagemaker_cv.training.gluon_task import log_interval_from_env

    with pytest.raises(ClientError, match="SAGEMAKER_CV_LOG_INTERVAL"):
        log_interval_from_env({"SAGEMAKER_CV_LOG_INTERVAL": value})
    assert log_interval_from_env({}) == 20
