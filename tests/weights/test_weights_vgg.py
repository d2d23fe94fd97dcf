"""SSD's VGG-16 base from torchvision's VGG-16 (as timm republishes it, and as torchvision saves it).

The convolutions must compute what the source computes; fc6/fc7 have no counterpart in the source
network, so GluonCV's dilated fc6 and fc7 are checked against an independent numpy computation of
the SSD paper's decimation, written with the original fc6/fc7 weights and explicit tap positions.
"""

from __future__ import annotations

import mxnet as mx
import numpy as np
import pytest
from gluoncv.model_zoo.ssd.vgg_atrous import get_vgg_atrous_extractor
from weights_helpers import TOLERANCE, record

from sagemaker_cv.tools.weights import import_checkpoint
from sagemaker_cv.tools.weights.checkpoint import Checkpoint
from sagemaker_cv.training.pretrained import pretrained_file


def fc7_by_decimation(conv5_3: np.ndarray, fc6: np.ndarray, b6: np.ndarray, fc7, b7) -> np.ndarray:
    """SSD's fc7 output for one image from VGG-16's conv5_3 output and its original fc6 (4096, 512,
    7, 7) and fc7 (4096, 4096) weights: pool5 with a 3x3 window and stride 1 (SSD keeps the
    resolution), then fc6 reduced to output channels 0, 4, 8, ... and kernel taps 0, 3, 6 in each
    direction, which at stride 1 sit 6 pixels apart (2 x 3), then fc7 reduced to every 4th output
    and input channel; ReLU after each."""
    c, h, w = conv5_3.shape
    padded = np.pad(conv5_3, ((0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    pool5 = np.max([padded[:, i : i + h, j : j + w] for i in range(3) for j in range(3)], axis=0)
    outputs = range(0, 4096, 4)
    reach = np.pad(pool5, ((0, 0), (6, 6), (6, 6)))  # zero padding of the dilated convolution
    out6 = b6[outputs][:, None, None].astype(np.float64)
    for i, tap_y in enumerate((0, 3, 6)):
        for j, tap_x in enumerate((0, 3, 6)):
            weights = fc6[outputs, :, tap_y, tap_x].astype(np.float64)  # (1024, 512)
            out6 = out6 + np.einsum("oc,chw->ohw", weights, reach[:, 6 * i : 6 * i + h, 6 * j : 6 * j + w])
    out6 = np.maximum(out6, 0)
    weights7 = fc7[np.ix_(outputs, outputs)].astype(np.float64)  # (1024, 1024)
    return np.maximum(np.einsum("ok,khw->ohw", weights7, out6) + b7[outputs][:, None, None], 0)


@pytest.mark.parametrize(
    "library,filename,fc6_name,fc7_name",
    [
        # timm/vgg16.tv_in1k: fc6/fc7 stored as convolutions
        ("timm", "vgg16.safetensors", "pre_logits.fc1", "pre_logits.fc2"),
        # torchvision's own vgg16 .pth: fc6/fc7 as linear layers over the flattened pool5
        ("torchvision", "vgg16.pth", "classifier.0", "classifier.3"),
    ],
)
def test_ssd_vgg16_base(library, filename, fc6_name, fc7_name, reference, tmp_path, monkeypatch):
    ref = reference(library, "vgg16", (filename.split(".")[-1],))
    monkeypatch.setenv("MXNET_HOME", str(tmp_path / "home"))
    written = import_checkpoint(ref / filename, "vgg16_atrous", tmp_path / "home" / "models")
    assert pretrained_file("vgg16_atrous") == written

    # As ssd_300_vgg16_atrous loads its base: SSD's extra layers keep their initialiser.
    net = get_vgg_atrous_extractor(16, 300)
    net.initialize()
    net.load_parameters(str(written), allow_missing=True)
    x = np.load(ref / "input.npy")
    norm4, fc7 = (o.asnumpy()[0] for o in net(mx.nd.array(x))[:2])
    outputs = np.load(ref / "outputs.npz")

    # conv1_1 .. conv4_3: SSD's L2 normalisation (initial scale 20) of the source's conv4_3
    conv4_3 = outputs["conv4_3"][0].astype(np.float64)
    expected4 = conv4_3 / np.sqrt((conv4_3**2).sum(axis=0, keepdims=True) + 1e-5) * 20
    assert record(f"{library} vgg16 -> vgg16_atrous conv4_3", expected4, norm4) < TOLERANCE

    source = Checkpoint(ref / filename).arrays(
        [f"{fc6_name}.weight", f"{fc6_name}.bias", f"{fc7_name}.weight", f"{fc7_name}.bias"]
    )
    # torchvision flattens pool5 (512, 7, 7) in C order before fc6
    fc6 = source[f"{fc6_name}.weight"].reshape(4096, 512, 7, 7)
    fc7_weights = source[f"{fc7_name}.weight"].reshape(4096, 4096)
    expected7 = fc7_by_decimation(
        outputs["conv5_3"][0], fc6, source[f"{fc6_name}.bias"], fc7_weights, source[f"{fc7_name}.bias"]
    )
    assert np.abs(expected7).max() > 0.1  # a comparison of sizeable numbers, not of zeros
    assert record(f"{library} vgg16 -> vgg16_atrous fc7 (numpy)", expected7, fc7) < TOLERANCE
