"""Checkpoints written elsewhere, loaded with torch's weights-only unpickler and nothing more.

`torch.load(weights_only=True)` rebuilds only tensors and storages, plain containers (dict, list,
tuple, set, OrderedDict), numbers, strings, bytes and torch's dtypes, devices and sizes. Any other
class or function a pickle names (its GLOBAL opcodes), such as `os.system`, a trainer's own class,
`argparse.Namespace`, `pathlib.Path` or a numpy array, is refused before it can be called, so a file
cannot run code while it loads.

nnU-Net v2 stores its training curves and best EMA Dice as numpy scalars (`np.float32`), which the
weights-only loader refuses by default, so every nnU-Net checkpoint would be refused. Exactly those
are allowed here: numpy's scalar reconstructor, `numpy.dtype` and the numeric dtype classes, which
rebuild a number from raw bytes and call nothing else. The document is then turned into plain Python
data, so that the imported copy loads with our own loader (`core.training.checkpoints`), which allows
nothing extra.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from core.errors import ProblemsError

try:  # numpy 2 moved the module; files written under numpy 1 still name the old path
    from numpy._core.multiarray import scalar as NUMPY_SCALAR
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import scalar as NUMPY_SCALAR

_NUMERIC_DTYPES = (
    "BoolDType",
    "Int8DType",
    "Int16DType",
    "Int32DType",
    "Int64DType",
    "UInt8DType",
    "UInt16DType",
    "UInt32DType",
    "UInt64DType",
    "Float16DType",
    "Float32DType",
    "Float64DType",
)
NUMPY_SCALAR_GLOBALS: list = [
    (NUMPY_SCALAR, "numpy.core.multiarray.scalar"),
    (NUMPY_SCALAR, "numpy._core.multiarray.scalar"),
    np.dtype,
    *(getattr(np.dtypes, name) for name in _NUMERIC_DTYPES),
]


class CheckpointRefused(ProblemsError):
    """A checkpoint that cannot be loaded without unpickling arbitrary objects, or at all."""


def _unsafe_globals(path: Path) -> list[str]:
    """The classes and functions a checkpoint names that weights-only loading refuses (read statically)."""
    try:
        with torch.serialization.safe_globals(NUMPY_SCALAR_GLOBALS):
            return sorted(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    except Exception:  # not a zip checkpoint, truncated, ...: the load error says enough
        return []


def refusal(path: Path, where: str, error: Exception) -> str:
    unsafe = _unsafe_globals(path)
    if unsafe:
        return (
            f"{where}: refused, it needs arbitrary unpickling: it names {', '.join(unsafe)}, which "
            "weights-only loading does not rebuild (only tensors, plain containers, numbers, strings "
            "and numpy scalars); re-save its weights and metadata as plain data in a trusted environment"
        )
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return f"{where}: cannot be read as a PyTorch checkpoint ({reason})"


def plain_data(value: object) -> object:
    """`value` with every numpy scalar replaced by the Python number it holds; tensors stay tensors."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        items = ((plain_data(k), plain_data(v)) for k, v in value.items())
        return OrderedDict(items) if isinstance(value, OrderedDict) else dict(items)
    if isinstance(value, list | tuple):
        return type(value)(plain_data(v) for v in value)
    return value


def load_foreign_checkpoint(path: Path, where: str) -> dict:
    """A checkpoint document as plain data; `CheckpointRefused`, naming `where`, if unsafe or unreadable."""
    try:
        with torch.serialization.safe_globals(NUMPY_SCALAR_GLOBALS):
            document = torch.load(Path(path), map_location="cpu", weights_only=True)
    except Exception as error:  # UnpicklingError, RuntimeError, EOFError, ...
        raise CheckpointRefused(refusal(Path(path), where, error)) from None
    if not isinstance(document, dict):
        raise CheckpointRefused(f"{where}: holds a {type(document).__name__}, not a checkpoint dictionary")
    return plain_data(document)
