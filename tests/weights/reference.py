"""Run by the PyTorch test environment (.venv-weights), not by pytest: build a source model in its
own framework with random weights and write what the converter and the comparison need.

    python reference.py LIBRARY MODEL OUT_DIR FORMAT[,FORMAT]

LIBRARY is timm or torchvision, MODEL its model name (resnet50s, vgg16, ...), FORMAT safetensors
(as the Hugging Face hub publishes weights) or pth (torch.save). OUT_DIR receives:
  MODEL.safetensors, MODEL.pth   the state dict in each format asked for
  input.npy           a random ImageNet-normalised batch, NCHW float32
  outputs.npz         ResNets: the logits; VGG: conv4_3 and conv5_3 after their ReLU
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch


def importable_torchvision() -> None:
    """PyPI's torchvision wheel is built for CUDA torch: next to the CPU torch its C++ operators do
    not load, and torchvision 0.28 then fails at import, registering fake kernels for nms and qnms
    without checking that they exist. timm and the VGG model use only pure-Python parts of
    torchvision, so define the two operator schemas (no kernels; nothing here calls them) when the
    library did not load."""
    import importlib.util

    library = Path(importlib.util.find_spec("torchvision").origin).parent / "_C.so"
    try:
        torch.ops.load_library(str(library))
    except (OSError, RuntimeError):
        lib = torch.library.Library("torchvision", "DEF")
        lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        importable_torchvision.keep = lib  # the schemas live as long as this object


def randomised(library: str, name: str) -> torch.nn.Module:
    """The model with every tensor random and of a size that matters. The libraries start biases,
    the last norm of each residual block and the batch-norm statistics at constants, which would
    leave their conversion untested. Norm scales below 1 keep the 152-layer output near 1, so the
    absolute tolerance stays meaningful; VGG's layers are drawn by fan-in for the same reason."""
    torch.manual_seed(0)
    if library == "timm":
        import timm

        model = timm.create_model(name, pretrained=False)
    else:
        import torchvision

        model = getattr(torchvision.models, name)(weights=None)
    model.eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.25, 0.5)
                module.bias.normal_(0.0, 0.1)
                module.running_mean.normal_(0.0, 0.1)
                module.running_var.uniform_(0.5, 1.5)
            elif isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
                if name.startswith("vgg"):
                    torch.nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
                if module.bias is not None:
                    module.bias.normal_(0.0, 0.1)
    return model


def main(argv: list[str]) -> int:
    library, name, out, formats = argv[0], argv[1], Path(argv[2]), argv[3].split(",")
    out.mkdir(parents=True, exist_ok=True)
    importable_torchvision()
    from safetensors.torch import save_file

    model = randomised(library, name)
    if "safetensors" in formats:
        save_file(
            {k: v.contiguous() for k, v in model.state_dict().items()}, str(out / f"{name}.safetensors")
        )
    if "pth" in formats:
        torch.save(model.state_dict(), out / f"{name}.pth")
    # VGG: 304 px, the smallest size at which every pooling input is even (PyTorch rounds pooled
    # sizes down, GluonCV's SSD base up) and SSD-300's extra layers still fit; one image (VGG is slow).
    vgg = name.startswith("vgg")
    shape = (1, 3, 304, 304) if vgg else (2, 3, 64, 64)
    x = torch.from_numpy(np.random.RandomState(1).randn(*shape).astype(np.float32))
    with torch.no_grad():
        if vgg:  # timm and torchvision both keep VGG's convolutions in `features`, pool5 at [30]
            outputs = {"conv4_3": model.features[:23](x).numpy(), "conv5_3": model.features[:30](x).numpy()}
        else:
            outputs = {"logits": model(x).numpy()}
    np.save(out / "input.npy", x.numpy())
    np.savez(out / "outputs.npz", **outputs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
