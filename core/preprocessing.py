"""Preprocessing (METHOD.md 4): raw cases → normalized, resampled arrays in the network's axis order.

Three tiers, as in nnU-Net's DefaultPreprocessor: `preprocess_case_arrays` (arrays in, arrays out, no
disk), `preprocess_case_files` (reads one case's files) and `preprocess` (a whole dataset, in worker
processes, written atomically and resumable). `revert_segmentation_geometry` undoes the geometry steps
for a label map, so that results can be written onto the original image grid.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from core.class_locations import ClassKey, class_location_keys, sample_class_locations
from core.constants import SEG_INT8_MAX_LABEL
from core.cropping import crop_to_nonzero
from core.dataset import DatasetError, TrainingCase, load_dataset
from core.geometry import Geometry
from core.io import read_image, read_segmentation
from core.normalization import normalize
from core.parallel import ProgressCallback, default_workers, map_cases, no_progress
from core.plans import ConfigurationPlan, Plans
from core.preprocessed import GT_FOLDER, CaseProperties, read_case_document, save_case
from core.resampling import compute_new_shape, resample

logger = logging.getLogger(__name__)

# Bump when the preprocessed files change meaning, so that existing outputs are redone.
PREPROCESSED_FORMAT_VERSION = 1


def target_spacing(configuration: ConfigurationPlan, spacing: Sequence[float]) -> list[float]:
    """The configuration's spacing; a 2D configuration keeps the case's own first-axis spacing."""
    target = [float(s) for s in configuration.spacing]
    if len(target) < len(spacing):
        target = [float(spacing[0]), *target]
    return target


def _seg_dtype(seg: np.ndarray) -> np.dtype:
    return np.dtype(np.int16 if seg.size and seg.max() > SEG_INT8_MAX_LABEL else np.int8)


def preprocess_case_arrays(
    data: np.ndarray,
    seg: np.ndarray | None,
    geometry: Geometry,
    plans: Plans,
    configuration_name: str,
    class_location_keys: Sequence[ClassKey] = (),
) -> tuple[np.ndarray, np.ndarray | None, CaseProperties]:
    """Transpose, crop to nonzero, normalize, resample; sample class locations (METHOD.md 4.1).

    `data` is (channels, z, y, x) in the reader's axis order, `seg` (1, z, y, x) or None (test
    cases; or a previous stage's segmentation for a cascade, with no keys). Normalization runs before
    resampling so that the nonzero mask still fits the image. Returns float32 data, the label map as
    int8/int16 (None when none was given) and the properties needed to revert the geometry.
    """
    configuration = plans.configuration(configuration_name)
    axes = [0, *(axis + 1 for axis in plans.transpose_forward)]
    data = data.transpose(axes)
    spacing = [geometry.spacing[axis] for axis in plans.transpose_forward]
    shape_before_cropping = tuple(int(n) for n in data.shape[1:])
    has_seg = seg is not None
    cropped, cropped_seg, box = crop_to_nonzero(data, None if seg is None else seg.transpose(axes))
    cropped_shape = tuple(int(n) for n in cropped.shape[1:])
    new_spacing = target_spacing(configuration, spacing)
    new_shape = compute_new_shape(cropped_shape, spacing, new_spacing)

    work = np.array(cropped, dtype=np.float32)
    normalize(
        work,
        cropped_seg,
        configuration.normalization_schemes,
        configuration.use_mask_for_norm,
        plans.foreground_intensity_properties_per_channel,
    )
    work = resample(work, new_shape, spacing, new_spacing, configuration.resampling_fn_data_kwargs)
    locations = {}
    out_seg = None
    if has_seg:
        out_seg = resample(
            cropped_seg, new_shape, spacing, new_spacing, configuration.resampling_fn_seg_kwargs
        )
        if class_location_keys:
            locations = sample_class_locations(out_seg, class_location_keys)
        out_seg = out_seg.astype(_seg_dtype(out_seg), copy=False)
    properties = CaseProperties(
        geometry=geometry,
        shape_before_cropping=shape_before_cropping,
        bbox_used_for_cropping=tuple((start, stop) for start, stop in box),
        shape_after_cropping_and_before_resampling=cropped_shape,
        class_locations=locations,
    )
    return work, out_seg, properties


def preprocess_case_files(
    image_paths: Sequence[Path],
    seg_path: Path | None,
    plans: Plans,
    configuration_name: str,
    class_location_keys: Sequence[ClassKey] = (),
) -> tuple[np.ndarray, np.ndarray | None, CaseProperties]:
    """`preprocess_case_arrays` on one case's channel files and optional label file."""
    data, geometry = read_image(image_paths)
    seg = None if seg_path is None else read_segmentation(seg_path)[0][None]
    return preprocess_case_arrays(data, seg, geometry, plans, configuration_name, class_location_keys)


def revert_segmentation_geometry(
    seg: np.ndarray, properties: CaseProperties, plans: Plans, configuration_name: str
) -> np.ndarray:
    """Map a preprocessed (z, y, x) label map back onto the original image grid (reader axis order).

    Resamples to the cropped shape (the plans' seg resampling), pastes into the uncropped shape
    (0 outside the crop; the -1 "outside" marker becomes 0 too) and undoes the transpose.
    """
    configuration = plans.configuration(configuration_name)
    spacing = [properties.spacing[axis] for axis in plans.transpose_forward]
    current = target_spacing(configuration, spacing)
    cropped = resample(
        seg[None],
        properties.shape_after_cropping_and_before_resampling,
        current,
        spacing,
        configuration.resampling_fn_seg_kwargs,
    )[0]
    full = np.zeros(properties.shape_before_cropping, dtype=cropped.dtype)
    full[tuple(slice(start, stop) for start, stop in properties.bbox_used_for_cropping)] = cropped
    np.maximum(full, 0, out=full)
    return full.transpose(plans.transpose_backward)


