"""What the training augmentation does for one configuration, and the method's numbers behind it.

The probabilities and ranges are nnU-Net v2's `get_training_transforms` (METHOD.md 5.5); the per-configuration
choices (rotation range, mirror axes, the "dummy 2D" rule, the enlarged patch the loader must crop) are its
`configure_rotation_dummyDA_mirroring_and_inital_patch_size`. Everything random is drawn elsewhere
(`pipeline.draw_augmentation`); this module only holds what is fixed for a whole training run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# --- Spatial transform (METHOD.md 5.5, step 2) ---
P_ROTATION = 0.2
P_SCALING = 0.2
# One factor for all axes; a factor above 1 samples a larger region, so objects shrink.
SCALING_RANGE = (0.7, 1.4)
# Rotation ranges of the configuration table, in degrees.
ROTATION_2D_ELONGATED_DEG = 15.0
ROTATION_2D_DEG = 180.0
ROTATION_3D_DEG = 30.0
ROTATION_DUMMY_2D_DEG = 180.0
# A 2D patch counts as elongated (smaller rotations) above this max/min edge ratio.
ELONGATED_2D_PATCH_RATIO = 1.5
# A 3D patch is augmented slice-wise ("dummy 2D") when max(patch) / patch[0] exceeds this (`ANISO_THRESHOLD`).
DUMMY_2D_ANISOTROPY_THRESHOLD = 3.0
# `get_patch_size` clips each rotation at 90 degrees and divides by the smaller bound of the *legacy* scale
# range (0.85, 1.25), not of SCALING_RANGE; upstream keeps this oddity and so do we, since the loader's crop
# size (and so the sampled context) depends on it.
INITIAL_PATCH_MAX_ROTATION_DEG = 90.0
INITIAL_PATCH_MIN_SCALE = 0.85

# --- Intensity transforms (METHOD.md 5.5, steps 4-10); p_* are per sample, p_*_channel per channel ---
P_NOISE = 0.1
NOISE_STD_RANGE = (0.0, 0.1)
P_BLUR = 0.2
P_BLUR_CHANNEL = 0.5
BLUR_SIGMA_RANGE = (0.5, 1.0)
# Kernel size = nearest odd number to sigma * truncate + 0.5 (batchgeneratorsv2 `blur_dimension`).
BLUR_TRUNCATE = 6.0
P_BRIGHTNESS = 0.15
BRIGHTNESS_RANGE = (0.75, 1.25)
P_CONTRAST = 0.15
CONTRAST_RANGE = (0.75, 1.25)
P_LOW_RESOLUTION = 0.25
P_LOW_RESOLUTION_CHANNEL = 0.5
LOW_RESOLUTION_ZOOM_RANGE = (0.5, 1.0)
P_INVERTED_GAMMA = 0.1
P_GAMMA = 0.3
GAMMA_RANGE = (0.7, 1.5)

# --- Mirroring and labels (METHOD.md 5.5, steps 11-13) ---
P_MIRROR_PER_AXIS = 0.5
# The loader pads the segmentation with this value outside the image (5.3), and the spatial transform
# writes it where the rotated patch leaves the crop; it becomes background at the end.
OUTSIDE_LABEL = -1


@dataclass(frozen=True)
class AugmentationSettings:
    """The fixed part of the augmentation for one configuration; build it with `configure_augmentation`.

    `patch_size` is the final patch in the configuration's axis order ((z, y, x) or (y, x)).
    `label_values` lists every value the segmentation may hold besides `OUTSIDE_LABEL` (background,
    foreground labels and the ignore label): the spatial transform resamples one indicator per value, so a
    value missing here would be lost. `masked_channels` are the channels with `use_mask_for_norm`.
    `previous_stage_labels` (cascade only) are the foreground labels whose one-hot channels of the
    previous stage's segmentation (seg channel 1) are appended to the image (METHOD.md 5.5, step 14).
    """

    patch_size: tuple[int, ...]
    rotation_max_rad: float
    is_dummy_2d: bool
    mirror_axes: tuple[int, ...]
    label_values: tuple[int, ...]
    masked_channels: tuple[int, ...]
    previous_stage_labels: tuple[int, ...] = ()

    @property
    def initial_patch_size(self) -> tuple[int, ...]:
        """The enlarged patch the data loader crops, so that rotation and scaling see real context."""
        return initial_patch_size(self.patch_size, self.rotation_max_rad, self.is_dummy_2d)

    @property
    def seg_channels(self) -> int:
        """The labels, and for a cascade the previous stage's segmentation after them."""
        return 2 if self.previous_stage_labels else 1

    @property
    def resampled_axes(self) -> tuple[int, ...]:
        """Spatial axes the rotation/scaling acts on: axis 0 is left alone in dummy-2D mode."""
        dim = len(self.patch_size)
        return tuple(range(1, dim)) if self.is_dummy_2d else tuple(range(dim))

    @property
    def rotation_count(self) -> int:
        """Angles drawn per sample: one per axis in 3D, a single in-plane angle in 2D and dummy 2D."""
        return len(self.resampled_axes) if len(self.resampled_axes) == 3 else 1


