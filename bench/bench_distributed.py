"""Images/s of one worker against two over MXNet's parameter server on loopback, and the
parameter server's cost per step.

Three runs of the same ResNet training step on synthetic images (no data loading, so only compute
and weight exchange are measured), each in fresh processes started the way the launcher starts
them (sagemaker_cv.distributed.dmlc_env):

    local   one worker, no kvstore: the single-host baseline
    ps1     one worker + one server + scheduler, dist_sync: the same work plus a push and pull
            of every weight per step, so (ps1 - local) / local is the parameter-server overhead
    ps2     two workers + two servers + scheduler, dist_sync: a two-host job on one machine

    python bench/bench_distributed.py [--num-layers 18] [--image-size 32] [--batch 8] [--steps 40]

On a machine with fewer cores than workers x threads the two workers share the cores, so ps2
measures contention plus communication, not the scaling two real hosts would give.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time

from sagemaker_cv.distributed import plan as distributed


def worker(args: argparse.Namespace) -> None:
    import mxnet as mx
    from mxnet import autograd, gluon

    from sagemaker_cv.algorithms.classification.network import classification_network

    ctx = [mx.cpu()]
    net = classification_network(args.num_layers, 10, 3, False, ctx)
    net.hybridize(static_alloc=True, static_shape=True)
    kvstore = None if args.kvstore == "none" else args.kvstore
    trainer = gluon.Trainer(
        net.collect_params(), "sgd", {"learning_rate": 0.01, "momentum": 0.9}, kvstore=kvstore
    )
    workers = int(os.environ.get("DMLC_NUM_WORKER", "1"))
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    data = mx.nd.random.uniform(0, 255, (args.batch, 3, args.image_size, args.image_size))
    label = mx.nd.array([i % 10 for i in range(args.batch)])

    def step():
        with autograd.record():
            loss = loss_fn(net(data), label)
        loss.backward()
        trainer.step(args.batch * workers)
        loss.wait_to_read()
        for p in net.collect_params().values():
            p.data().wait_to_read()

    for _ in range(5):  # warm-up: kvstore init, memory planning
        step()
    tic = time.perf_counter()
    for _ in range(args.steps):
        step()
    seconds = (time.perf_counter() - tic) / args.steps
    print(json.dumps({"seconds_per_step": seconds, "images_per_second": args.batch / seconds}), flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(mode: str, args: argparse.Namespace) -> list[dict]:
    """Start every process of one configuration; return each worker's measurement."""
    hosts = 2 if mode == "ps2" else 1
    command = [sys.executable, __file__, "--worker", "--num-layers", str(args.num_layers)]
    command += ["--image-size", str(args.image_size), "--batch", str(args.batch), "--steps", str(args.steps)]
    env = dict(os.environ)
    if mode == "local":
        proc = subprocess.run(
            [*command, "--kvstore", "none"], env=env, capture_output=True, text=True, check=True
        )
        return [json.loads(proc.stdout.strip().splitlines()[-1])]
    ips, port = ["127.0.0.1"] * hosts, free_port()
    roles = [("scheduler", None)] + [("server", None)] * hosts
    started = []
    try:
        for role, _ in roles:
            role_env = {**env, **distributed.dmlc_env(role, ips, port, node_host="127.0.0.1")}
            started.append(subprocess.Popen([sys.executable, "-c", "import mxnet"], env=role_env))
        workers = []
        for _ in range(hosts):
            role_env = {**env, **distributed.dmlc_env("worker", ips, port, node_host="127.0.0.1")}
            workers.append(
                subprocess.Popen(
                    [*command, "--kvstore", "dist_sync"], env=role_env, stdout=subprocess.PIPE, text=True
                )
            )
        started += workers
        results = []
        for proc in workers:
            out, _ = proc.communicate(timeout=600)
            results.append(json.loads(out.strip().splitlines()[-1]))
        for proc in started:
            proc.wait(timeout=60)
        return results
    finally:
        for proc in started:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--num-layers", type=int, default=18)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--kvstore", default="none", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    print(
        f"ResNet-{args.num_layers}, batch {args.batch} per worker, {args.image_size} px, {args.steps} steps, "
        f"{os.cpu_count()} cores"
    )
    results = {mode: run(mode, args) for mode in ("local", "ps1", "ps2")}
    local = results["local"][0]
    ps1 = results["ps1"][0]
    ps2_total = sum(r["images_per_second"] for r in results["ps2"])
    for mode, rows in results.items():
        for i, r in enumerate(rows):
            print(
                f"  {mode:5s} worker {i}: {r['seconds_per_step'] * 1000:7.1f} ms/step "
                f"{r['images_per_second']:8.1f} images/s"
            )
    overhead = (ps1["seconds_per_step"] - local["seconds_per_step"]) / local["seconds_per_step"]
    print(f"parameter-server overhead per step (ps1 / local - 1): {overhead:+.2f}")
    print(
        f"images/s, 2 workers over the parameter server / 1 worker without it: {ps2_total / local['images_per_second']:.2f}"
    )
    print(
        f"images/s, 2 workers / 1 worker, both over the parameter server: {ps2_total / ps1['images_per_second']:.2f}"
    )


if __name__ == "__main__":
    main()
