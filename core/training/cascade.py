"""The cascade's previous-stage segmentations (METHOD.md 3.6, 5.8): written by 3d_lowres fold
validation, read by 3d_cascade_fullres training and fold validation.

Layout, as nnU-Net v2's: `MODEL_DIR/<previous>/predicted_next_stage/<next>/CASE.npy`, one folder for all
folds (each case is validated by exactly one fold). A file holds the previous stage's segmentation on the
*next* stage's preprocessed grid, (1, z, y, x) int8 (int16 above label 127) like `CASE_seg.npy`, so that
the data loader crops it beside the labels: the previous stage's fold-averaged logits are resampled from
its grid to the next stage's preprocessed shape with the probability resampling of the plans, then
arg-maxed (or painted, for regions). Both grids cover the same nonzero crop box, so no other geometry is
needed. nnU-Net v2 passes the previous stage's spacing as both current and target spacing there; we pass
the true target spacing, which only matters for the separate-z decision of strongly anisotropic data.

Only numbered folds write them: fold `all` validates on its own training cases, whose predictions would
teach the cascade to trust the previous stage more than it should.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from core.errors import ProblemsError
from core.inference.export import OutputLayout
from core.plans import Plans
from core.preprocessed import CaseProperties, load_case, save_array
from core.preprocessing import target_spacing
from core.resampling import resample
from core.training.splits import Split

logger = logging.getLogger(__name__)

PREDICTED_NEXT_STAGE = "predicted_next_stage"
SUFFIX = ".npy"


class PreviousStageError(ProblemsError):
    """The previous stage's cross-validation predictions a cascade needs are missing or do not fit."""


def next_stage_folder(model_dir: Path, configuration: str, next_configuration: str) -> Path:
    return Path(model_dir) / configuration / PREDICTED_NEXT_STAGE / next_configuration


def previous_stage_folder(model_dir: Path, plans: Plans, configuration: str) -> Path:
    """Where the previous stage of `configuration` (a cascade) left its segmentations for it."""
    previous = plans.configuration(configuration).previous_stage
    if previous is None:
        raise ValueError(f"{configuration} has no previous stage")
    return next_stage_folder(model_dir, previous, configuration)


def next_stage_segmentation(
    logits: torch.Tensor,
    properties: CaseProperties,
    plans: Plans,
    configuration: str,
    next_configuration: str,
    next_shape: Sequence[int],
    layout: OutputLayout,
) -> np.ndarray:
    """(1, *next_shape) label map from host logits (K, *preprocessed shape of `configuration`)."""
    spacing = [properties.spacing[axis] for axis in plans.transpose_forward]
    current = target_spacing(plans.configuration(configuration), spacing)
    target = target_spacing(plans.configuration(next_configuration), spacing)
    kwargs = plans.configuration(configuration).resampling_fn_probabilities_kwargs
    resampled = resample(logits.numpy(), tuple(next_shape), current, target, kwargs)
    segmentation = layout.segmentation(torch.from_numpy(resampled))
    return segmentation.astype(np.int8 if layout.max_label <= 127 else np.int16)[None]


def write_next_stage_segmentation(
    logits: torch.Tensor,
    properties: CaseProperties,
    plans: Plans,
    configuration: str,
    identifier: str,
    preprocessed_dir: Path,
    out_dir: Path,
    layout: OutputLayout,
) -> Path | None:
    """Write `out_dir/CASE.npy` for the configuration's next stage; None (with a warning) when the next
    stage's preprocessed case, whose shape it needs, does not exist."""
    next_configuration = plans.configuration(configuration).next_stage
    if next_configuration is None:
        raise ValueError(f"{configuration} has no next stage")
    data_dir = Path(preprocessed_dir) / plans.configuration(next_configuration).data_identifier
    try:
        data, _, _ = load_case(data_dir, identifier)
    except FileNotFoundError:
        logger.warning(
            "%s: not preprocessed for %s (%s), so its next-stage segmentation is not written; "
            "preprocess that configuration and validate again",
            identifier,
            next_configuration,
            data_dir,
        )
        return None
    segmentation = next_stage_segmentation(
        logits, properties, plans, configuration, next_configuration, data.shape[1:], layout
    )
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    path = Path(out_dir) / f"{identifier}{SUFFIX}"
    save_array(path, segmentation)
    return path


def load_previous_stage(folder: Path, identifier: str, mmap: bool = True) -> np.ndarray:
    """The (1, z, y, x) previous-stage segmentation of one case."""
    return np.load(Path(folder) / f"{identifier}{SUFFIX}", mmap_mode="r" if mmap else None)


def check_previous_stage(
    folder: Path,
    data_dir: Path,
    identifiers: Sequence[str],
    splits: Sequence[Split],
    previous_configuration: str,
) -> None:
    """Raise PreviousStageError naming every case of `identifiers` without a fitting segmentation in
    `folder`, grouped by the previous stage's fold that validates it (and so must write it)."""
    fold_of = {case: fold for fold, split in enumerate(splits) for case in split.val}
    missing: dict[int | None, list[str]] = {}
    problems = []
    for identifier in identifiers:
        path = Path(folder) / f"{identifier}{SUFFIX}"
        if not path.is_file():
            missing.setdefault(fold_of.get(identifier), []).append(identifier)
            continue
        shape = load_previous_stage(folder, identifier).shape
        expected = (1, *load_case(data_dir, identifier)[0].shape[1:])
        if shape != expected:
            problems.append(
                f"{path}: shape {shape}, but the preprocessed case is {expected}; validate the "
                f"{previous_configuration} fold of {identifier} again"
            )
    for fold, cases in sorted(missing.items(), key=lambda item: -1 if item[0] is None else item[0]):
        names = ", ".join(cases)
        if fold is None:
            problems.append(
                f"no previous-stage segmentation in {folder} for {names}, and no fold of the splits "
                f"validates them, so no {previous_configuration} fold can write them"
            )
            continue
        problems.append(
            f"{previous_configuration} fold {fold}: no previous-stage segmentation in {folder} for "
            f"{names}; train and validate {previous_configuration} fold {fold} first (the cascade needs "
            "every fold's validation predictions)"
        )
    if problems:
        raise PreviousStageError(problems)