def configure_augmentation(
    patch_size: Sequence[int],
    label_values: Sequence[int],
    use_mask_for_norm: Sequence[bool] = (),
    previous_stage_labels: Sequence[int] = (),
) -> AugmentationSettings:
    """Apply the method's rotation/mirroring table (METHOD.md 5.5) to a configuration's patch size.

    The trainer calls this once per run with `configuration.patch_size`, the dataset's label values,
    `configuration.use_mask_for_norm` and, for a cascade, the foreground labels.
    """
    patch = tuple(int(v) for v in patch_size)
    labels = tuple(int(v) for v in label_values)
    problems = []
    if len(patch) not in (2, 3) or min(patch, default=0) < 1:
        problems.append(f"patch_size must be 2 or 3 positive edge lengths, got {patch}")
    if not labels or min(labels) < 0 or len(set(labels)) != len(labels):
        problems.append(f"label_values must be distinct non-negative integers, got {labels}")
    if problems:
        raise ValueError("; ".join(problems))
    if len(patch) == 2:
        is_dummy_2d = False
        is_elongated = max(patch) / min(patch) > ELONGATED_2D_PATCH_RATIO
        rotation_deg = ROTATION_2D_ELONGATED_DEG if is_elongated else ROTATION_2D_DEG
    else:
        is_dummy_2d = max(patch) / patch[0] > DUMMY_2D_ANISOTROPY_THRESHOLD
        rotation_deg = ROTATION_DUMMY_2D_DEG if is_dummy_2d else ROTATION_3D_DEG
    return AugmentationSettings(
        patch_size=patch,
        rotation_max_rad=math.radians(rotation_deg),
        is_dummy_2d=is_dummy_2d,
        mirror_axes=tuple(range(len(patch))),
        label_values=tuple(sorted(labels)),
        masked_channels=tuple(i for i, is_masked in enumerate(use_mask_for_norm) if is_masked),
        previous_stage_labels=tuple(int(v) for v in previous_stage_labels),
    )


def _axis_rotation(axis: int, angle_rad: float) -> np.ndarray:
    """Rotation about one axis of a 3-vector (axis 0 turns axes 1 and 2), as batchgenerators builds it."""
    c, s = math.cos(angle_rad), math.sin(angle_rad)
    if axis == 0:
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    if axis == 1:
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def initial_patch_size(
    patch_size: Sequence[int], rotation_max_rad: float, is_dummy_2d: bool
) -> tuple[int, ...]:
    """nnU-Net v2's `get_patch_size` (METHOD.md 5.5): the bounding extent of the patch rotated about each
    axis in turn by the largest angle (clipped at 90 degrees), divided by the legacy 0.85 scale bound and
    truncated. With dummy 2D, axis 0 keeps the final size because nothing moves along it.
    """
    extent = np.array(patch_size, dtype=float)
    angle = min(math.radians(INITIAL_PATCH_MAX_ROTATION_DEG), abs(rotation_max_rad))
    bound = extent.copy()
    if len(extent) == 3:
        for axis in range(3):
            bound = np.maximum(bound, np.abs(extent @ _axis_rotation(axis, angle)))
    else:
        c, s = math.cos(angle), math.sin(angle)
        bound = np.maximum(bound, np.abs(extent @ np.array([[c, -s], [s, c]])))
    result = [int(v) for v in bound / INITIAL_PATCH_MIN_SCALE]
    if is_dummy_2d:
        result[0] = int(patch_size[0])
    return tuple(result)
