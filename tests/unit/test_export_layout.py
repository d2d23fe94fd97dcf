"""materialize leaves every parameter in MXNet's default array layout.

An inference pass on a CPU lets oneDNN rewrite convolution weights in place into its own blocked
layout, and the distributed kvstore cannot push such an array (the initialising push fails inside
the engine, silently, and the parameter servers later abort with `init N first`)."""

from __future__ import annotations

import mxnet as mx
import numpy as np
from mxnet import autograd
from mxnet.gluon import nn

from sagemaker_cv.training.export import materialize


def default_layout(array) -> bool:
    """Whether MXNet can hand out the array's memory as is (it refuses arrays in oneDNN's layout)."""
    try:
        mx.nd.to_dlpack_for_read(array)
    except mx.base.MXNetError:
        return False
    return True


def small_net():
    net = nn.HybridSequential()
    net.add(nn.Conv2D(16, 3, padding=1), nn.BatchNorm(), nn.Activation("relu"), nn.Conv2D(8, 3), nn.Dense(4))
    net.initialize(mx.init.Xavier())
    return net


def test_materialize_leaves_weights_in_the_default_layout():
    net = small_net()
    materialize(net, (3, 16, 16), mx.cpu())
    mx.nd.waitall()
    params = net.collect_params()
    assert [name for name, p in params.items() if not default_layout(p.data())] == []


def test_materialize_keeps_values_and_gradients():
    mx.random.seed(7)
    reference = small_net()
    reference(mx.nd.zeros((1, 3, 16, 16)))
    mx.random.seed(7)
    net = small_net()
    materialize(net, (3, 16, 16), mx.cpu())
    for (name, theirs), ours in zip(reference.collect_params().items(), net.collect_params().values()):
        np.testing.assert_array_equal(theirs.data().asnumpy(), ours.data().asnumpy(), err_msg=name)
    # The fresh arrays are still the ones autograd writes gradients for.
    x = mx.nd.random.uniform(shape=(2, 3, 16, 16))
    with autograd.record():
        loss = net(x).sum()
    loss.backward()
    conv = net[0].weight
    assert conv.grad().abs().sum().asscalar() > 0


def test_a_symbol_batchnorm_starts_with_batchnorms_running_statistics():
    """GluonCV's SSD FeatureExpander is a SymbolBlock whose BatchNorm statistics (`moving_*`) have
    no initializer of their own: the default one drew them at random, variances below zero."""
    from sagemaker_cv.training.export import initialize_missing

    data = mx.sym.var("data")
    out = mx.sym.BatchNorm(mx.sym.Convolution(data, num_filter=8, kernel=(1, 1), name="c"), name="bn")
    block = nn.SymbolBlock(out, data)
    initialize_missing(block, mx.init.Uniform(0.07), mx.cpu())
    block(mx.nd.zeros((1, 3, 4, 4)))  # shapes are known at the first forward
    params = {name: p.data().asnumpy() for name, p in block.collect_params().items()}
    assert np.all(params["bn_moving_mean"] == 0) and np.all(params["bn_moving_var"] == 1)
    assert np.abs(params["c_weight"]).max() <= 0.07 and params["c_weight"].std() > 0  # the rest: `init`
