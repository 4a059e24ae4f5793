"""Training batches: random patches from memory-mapped preprocessed cases (METHOD.md 5.3, 5.4).

A batch draws `batch_size` cases uniformly with replacement; the last third of the batch (by the
method's rule) is centred on a voxel of a random class present in its case, the rest is placed
uniformly, padded where it reaches past the border (image with 0, labels with -1). Patches are cut
at the enlarged size the spatial augmentation needs, which then crops the final patch.

Every batch draws its random numbers from a generator seeded by `(seed, batch index)`, so batch k is
the same whenever it is made: a resumed run continues with exactly the batches it would have seen,
and background prefetching cannot change the order of draws. That costs nothing and replaces the
loader state nnU-Net v2 cannot restore.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from core.class_locations import ClassKey, ClassLocations
from core.constants import TRAINING_OVERSAMPLE_FOREGROUND
from core.preprocessed import load_case
from core.training.cascade import load_previous_stage


@dataclass(frozen=True)
class PatchSampling:
    """How patches are drawn. Sizes are spatial; a 2D configuration has two entries."""

    batch_size: int
    crop_size: tuple[int, ...]
    annotated_key: ClassKey | None = None
    oversample_foreground: float = TRAINING_OVERSAMPLE_FOREGROUND

    def is_forced_foreground(self, index_in_batch: int) -> bool:
        """The method's deterministic rule: the last round(batch × 0.33) samples show foreground."""
        return index_in_batch >= round(self.batch_size * (1 - self.oversample_foreground))


@dataclass(frozen=True)
class Batch:
    """`image` (B, C, *crop) float32, `seg` (B, 1, *crop) int16 with -1 outside (for a cascade
    (B, 2, *crop), the previous stage's segmentation second), and the cases used."""

    image: torch.Tensor
    seg: torch.Tensor
    identifiers: tuple[str, ...]
    index: int


@dataclass(frozen=True)
class OpenCase:
    """One case's memory maps: data (C, *S), labels (1, *S), and for a cascade the previous stage's
    segmentation (1, *S) on the same grid."""

    data: np.ndarray
    seg: np.ndarray
    locations: ClassLocations
    previous_stage: np.ndarray | None = None


class PreprocessedCases:
    """The cases of one preprocessed folder, opened once as memory maps; with `previous_stage_dir` (a
    cascade, see `core.training.cascade`) each case's previous-stage segmentation too."""

    def __init__(
        self, folder: Path, identifiers: Sequence[str], previous_stage_dir: Path | None = None
    ) -> None:
        if not identifiers:
            raise ValueError(f"{folder}: no cases to train on")
        self.identifiers = tuple(identifiers)
        self.cases: dict[str, OpenCase] = {}
        for identifier in self.identifiers:
            data, seg, properties = load_case(Path(folder), identifier)
            if seg is None:
                raise ValueError(f"{identifier}: preprocessed without labels, cannot train on it")
            previous = (
                None if previous_stage_dir is None else load_previous_stage(previous_stage_dir, identifier)
            )
            self.cases[identifier] = OpenCase(data, seg, properties.class_locations, previous)

    @property
    def num_channels(self) -> int:
        return int(self.cases[self.identifiers[0]].data.shape[0])


