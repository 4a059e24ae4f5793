"""The training and validation transforms of one batch, in the method's order (METHOD.md 5.5).

Front doors, as the trainer uses them:

    settings = configure_augmentation(configuration.patch_size, label_values, configuration.use_mask_for_norm)
    # the loader crops settings.initial_patch_size for training, the final patch for validation
    image, seg = augment_training_batch(image, seg, settings, generator)   # on the training device
    seg = prepare_validation_batch(seg)
    image, seg = append_previous_stage(image, seg, labels)                 # validation of a cascade
    targets = downsample_for_deep_supervision(seg, scales)                 # both, when deep supervision is on

Design: all random numbers of a batch are drawn first, on the host, from the caller's CPU generator
(`draw_augmentation`), into a small record of per-sample tensors; only then is the batch touched
(`apply_augmentation`). Every branch ("does sample 3 get blurred?") is thus decided on the host and never
waits for the device, the same seed gives the same parameters on CPU and GPU, and tests can build a draw by
hand to force one transform. The only device-side randomness is the Gaussian noise field, drawn from a
device generator seeded by the draw. Cost: the draw is a few dozen tiny host tensors per batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from core.augmentation._rows import ChannelDraw
from core.augmentation.cascade import CascadeDraw, apply_cascade, draw_cascade
from core.augmentation.filters import apply_blur, apply_low_resolution, draw_blur, draw_low_resolution
from core.augmentation.intensity import (
    apply_brightness,
    apply_contrast,
    apply_gamma,
    apply_noise,
    draw_brightness,
    draw_contrast,
    draw_gamma,
    draw_noise,
)
from core.augmentation.settings import OUTSIDE_LABEL, P_GAMMA, P_INVERTED_GAMMA, AugmentationSettings
from core.augmentation.spatial import SpatialDraw, apply_mirror, apply_spatial, draw_mirror, draw_spatial
from core.errors import ProblemsError

# Seeds for the device-side noise generator are drawn below this bound (any 63-bit value is valid).
_NOISE_SEED_BOUND = 2**62


class AugmentationInputError(ProblemsError):
    """The batch handed to the augmentation does not fit its settings; `problems` lists every mismatch."""


@dataclass(frozen=True)
class AugmentationDraw:
    """Every random number of one training batch, drawn before any voxel is touched."""

    spatial: SpatialDraw
    noise: ChannelDraw
    noise_seed: int
    blur: ChannelDraw
    brightness: ChannelDraw
    contrast: ChannelDraw
    low_resolution: ChannelDraw
    inverted_gamma: ChannelDraw
    gamma: ChannelDraw
    mirror: Tensor
    cascade: CascadeDraw | None = None


def draw_augmentation(
    settings: AugmentationSettings, batch_size: int, channels: int, generator: torch.Generator
) -> AugmentationDraw:
    """Draw the parameters of every transform for a batch, in a fixed order, from a CPU generator."""
    if generator.device.type != "cpu":
        raise ValueError(
            f"the augmentation draws its parameters from a CPU generator, got one on {generator.device}; "
            "the noise field is drawn on the batch's device from a seed in the draw"
        )
    dims = len(settings.patch_size)
    return AugmentationDraw(
        spatial=draw_spatial(settings, batch_size, generator),
        noise=draw_noise(generator, batch_size, channels),
        noise_seed=int(torch.randint(_NOISE_SEED_BOUND, (1,), generator=generator)),
        blur=draw_blur(generator, batch_size, channels, dims),
        brightness=draw_brightness(generator, batch_size, channels),
        contrast=draw_contrast(generator, batch_size, channels),
        low_resolution=draw_low_resolution(
            generator, batch_size, channels, dims, (0,) if settings.is_dummy_2d else ()
        ),
        inverted_gamma=draw_gamma(generator, batch_size, channels, P_INVERTED_GAMMA),
        gamma=draw_gamma(generator, batch_size, channels, P_GAMMA),
        mirror=draw_mirror(settings, batch_size, generator),
        cascade=draw_cascade(generator, batch_size, len(settings.previous_stage_labels))
        if settings.previous_stage_labels
        else None,
    )


def check_batch(image: Tensor, seg: Tensor, settings: AugmentationSettings, minimum: Sequence[int]) -> None:
    """Raise AugmentationInputError naming every way image (B, C, *S) and seg (B, 1, *S) do not fit
    (seg (B, 2, *S) for a cascade, the previous stage's segmentation second)."""
    dim = len(settings.patch_size)
    problems = []
    if not image.is_floating_point():
        problems.append(f"image must be a floating-point tensor, got {image.dtype}")
    if seg.is_floating_point() or seg.dtype in (torch.bool, torch.uint8):
        problems.append(f"seg must be a signed integer tensor (it holds {OUTSIDE_LABEL}), got {seg.dtype}")
    if image.ndim != dim + 2:
        problems.append(
            f"image must be (B, C, *spatial) with {dim} spatial axes, got shape {tuple(image.shape)}"
        )
    expected_seg = (image.shape[0], settings.seg_channels, *image.shape[2:])
    if tuple(seg.shape) != expected_seg:
        problems.append(f"seg must have shape {expected_seg} to match the image, got {tuple(seg.shape)}")
    if image.device != seg.device:
        problems.append(f"image is on {image.device} but seg on {seg.device}")
    if image.ndim == dim + 2 and any(s < m for s, m in zip(image.shape[2:], minimum, strict=True)):
        problems.append(f"spatial shape {tuple(image.shape[2:])} is smaller than {tuple(minimum)}")
    if problems:
        raise AugmentationInputError(problems)


def apply_augmentation(
    image: Tensor, seg: Tensor, draw: AugmentationDraw, settings: AugmentationSettings
) -> tuple[Tensor, Tensor]:
    """Apply a draw to a batch: image (B, C, *S) float and seg (B, 1, *S) signed integer, S at least the
    final patch (normally the initial patch). Returns the final-patch image and labels (outside label → 0);
    the inputs are not modified. A cascade's seg has the previous stage as channel 1, and its returned
    image the previous stage's one-hot channels appended (damaged by the draw's cascade part)."""
    check_batch(image, seg, settings, settings.patch_size)
    image, seg = apply_spatial(image, seg, draw.spatial, settings)
    apply_noise(image, draw.noise, torch.Generator(device=image.device).manual_seed(draw.noise_seed))
    apply_blur(image, draw.blur)
    apply_brightness(image, draw.brightness)
    apply_contrast(image, draw.contrast)
    apply_low_resolution(image, draw.low_resolution)
    apply_gamma(image, draw.inverted_gamma, is_inverted=True)
    apply_gamma(image, draw.gamma, is_inverted=False)
    apply_mirror(image, seg, draw.mirror, settings)
    outside = seg < 0
    for channel in settings.masked_channels:
        # these channels were normalised inside the nonzero mask only; keep the outside at exactly 0
        image[:, channel].masked_fill_(outside[:, 0], 0)
    # OUTSIDE_LABEL is the only negative value a segmentation holds, so clamping is step 13's relabelling
    seg = seg.clamp_(min=0)
    if draw.cascade is None:
        return image, seg
    return apply_cascade(image, seg, draw.cascade, settings.previous_stage_labels)


def augment_training_batch(
    image: Tensor, seg: Tensor, settings: AugmentationSettings, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """The training transform of METHOD.md 5.5 (steps 1-14) for one batch on its own device.

    `generator` is a CPU `torch.Generator`; the same seed gives the same batch on the same device.
    """
    return apply_augmentation(
        image, seg, draw_augmentation(settings, image.shape[0], image.shape[1], generator), settings
    )


def prepare_validation_batch(seg: Tensor) -> Tensor:
    """The validation transform (METHOD.md 5.5, step 13): no augmentation, the outside label becomes
    background. The image needs nothing; the returned seg is a new tensor."""
    return torch.where(seg == OUTSIDE_LABEL, torch.zeros_like(seg), seg)


def downsample_for_deep_supervision(seg: Tensor, scales: Sequence[Sequence[float]]) -> list[Tensor]:
    """Targets for each deep-supervision output (METHOD.md 5.2): seg (B, 1, *S) resized by nearest-exact
    interpolation to round(S * scale) per scale; a scale of all ones returns seg itself."""
    targets = []
    for scale in scales:
        if all(factor == 1 for factor in scale):
            targets.append(seg)
            continue
        size = [round(edge * factor) for edge, factor in zip(seg.shape[2:], scale, strict=True)]
        targets.append(F.interpolate(seg.float(), size=size, mode="nearest-exact").to(seg.dtype))
    return targets
