"""Data augmentation on the training device, batched (METHOD.md 5.5); see `pipeline` for how it is used."""

from core.augmentation.cascade import append_previous_stage
from core.augmentation.pipeline import (
    AugmentationDraw,
    AugmentationInputError,
    apply_augmentation,
    augment_training_batch,
    downsample_for_deep_supervision,
    draw_augmentation,
    prepare_validation_batch,
)
from core.augmentation.settings import AugmentationSettings, configure_augmentation, initial_patch_size

__all__ = [
    "AugmentationDraw",
    "AugmentationInputError",
    "AugmentationSettings",
    "append_previous_stage",
    "apply_augmentation",
    "augment_training_batch",
    "configure_augmentation",
    "downsample_for_deep_supervision",
    "draw_augmentation",
    "initial_patch_size",
    "prepare_validation_batch",
]