def patch_bounds(shape: Sequence[int], size: Sequence[int]) -> tuple[list[int], list[int]]:
    """Lowest and highest lower corner per axis (METHOD.md 5.3): small images are padded around."""
    lower, upper = [], []
    for extent, patch in zip(shape, size, strict=True):
        pad = max(patch - extent, 0)
        lower.append(-(pad // 2))
        upper.append(extent + pad // 2 + pad % 2 - patch)
    return lower, upper


def choose_corner(
    shape: Sequence[int],
    size: Sequence[int],
    locations: ClassLocations,
    is_forced: bool,
    annotated_key: ClassKey | None,
    rng: np.random.Generator,
) -> list[int]:
    """Lower corner of one patch: uniform, or centred on a voxel of a randomly chosen present class.

    With an ignore label, unforced patches are centred on an annotated voxel instead of placed
    uniformly, so that they carry some supervision.
    """
    lower, upper = patch_bounds(shape, size)
    candidates: list[ClassKey] = []
    if is_forced:
        candidates = [k for k, v in locations.items() if len(v) and k != annotated_key]
        if not candidates and annotated_key is not None and len(locations.get(annotated_key, ())):
            candidates = [annotated_key]
    elif annotated_key is not None and len(locations.get(annotated_key, ())):
        candidates = [annotated_key]
    if not candidates:
        return [int(rng.integers(lo, hi + 1)) for lo, hi in zip(lower, upper, strict=True)]
    voxels = locations[candidates[int(rng.integers(len(candidates)))]]
    voxel = voxels[int(rng.integers(len(voxels)))][1:]
    return [max(lo, int(v) - s // 2) for lo, v, s in zip(lower, voxel, size, strict=True)]


def crop_and_pad(array: np.ndarray, corner: Sequence[int], size: Sequence[int], fill: float) -> np.ndarray:
    """array[:, corner : corner + size] with out-of-bounds parts filled; reads only the patch's bytes."""
    spatial = array.shape[1:]
    out = np.full((array.shape[0], *size), fill, dtype=array.dtype)
    source, target = [slice(None)], [slice(None)]
    for start, length, extent in zip(corner, size, spatial, strict=True):
        first, last = max(start, 0), min(start + length, extent)
        source.append(slice(first, max(last, first)))
        target.append(slice(first - start, first - start + max(last - first, 0)))
    out[tuple(target)] = array[tuple(source)]
    return out


def make_batch(cases: PreprocessedCases, sampling: PatchSampling, seed: int, index: int) -> Batch:
    """Batch number `index` of the stream seeded with `seed`; the same arguments give the same batch."""
    rng = np.random.default_rng([seed, index])
    is_2d = len(sampling.crop_size) == 2
    size = (1, *sampling.crop_size) if is_2d else tuple(sampling.crop_size)
    chosen = [cases.identifiers[i] for i in rng.integers(len(cases.identifiers), size=sampling.batch_size)]
    images, segs = [], []
    for position, identifier in enumerate(chosen):
        case = cases.cases[identifier]
        corner = choose_corner(
            case.data.shape[1:],
            size,
            case.locations,
            sampling.is_forced_foreground(position),
            sampling.annotated_key,
            rng,
        )
        image_patch = crop_and_pad(case.data, corner, size, 0.0)
        seg_patch = crop_and_pad(case.seg, corner, size, -1).astype(np.int16, copy=False)
        if case.previous_stage is not None:
            previous_patch = crop_and_pad(case.previous_stage, corner, size, -1).astype(np.int16, copy=False)
            seg_patch = np.concatenate([seg_patch, previous_patch])
        if is_2d:
            image_patch, seg_patch = image_patch[:, 0], seg_patch[:, 0]
        images.append(image_patch)
        segs.append(seg_patch)
    return Batch(
        image=torch.from_numpy(np.stack(images)).float(),
        seg=torch.from_numpy(np.stack(segs)),
        identifiers=tuple(chosen),
        index=index,
    )


class BatchStream:
    """Batches `start, start + 1, ...` made ahead of time on a background thread.

    Patch reads from memory maps and the copies release the GIL, so one thread keeps up with a
    training step on this machine's 2 cores without a second process. `pin_memory` speeds the
    host-to-GPU copy; it is pointless (and warns) without CUDA.
    """

    def __init__(
        self,
        cases: PreprocessedCases,
        sampling: PatchSampling,
        seed: int,
        start: int = 0,
        prefetch: int = 3,
        pin_memory: bool = False,
    ) -> None:
        self.cases, self.sampling, self.seed = cases, sampling, seed
        self.pin_memory = pin_memory
        self.next_index = start
        self._queue: queue.Queue[Batch | BaseException] = queue.Queue(maxsize=max(prefetch, 1))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, args=(start,), daemon=True)
        self._thread.start()

    def _produce(self, index: int) -> None:
        while not self._stop.is_set():
            try:
                batch = make_batch(self.cases, self.sampling, self.seed, index)
                if self.pin_memory:
                    batch = Batch(batch.image.pin_memory(), batch.seg.pin_memory(), batch.identifiers, index)
            except BaseException as error:  # handed to the consumer, which re-raises it
                self._put(error)
                return
            self._put(batch)
            index += 1

    def _put(self, item: Batch | BaseException) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def __iter__(self) -> Iterator[Batch]:
        return self

    def __next__(self) -> Batch:
        item = self._queue.get()
        if isinstance(item, BaseException):
            raise item
        self.next_index = item.index + 1
        return item

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def __enter__(self) -> BatchStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
