"""Writing and copying parameters: the only module that reaches into Gluon's private parameter and
trainer API.

`_collect_params_with_prefix` names parameters by their place in the block tree (`backbone.conv0.weight`)
rather than by the global name counter (`resnetv10_conv0_weight`), so two instances of one structure
(the float16 training network and its float32 export twin) line up name for name.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import mxnet as mx
from mxnet.gluon import HybridBlock

from sagemaker_cv.contract.errors import ClientError
from sagemaker_cv.contract.files import atomic_path
from sagemaker_cv.training.pretrained import pretrained_file


def structural_params(block: HybridBlock) -> dict:
    """Parameters keyed by their place in the block tree (stable across instances)."""
    return block._collect_params_with_prefix()


def load_pretrained(block: HybridBlock, name: str, ctx, required: Callable[[str], bool]) -> None:
    """Load GluonCV's ImageNet parameters of network `name` ($MXNET_HOME/models) into `block`, whose
    structural names are the file's. Every parameter `required` selects must be in the file with its
    shape (a file of another network would otherwise load partly and silently); the rest, e.g. heads
    the file does not have, keep their initialisation."""
    path = pretrained_file(name)
    try:
        saved = mx.nd.load(str(path))
    except mx.base.MXNetError as exc:
        raise ClientError(
            f"pretrained weights {path}: not an MXNet parameter file ({str(exc)[:120]})"
        ) from None
    params = structural_params(block)
    needed = [k for k in params if required(k)]
    missing = [k for k in needed if k not in saved]
    # A shape of 0 is not known until the first forward: nothing to compare yet.
    wrong = [
        f"{k} {tuple(saved[k].shape)} (expected {params[k].shape})"
        for k in needed
        if k in saved
        and params[k].shape
        and 0 not in params[k].shape
        and tuple(saved[k].shape) != params[k].shape
    ]
    if missing or wrong:
        detail = f"missing {', '.join(missing[:3])}" if missing else f"shapes differ: {', '.join(wrong[:3])}"
        raise ClientError(
            f"pretrained weights {path}: do not fit {name} ({detail}); "
            f"re-import them with `sagemaker-cv weights import FILE --network {name}`"
        )
    try:
        block.load_parameters(str(path), ctx=ctx, allow_missing=True, ignore_extra=True)
    except (mx.base.MXNetError, AssertionError, ValueError) as exc:
        raise ClientError(f"pretrained weights {path}: do not fit {name} ({str(exc)[:200]})") from None


#: Symbol BatchNorm's running statistics (`moving_*`, as in GluonCV's SSD FeatureExpander, a
#: SymbolBlock): unlike Gluon's BatchNorm they carry no initializer of their own, so a default
#: initializer would draw them at random (measured: Uniform gave moving variances down to -0.07,
#: which stay negative for dozens of updates and make inference NaN in those channels).
MOVING_STATISTICS = {"moving_mean": mx.init.Zero(), "moving_var": mx.init.One()}


def initialize_missing(block: HybridBlock, init, ctx) -> None:
    """Initialise the parameters that hold no value yet (loaded ones are kept): each with its own
    initializer, running statistics as BatchNorm starts them, the rest with `init`."""
    for name, param in block.collect_params().items():
        if param._data is None:
            statistic = next((v for k, v in MOVING_STATISTICS.items() if name.endswith(k)), None)
            param.initialize(init=statistic, ctx=ctx, default_init=init)


def init_trainer(trainer) -> None:
    """Create the Trainer's kvstore and push/pull the parameters now rather than at the first
    step (what Trainer.save_states does first), so values set on each device afterwards stay."""
    if not trainer._kv_initialized:
        trainer._init_kvstore()
    if trainer._params_to_init:
        trainer._init_params()


def copy_params(source: HybridBlock, target: HybridBlock, ctx, dtype: str = "float32") -> None:
    """Copy every parameter of `source` (read on `ctx`) into the same-structured `target`."""
    values = structural_params(source)
    for key, param in structural_params(target).items():
        param.set_data(values[key].data(ctx).astype(dtype).as_in_context(param.list_ctx()[0]))


def materialize(net: HybridBlock, input_shape: tuple[int, ...], ctx) -> None:
    """Give every parameter its shape and value now (Gluon defers that to the first forward pass),
    so the model can be saved before a batch has run. One float32 forward in inference mode: before
    any float16 cast, which CPUs could not run.

    On CPUs, MXNet's oneDNN convolutions rewrite their weights in place into oneDNN's blocked layout
    during an inference pass, asynchronously, whenever the engine reaches each layer (it may be
    well into the first training step). The distributed kvstore cannot send an array in that
    layout: the push by which the first worker initialises the parameter servers fails inside the
    engine without an error reaching Python, the servers never receive those keys, and the first
    pull of one aborts them (`Check failed: !stored.is_none(): init N first`, N whichever weight
    the race left in that layout and a worker pulled first). So the pass is waited for, and every
    parameter then gets fresh arrays in MXNet's own layout, with the same values."""
    net(mx.nd.zeros((1, *input_shape), ctx=ctx))
    mx.nd.waitall()
    default_layout(net)


