"""Reading a downloaded checkpoint: names, shapes and numpy arrays, whatever framework wrote it.

safetensors is read shape-first, so a wrong file is refused before its hundreds of megabytes are
loaded; PyTorch's own files (.pth, .pt, .bin) are read without torch.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from sagemaker_cv.contract.errors import ClientError
from sagemaker_cv.tools.weights.convert import Shape

SAFETENSORS = (".safetensors",)
TORCH = (".pth", ".pt", ".bin")


class Checkpoint:
    """A checkpoint file: `shapes` of every tensor, `arrays(names)` to load some as numpy."""

    def __init__(self, path: Path):
        self.path = path
        suffix = path.suffix.lower()
        if not path.is_file():
            raise ClientError(f"{path}: no such file")
        if suffix in SAFETENSORS:
            self.shapes = self._safetensors_shapes()
            self._tensors: dict[str, np.ndarray] | None = None
        elif suffix in TORCH:
            self._tensors = self._torch_tensors()
            self.shapes = {name: tuple(a.shape) for name, a in self._tensors.items()}
        else:
            raise ClientError(
                f"{path}: expected a {' or '.join(SAFETENSORS + TORCH)} checkpoint (model.safetensors from the hub)"
            )

    def arrays(self, names: Iterable[str]) -> dict[str, np.ndarray]:
        if self._tensors is not None:
            return {name: self._tensors[name] for name in names}
        from safetensors import safe_open

        with safe_open(str(self.path), framework="np") as f:
            try:
                return {name: f.get_tensor(name) for name in names}
            except TypeError as exc:  # bfloat16: numpy has no such type
                raise ClientError(
                    f"{self.path}: {exc}; save the weights as float32, or import the PyTorch file (.pth/.bin)"
                ) from None

    def _safetensors_shapes(self) -> dict[str, Shape]:
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(self.path), framework="np") as f:
                return {name: tuple(f.get_slice(name).get_shape()) for name in f.keys()}
        except (SafetensorError, OSError, ValueError) as exc:
            raise ClientError(f"{self.path}: not a readable safetensors file ({exc})") from None

    def _torch_tensors(self) -> dict[str, np.ndarray]:
        state = read_torch_zip(self.path)
        # Training scripts often wrap the weights: {"state_dict": ...} or {"model": ...}.
        for key in ("state_dict", "model"):
            if isinstance(state, dict) and isinstance(state.get(key), dict):
                state = state[key]
        if not isinstance(state, dict):
            raise ClientError(f"{self.path}: holds a {type(state).__name__}, not a dict of tensors")
        return {name: a for name, a in state.items() if isinstance(a, np.ndarray)}


# ---- PyTorch's zip checkpoints, without torch ---------------------------------------------------
#
# gluoncv 0.10.5 refuses to import next to torch >= 2.0 (its check.py raises), and no older torch
# runs on Python 3.11, so the converter cannot use torch.load. The format is simple: a zip with
# data.pkl, whose tensors are `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`
# calls over storages kept as raw little-endian files data/<key>. A restricted unpickler rebuilds
# them as numpy arrays and refuses every other global, so no code in the file ever runs.

_STORAGE_DTYPES = {
    "DoubleStorage": np.float64,
    "FloatStorage": np.float32,
    "HalfStorage": np.float16,
    "BFloat16Storage": np.uint16,  # widened to float32 below: numpy has no bfloat16
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


def _rebuild_tensor(storage, offset, size, stride, *_ignored):
    array, bfloat16 = storage
    itemsize = array.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        array[offset:], shape=tuple(size), strides=tuple(s * itemsize for s in stride)
    )
    if bfloat16:
        return (view.astype(np.uint32) << 16).view(np.float32)
    return np.array(view)


def _rebuild_parameter(data, *_ignored):
    return data


def read_torch_zip(path: Path):
    """The object torch.save wrote to `path` (zip format, torch >= 1.6), tensors as numpy arrays."""
    import pickle
    import zipfile

    if not zipfile.is_zipfile(path):
        raise ClientError(
            f"{path}: not a zip-format PyTorch checkpoint (torch >= 1.6 writes those); "
            "re-save it with torch.save or import the model.safetensors file instead"
        )
    with zipfile.ZipFile(path) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pickles) != 1:
            raise ClientError(f"{path}: expected one data.pkl in the archive, found {len(pickles)}")
        prefix = pickles[0][: -len("data.pkl")]
        byteorder = (
            archive.read(prefix + "byteorder").decode()
            if prefix + "byteorder" in archive.namelist()
            else "little"
        )
        if byteorder != "little":
            raise ClientError(f"{path}: written on a {byteorder}-endian machine; not supported")

        class Unpickler(pickle.Unpickler):
            def find_class(self, module: str, name: str):
                if (module, name) == ("collections", "OrderedDict"):
                    from collections import OrderedDict

                    return OrderedDict
                if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
                    return _rebuild_tensor
                if (module, name) == ("torch._utils", "_rebuild_parameter"):
                    return _rebuild_parameter
                if module == "torch" and name in _STORAGE_DTYPES:
                    return name  # a storage class: persistent_load reads its dtype from it
                raise ClientError(f"{path}: holds a {module}.{name}, not only tensors; save a state_dict")

            def persistent_load(self, pid):
                _, storage, key, _location, numel = pid
                raw = archive.read(f"{prefix}data/{key}")
                dtype = np.dtype(_STORAGE_DTYPES[storage]).newbyteorder("<")
                return np.frombuffer(raw, dtype=dtype, count=numel), storage == "BFloat16Storage"

        try:
            return Unpickler(archive.open(pickles[0])).load()
        except ClientError:
            raise
        except (pickle.UnpicklingError, KeyError, ValueError, TypeError, EOFError) as exc:
            raise ClientError(f"{path}: not a readable PyTorch checkpoint ({exc})") from None
