"""The preprocessed-case files: what preprocessing writes and training and export read back.

Per case, in `<preprocessed dataset>/<data_identifier>/`:

* `CASE.npy`: float32 (channels, z, y, x) in network axis order, uncompressed so that training can
  memory-map it and read one patch without decoding the volume (nnU-Net's .b2nd trades disk space for
  a decompression per patch).
* `CASE_seg.npy`: int8, or int16 when a label exceeds 127; -1 marks voxels outside the nonzero region.
* `CASE_locations.npy`: int32 (N, 4) class locations (see `core.class_locations`).
* `CASE.json`: `CaseProperties` plus the class-location row ranges and the preprocessing hash.

Every file is written to a temporary name and renamed; the JSON comes last and an outdated JSON is
removed first, so a case whose JSON exists is complete and consistent, even after a killed run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from core.class_locations import ClassLocations, pack_class_locations, unpack_class_locations
from core.geometry import Geometry

DATA_SUFFIX = ".npy"
SEG_SUFFIX = "_seg.npy"
LOCATIONS_SUFFIX = "_locations.npy"
PROPERTIES_SUFFIX = ".json"
# Beside the configuration folders: the label files as given, for evaluation without the raw data.
GT_FOLDER = "gt_segmentations"


@dataclass(frozen=True)
class CaseProperties:
    """What it takes to map a preprocessed case back onto its image file (METHOD.md 4.5, 12.2).

    `geometry` is the reader's, untransposed; the shapes and the crop box are in network (transposed)
    axis order, as nnU-Net stores them. `class_locations` is empty for cases without labels.
    """

    geometry: Geometry
    shape_before_cropping: tuple[int, ...]
    bbox_used_for_cropping: tuple[tuple[int, int], ...]
    shape_after_cropping_and_before_resampling: tuple[int, ...]
    class_locations: ClassLocations = field(default_factory=dict, compare=False)

    @property
    def spacing(self) -> tuple[float, ...]:
        """The reader's spacing, untransposed (nnU-Net's `properties['spacing']`)."""
        return self.geometry.spacing

    def to_json(self) -> dict:
        return {
            "geometry": self.geometry.to_json(),
            "spacing": list(self.spacing),
            "shape_before_cropping": list(self.shape_before_cropping),
            "bbox_used_for_cropping": [list(pair) for pair in self.bbox_used_for_cropping],
            "shape_after_cropping_and_before_resampling": list(
                self.shape_after_cropping_and_before_resampling
            ),
        }

    @classmethod
    def from_json(cls, data: dict, class_locations: ClassLocations | None = None) -> CaseProperties:
        return cls(
            geometry=Geometry.from_json(data["geometry"]),
            shape_before_cropping=tuple(int(v) for v in data["shape_before_cropping"]),
            bbox_used_for_cropping=tuple(
                (int(start), int(stop)) for start, stop in data["bbox_used_for_cropping"]
            ),
            shape_after_cropping_and_before_resampling=tuple(
                int(v) for v in data["shape_after_cropping_and_before_resampling"]
            ),
            class_locations=class_locations or {},
        )


def _replace_atomically(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write through `write(stream)` into a hidden sibling, then rename it over `path`."""
    temporary = path.with_name(f".{path.name}.partial")
    with open(temporary, "wb") as stream:
        write(stream)
    os.replace(temporary, path)


def save_array(path: Path, array: np.ndarray) -> None:
    """np.save, atomically."""
    _replace_atomically(path, lambda stream: np.save(stream, array, allow_pickle=False))


def save_case(
    folder: Path,
    identifier: str,
    data: np.ndarray,
    seg: np.ndarray | None,
    properties: CaseProperties,
    preprocessing_hash: str,
) -> None:
    """Write one preprocessed case (see the module docstring for the files and their order)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{identifier}{PROPERTIES_SUFFIX}").unlink(missing_ok=True)
    save_array(folder / f"{identifier}{DATA_SUFFIX}", data.astype(np.float32, copy=False))
    document = properties.to_json()
    if seg is not None:
        save_array(folder / f"{identifier}{SEG_SUFFIX}", seg)
        packed, ranges = pack_class_locations(properties.class_locations)
        save_array(folder / f"{identifier}{LOCATIONS_SUFFIX}", packed)
        document["class_locations"] = ranges
    document["preprocessing_hash"] = preprocessing_hash
    text = json.dumps(document, separators=(",", ":")).encode()
    _replace_atomically(folder / f"{identifier}{PROPERTIES_SUFFIX}", lambda s: s.write(text))


def read_case_document(folder: Path, identifier: str) -> dict | None:
    """The case's JSON, or None when the case is missing or was never finished."""
    try:
        return json.loads((Path(folder) / f"{identifier}{PROPERTIES_SUFFIX}").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def load_case(
    folder: Path, identifier: str, mmap: bool = True
) -> tuple[np.ndarray, np.ndarray | None, CaseProperties]:
    """Data, label map (None for cases preprocessed without one) and properties of one case.

    With `mmap` the arrays are read-only memory maps: opening is free and a patch reads only its bytes.
    """
    folder = Path(folder)
    document = read_case_document(folder, identifier)
    if document is None:
        raise FileNotFoundError(f"{folder / identifier}: no finished preprocessed case")
    mode = "r" if mmap else None
    data = np.load(folder / f"{identifier}{DATA_SUFFIX}", mmap_mode=mode)
    seg = None
    locations: ClassLocations = {}
    if "class_locations" in document:
        seg = np.load(folder / f"{identifier}{SEG_SUFFIX}", mmap_mode=mode)
        packed = np.load(folder / f"{identifier}{LOCATIONS_SUFFIX}")
        locations = unpack_class_locations(packed, document["class_locations"])
    return data, seg, CaseProperties.from_json(document, locations)


def list_cases(folder: Path) -> list[str]:
    """Identifiers of the finished cases in a preprocessed folder, sorted."""
    return sorted(
        p.name[: -len(PROPERTIES_SUFFIX)]
        for p in Path(folder).glob(f"*{PROPERTIES_SUFFIX}")
        if not p.name.startswith(".")
    )