def preprocessing_hash(plans: Plans, configuration_name: str, class_location_keys: Sequence[ClassKey]) -> str:
    """A digest of everything in the plans (and labels) that changes the preprocessed files."""
    configuration = plans.configuration(configuration_name)
    relevant = {
        "format": PREPROCESSED_FORMAT_VERSION,
        "transpose_forward": list(plans.transpose_forward),
        "intensity": plans.foreground_intensity_properties_per_channel,
        "spacing": list(configuration.spacing),
        "normalization_schemes": list(configuration.normalization_schemes),
        "use_mask_for_norm": list(configuration.use_mask_for_norm),
        "data": configuration.resampling_fn_data_kwargs,
        "seg": configuration.resampling_fn_seg_kwargs,
        "keys": [list(k) if isinstance(k, tuple) else k for k in class_location_keys],
    }
    text = json.dumps(relevant, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class _CaseTask:
    case: TrainingCase
    plans: Plans
    configuration_name: str
    keys: tuple[ClassKey, ...]
    folder: Path
    digest: str
    blas_threads: int


def _preprocess_and_save(task: _CaseTask) -> float:
    """Worker body: one case from files to disk; returns its seconds.

    Resampling is matrix products; BLAS would start a thread per core in every worker, and the
    oversubscription made two workers on two cores 2.5x slower than one thread each (measured).
    """
    start = time.perf_counter()
    with threadpool_limits(limits=task.blas_threads, user_api="blas"):
        data, seg, properties = preprocess_case_files(
            task.case.images, task.case.label, task.plans, task.configuration_name, task.keys
        )
    save_case(task.folder, task.case.identifier, data, seg, properties, task.digest)
    return time.perf_counter() - start


@dataclass(frozen=True)
class PreprocessingSummary:
    """What a `preprocess` run did: output folder, cases written now and cases already up to date."""

    folder: Path
    processed: tuple[str, ...]
    skipped: tuple[str, ...]
    seconds_per_case: tuple[float, ...]


def preprocess(
    raw_dir: Path,
    plans: Plans,
    configuration: str,
    out_dir: Path,
    workers: int | None = None,
    progress: ProgressCallback = no_progress,
) -> PreprocessingSummary:
    """Preprocess every training case of `raw_dir` into `out_dir / <data_identifier>`.

    `out_dir` is the dataset's preprocessed folder; the label files are also copied to
    `out_dir / gt_segmentations` for validation without the raw data. Cases finished by an earlier
    run with the same preprocessing hash are skipped; cases with another hash are redone.
    """
    spec, cases = load_dataset(Path(raw_dir))
    unlabeled = [case.identifier for case in cases if case.label is None]
    if unlabeled:
        raise DatasetError([f"{name}: training case has no label file" for name in unlabeled])
    keys = tuple(class_location_keys(spec))
    folder = Path(out_dir) / plans.configuration(configuration).data_identifier
    digest = preprocessing_hash(plans, configuration, keys)
    workers = workers or default_workers()
    blas_threads = max(1, (os.cpu_count() or 1) // workers)
    pending, skipped = [], []
    for case in cases:
        document = read_case_document(folder, case.identifier)
        if document is not None and document.get("preprocessing_hash") == digest:
            skipped.append(case.identifier)
        else:
            task = _CaseTask(case, plans, configuration, keys, folder, digest, blas_threads)
            pending.append(task)
    logger.info("preprocessing %d cases into %s (%d up to date)", len(pending), folder, len(skipped))
    folder.mkdir(parents=True, exist_ok=True)
    seconds = []
    if pending:
        jobs = map_cases(
            _preprocess_and_save,
            pending,
            workers,
            progress,
            stage="preprocess",
            describe=lambda task: task.case.identifier,
        )
        seconds = [case_seconds for _, case_seconds in jobs]
    else:
        progress(1.0, "preprocess", f"all {len(skipped)} cases up to date")
    copy_ground_truth(cases, Path(out_dir) / GT_FOLDER, spec.file_ending)
    return PreprocessingSummary(
        folder=folder,
        processed=tuple(task.case.identifier for task in pending),
        skipped=tuple(skipped),
        seconds_per_case=tuple(seconds),
    )


def copy_ground_truth(cases: Sequence[TrainingCase], target: Path, file_ending: str) -> None:
    """Copy label files that are missing or differ in size or time, each via a renamed temporary."""
    target.mkdir(parents=True, exist_ok=True)
    for case in cases:
        if case.label is None:
            continue
        destination = target / f"{case.identifier}{file_ending}"
        source_stat = case.label.stat()
        if destination.exists():
            existing = destination.stat()
            if (existing.st_size, existing.st_mtime_ns) == (
                source_stat.st_size,
                source_stat.st_mtime_ns,
            ):
                continue
        temporary = destination.with_name(f".{destination.name}.partial")
        shutil.copy2(case.label, temporary)
        os.replace(temporary, destination)
