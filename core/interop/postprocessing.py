"""nnU-Net v2's postprocessing files, read and written without running pickled code.

`determine_postprocessing` writes two files beside the predictions it chose on: `postprocessing.pkl`,
a pickled `(functions, kwargs)` pair that `nnUNetv2_apply_postprocessing` calls, and
`postprocessing.json`, the same choice readable (`postprocessing_fns`: function names,
`postprocessing_kwargs`: their keyword arguments) with the metrics before and after. The model export
zip carries both. The only function nnU-Net v2 has is
`remove_all_but_largest_component_from_segmentation(seg, labels_or_regions)`: keep the largest
component of the union of the given labels, an int, a tuple (region) or a list of either; it is our
`KeepLargestComponent` on that union.

Reading prefers the JSON, which needs no unpickling at all. A pickle alone is read with an
unpickler whose `find_class` (the one door through which a pickle reaches code) answers only that
function's name, with an inert marker, and numpy's scalar and dtype reconstructors (nnU-Net's label
values are numpy integers); any other name refuses the file. The marker is not callable, so the
pickle cannot call it either. Writing emits the same pickle by hand, naming the function without
importing nnU-Net v2.
"""

from __future__ import annotations

import io
import json
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import ProblemsError
from core.files import read_json
from core.interop.checkpoints import NUMPY_SCALAR
from core.interop.layout import POSTPROCESSING_JSON, POSTPROCESSING_PICKLE
from core.postprocessing import KeepLargestComponent, Steps

NNUNET_MODULE = "nnunetv2.postprocessing.remove_connected_components"
NNUNET_FUNCTION = "remove_all_but_largest_component_from_segmentation"
MAX_PICKLE_BYTES = 1 << 20  # real files are a few hundred bytes
_NUMPY_GLOBALS = {
    ("numpy._core.multiarray", "scalar"): NUMPY_SCALAR,
    ("numpy.core.multiarray", "scalar"): NUMPY_SCALAR,
    ("numpy", "dtype"): np.dtype,
}


class PostprocessingImportError(ProblemsError):
    """A postprocessing file of nnU-Net v2 that cannot be read safely or does not describe known steps."""


class _KeepLargestMarker:
    """Stands for nnU-Net's function inside an unpickled file; deliberately not callable."""


_MARKER = _KeepLargestMarker()


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:
        if (module, name) == (NNUNET_MODULE, NNUNET_FUNCTION):
            return _MARKER
        if (module, name) in _NUMPY_GLOBALS:
            return _NUMPY_GLOBALS[(module, name)]
        raise pickle.UnpicklingError(f"it names {module}.{name}, which is not allowed")


@dataclass(frozen=True)
class NnunetPostprocessing:
    """The steps, and nnU-Net's metrics before and after them (`input_folder`, `postprocessed`) if known."""

    steps: Steps
    metrics: dict

    def to_our_json(self) -> dict:
        return {"steps": [step.to_json() for step in self.steps], **self.metrics}


def _labels(value: object, depth: int = 0) -> list[int]:
    """The label values of `labels_or_regions` (int, tuple or list of either), flattened."""
    if isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_):
        return [int(value)]
    if isinstance(value, list | tuple) and depth < 2 and value:
        return [label for item in value for label in _labels(item, depth + 1)]
    raise ValueError(f"labels_or_regions {value!r} is not a label, a region or a list of them")


def _step(function: object, kwargs: object, foreground: set[int]) -> KeepLargestComponent:
    if function not in (_MARKER, NNUNET_FUNCTION):
        raise ValueError(f"unknown function {function!r}; known: {NNUNET_FUNCTION}")
    if not isinstance(kwargs, dict) or "labels_or_regions" not in kwargs:
        raise ValueError(f"arguments {kwargs!r} lack labels_or_regions")
    unknown = set(kwargs) - {"labels_or_regions", "background_label"}
    if unknown or kwargs.get("background_label", 0) != 0:
        raise ValueError(f"arguments {kwargs!r} are not supported (only labels_or_regions)")
    labels = list(dict.fromkeys(_labels(kwargs["labels_or_regions"])))
    strange = sorted(set(labels) - foreground)
    if strange:
        raise ValueError(f"labels {strange} are not foreground labels of dataset.json")
    return KeepLargestComponent(tuple(labels))


def _steps(functions: object, kwargs: object, foreground: set[int]) -> Steps:
    if not isinstance(functions, list | tuple) or not isinstance(kwargs, list | tuple):
        raise ValueError("expected a list of functions and a list of their arguments")
    if len(functions) != len(kwargs):
        raise ValueError(f"{len(functions)} function(s) but {len(kwargs)} argument set(s)")
    return tuple(_step(f, k, foreground) for f, k in zip(functions, kwargs, strict=True))


def _read_pickle(path: Path) -> Steps:
    data = path.read_bytes()
    if len(data) > MAX_PICKLE_BYTES:
        raise ValueError(f"{len(data)} bytes is too large for a postprocessing file")
    document = _RestrictedUnpickler(io.BytesIO(data)).load()
    if not isinstance(document, tuple | list) or len(document) != 2:
        raise ValueError("expected a (functions, kwargs) pair")
    return document


def read_nnunet_postprocessing(
    folder: Path, foreground_labels: Sequence[int], where: str
) -> NnunetPostprocessing:
    """The postprocessing chosen in `folder` (its JSON if present, else its pickle, read safely)."""
    foreground = set(foreground_labels)
    json_path, pickle_path = Path(folder) / POSTPROCESSING_JSON, Path(folder) / POSTPROCESSING_PICKLE
    try:
        if json_path.is_file():
            document = read_json(json_path, PostprocessingImportError, "postprocessing file")
            if not isinstance(document, dict):
                raise ValueError("must be a JSON object")
            steps = _steps(
                document.get("postprocessing_fns"), document.get("postprocessing_kwargs"), foreground
            )
            metrics = {k: document[k] for k in ("input_folder", "postprocessed") if k in document}
            return NnunetPostprocessing(steps, metrics)
        return NnunetPostprocessing(_steps(*_read_pickle(pickle_path), foreground), {})
    except PostprocessingImportError as error:
        raise PostprocessingImportError([f"{where}: {p}" for p in error.problems]) from None
    except (ValueError, TypeError, pickle.UnpicklingError, EOFError) as error:
        name = json_path.name if json_path.is_file() else pickle_path.name
        raise PostprocessingImportError(f"{where}/{name}: refused, {error}") from None


def nnunet_postprocessing_pickle(steps: Steps) -> bytes:
    """The `(functions, kwargs)` pickle nnU-Net v2 loads, built opcode by opcode: protocol 2, a list
    of GLOBAL references to its function, the kwargs list as pickle writes it, a 2-tuple, stop."""
    function = b"c" + NNUNET_MODULE.encode() + b"\n" + NNUNET_FUNCTION.encode() + b"\n"
    kwargs = pickle.dumps([{"labels_or_regions": list(step.labels)} for step in steps], protocol=2)
    # kwargs starts with PROTO 2 and ends with STOP; its memo indices cannot clash, nothing before is memoized
    return b"\x80\x02" + b"](" + function * len(steps) + b"e" + kwargs[2:-1] + b"\x86."


def nnunet_postprocessing_json(steps: Steps, metrics: dict) -> str:
    document = {
        **{k: metrics[k] for k in ("input_folder", "postprocessed") if k in metrics},
        "postprocessing_fns": [NNUNET_FUNCTION] * len(steps),
        "postprocessing_kwargs": [{"labels_or_regions": list(step.labels)} for step in steps],
    }
    return json.dumps(document, indent=4)