def default_layout(block: HybridBlock) -> None:
    """Replace every initialised parameter's arrays (one per device) by copies in MXNet's default
    layout, with new gradient buffers attached, before any Trainer or cached graph holds them."""
    for param in block.collect_params().values():
        if param._data is None:  # still deferred (not reached by the forward pass): nothing to copy
            continue
        param._data = [array.copyto(array.context) for array in param._data]
        param._init_grad()


def export_symbol_params(block: HybridBlock, prefix: Path, epoch: int, ctx) -> tuple[Path, Path]:
    """Write `prefix-symbol.json` and `prefix-%04d.params` (float32, input named `data`), loadable
    with mx.mod.Module and gluon.SymbolBlock.imports."""
    sym = block(mx.sym.var("data"))
    params = block.collect_params()
    save = {}
    for name in sym.list_arguments():
        if name != "data":
            save["arg:" + name] = params[name].data(ctx).astype("float32").as_in_context(mx.cpu())
    for name in sym.list_auxiliary_states():
        save["aux:" + name] = params[name].data(ctx).astype("float32").as_in_context(mx.cpu())
    sym_path = Path(f"{prefix}-symbol.json")
    params_path = Path(f"{prefix}-{epoch:04d}.params")
    # Written under a temporary name and renamed: a job killed mid-write leaves no truncated file.
    with atomic_path(sym_path) as temp:
        sym.save(str(temp))
    with atomic_path(params_path) as temp:
        mx.nd.save(str(temp), save)
    return sym_path, params_path


def load_exported(block: HybridBlock, symbol_path: Path, params_path: Path) -> str | None:
    """Load `export_symbol_params` files into `block`, a network of the same structure built in
    this process. Parameter names carry Gluon's global instance counters (`resnetv10_`, `dense1_`),
    which differ between processes, so parameters are matched by their position in the graph,
    after checking that both graphs are the same but for names. Returns why the files do not fit,
    or None once loaded."""
    import json

    from sagemaker_cv.training.incremental import graph_signature

    saved = mx.sym.load(str(symbol_path))
    ours = block(mx.sym.var("data"))
    if graph_signature(json.loads(saved.tojson())) != graph_signature(json.loads(ours.tojson())):
        return f"the network in {symbol_path.name} is not the one this job builds (its graph differs)"
    values = mx.nd.load(str(params_path))
    params = block.collect_params()
    pairs = [("arg", a, b) for a, b in zip(saved.list_arguments(), ours.list_arguments())]
    pairs += [("aux", a, b) for a, b in zip(saved.list_auxiliary_states(), ours.list_auxiliary_states())]
    for kind, theirs, mine in pairs:
        if mine == "data":
            continue
        value = values.get(f"{kind}:{theirs}")
        if value is None:
            return f"{params_path.name} has no {kind}:{theirs}"
        if value.shape != params[mine].shape:
            return f"{params_path.name}: {theirs} has shape {value.shape}, the network needs {params[mine].shape}"
    for kind, theirs, mine in pairs:
        if mine != "data":
            params[mine].set_data(values[f"{kind}:{theirs}"].astype(params[mine].dtype))
    return None
