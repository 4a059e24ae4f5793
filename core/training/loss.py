"""The training loss (METHOD.md 5.2) and the pseudo-Dice of validation (5.6), as nnU-Net v2 computes them.

Label mode (softmax): cross-entropy plus soft Dice over the foreground classes, summed with weights 1 and
1 (upstream's `DC_and_CE_loss`). Region mode (sigmoid): binary cross-entropy on logits plus soft Dice over
every region (`DC_and_BCE_loss`). The Dice term is *negative*, so a perfect prediction scores about -1
and logged losses are often negative; that is the method, not a fault (METHOD.md 12.5).

Targets, per output:
* label mode: an integer label map (b, 1, *spatial); ignore voxels hold the ignore label;
* region mode: 0/1 (or bool) region masks (b, R, *spatial), plus one last channel, the ignore mask, when
  the dataset has an ignore label (the augmentation pipeline appends it, as upstream's
  `ConvertSegmentationToRegionsTransform` does).

Everything here is a function of tensors; `DeepSupervisionLoss` only holds the settings and weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from core.constants import TRAINING_DICE_DENOMINATOR_MIN, TRAINING_DICE_SMOOTH, TRAINING_PSEUDO_DICE_EMA_DECAY
from core.dataset import DatasetSpec
from core.plans import ConfigurationPlan


class LossInputError(ValueError):
    """Network outputs and targets that do not fit together (shapes, counts)."""


@dataclass(frozen=True)
class LossSettings:
    """What decides the loss: label or region mode, batch Dice (from the plans), the ignore label.

    In region mode only the presence of `ignore_label` matters: it says that the target's last channel
    is the ignore mask.
    """

    has_regions: bool
    is_batch_dice: bool
    ignore_label: int | None

    @classmethod
    def from_plans(cls, configuration: ConfigurationPlan, dataset: DatasetSpec) -> LossSettings:
        return cls(dataset.has_regions, configuration.batch_dice, dataset.ignore_label)


def soft_dice_loss(
    probabilities: Tensor,
    target: Tensor,
    *,
    is_batch_dice: bool,
    loss_mask: Tensor | None = None,
    smooth: float = TRAINING_DICE_SMOOTH,
) -> Tensor:
    """Negative mean soft Dice of `probabilities` (b, c, *spatial) against 0/1 `target` of that shape.

    Per channel `(2 * I + smooth) / max(sum_gt + sum_pred + smooth, 1e-8)`, sums over the spatial axes,
    and over the batch too when `is_batch_dice` (one Dice per channel, not per sample and channel).
    The mean runs over every remaining entry. `loss_mask` (b, 1, *spatial), 1 where annotated, removes
    voxels from all three sums. The target carries no gradient; sums accumulate in float32.
    """
    axes = tuple(range(2, probabilities.ndim))
    with torch.no_grad():
        target = target.to(torch.float32)
        if loss_mask is not None:
            target = target * loss_mask
        sum_gt = target.sum(axes, dtype=torch.float32)
    if loss_mask is not None:
        probabilities = probabilities * loss_mask
    intersection = (probabilities * target).sum(axes, dtype=torch.float32)
    sum_pred = probabilities.sum(axes, dtype=torch.float32)
    if is_batch_dice:
        intersection, sum_pred, sum_gt = intersection.sum(0), sum_pred.sum(0), sum_gt.sum(0)
    denominator = (sum_gt + sum_pred + smooth).clamp_min(TRAINING_DICE_DENOMINATOR_MIN)
    return -((2 * intersection + smooth) / denominator).mean()


def label_mode_loss(
    logits: Tensor, target: Tensor, *, is_batch_dice: bool, ignore_label: int | None
) -> Tensor:
    """Cross-entropy plus foreground soft Dice (`DC_and_CE_loss`), for `logits` (b, C, *spatial).

    Ignore voxels leave both terms. Cross-entropy is the mean over annotated voxels and 0 when a batch
    has none; it is computed as sum / max(count, 1), which equals upstream's skip without the host
    synchronisation its `if num_fg > 0` costs on a GPU.
    """
    _check_shapes(logits, target, expected_target_channels=1)
    labels = target[:, 0].long()
    if ignore_label is None:
        annotated = None
        dice_labels = labels
        cross_entropy = F.cross_entropy(logits, labels)
    else:
        annotated = target != ignore_label
        dice_labels = torch.where(annotated[:, 0], labels, 0)
        summed = F.cross_entropy(logits, labels, ignore_index=ignore_label, reduction="sum")
        cross_entropy = summed / annotated.sum().clamp_min(1).to(summed.dtype)
    with torch.no_grad():
        onehot = torch.zeros(logits.shape, device=logits.device, dtype=torch.float32)
        onehot.scatter_(1, dice_labels[:, None], 1)
    # Background is excluded from the Dice term (`do_bg=False`); softmax still runs over all classes.
    probabilities = torch.softmax(logits, 1)[:, 1:]
    dice = soft_dice_loss(probabilities, onehot[:, 1:], is_batch_dice=is_batch_dice, loss_mask=annotated)
    return cross_entropy + dice


def region_mode_loss(
    logits: Tensor, target: Tensor, *, is_batch_dice: bool, has_ignore_label: bool
) -> Tensor:
    """Binary cross-entropy on logits plus soft Dice over every region (`DC_and_BCE_loss`).

    With an ignore label the target's last channel is the ignore mask. The masked BCE then follows
    upstream exactly: summed over regions and annotated voxels, divided by the number of annotated voxels
    (not by regions x voxels), so it is R times the unmasked mean for the same voxels.
    """
    _check_shapes(logits, target, expected_target_channels=logits.shape[1] + int(has_ignore_label))
    if has_ignore_label:
        annotated = ~target[:, -1:].bool()
        regions = target[:, :-1]
    else:
        annotated = None
        regions = target
    dice = soft_dice_loss(torch.sigmoid(logits), regions, is_batch_dice=is_batch_dice, loss_mask=annotated)
    regions = regions.to(logits.dtype)
    if annotated is None:
        bce = F.binary_cross_entropy_with_logits(logits, regions)
    else:
        per_voxel = F.binary_cross_entropy_with_logits(logits, regions, reduction="none")
        bce = (per_voxel * annotated).sum() / annotated.sum(dtype=torch.float32).clamp_min(1e-8)
    return bce + dice


def segmentation_loss(logits: Tensor, target: Tensor, settings: LossSettings) -> Tensor:
    """The loss of one output: label or region mode as `settings` say."""
    if settings.has_regions:
        return region_mode_loss(
            logits,
            target,
            is_batch_dice=settings.is_batch_dice,
            has_ignore_label=settings.ignore_label is not None,
        )
    return label_mode_loss(
        logits, target, is_batch_dice=settings.is_batch_dice, ignore_label=settings.ignore_label
    )


def _check_shapes(logits: Tensor, target: Tensor, *, expected_target_channels: int) -> None:
    if (
        target.ndim != logits.ndim
        or target.shape[0] != logits.shape[0]
        or target.shape[2:] != logits.shape[2:]
        or target.shape[1] != expected_target_channels
    ):
        raise LossInputError(
            f"target of shape {tuple(target.shape)} does not fit logits of shape {tuple(logits.shape)}: "
            f"expected (b, {expected_target_channels}, *spatial) with the logits' batch and spatial size"
        )


# --- Deep supervision ---


def deep_supervision_scales(strides: Sequence[Sequence[int]]) -> tuple[tuple[float, ...], ...]:
    """Each decoder output's scale relative to the patch: 1 / cumprod(strides), all stages but the last.

    A network of n stages has n - 1 outputs, highest resolution first, e.g. strides (1,1),(2,2),(2,2)
    give (1.0, 1.0), (0.5, 0.5).
    """
    cumulative = np.cumprod(np.asarray(strides, dtype=np.int64), axis=0)
    return tuple(tuple(float(1 / v) for v in row) for row in cumulative[:-1])


def deep_supervision_weights(num_outputs: int) -> tuple[float, ...]:
    """Loss weight per output, highest resolution first: 1 / 2**i, the last set to 0, summing to 1.

    5 outputs give 0.5333, 0.2667, 0.1333, 0.0667, 0. A single output gets weight 1; upstream would
    divide 0 by 0 there and refuse the network.
    """
    if num_outputs < 1:
        raise LossInputError(f"deep supervision needs at least one output, got {num_outputs}")
    if num_outputs == 1:
        return (1.0,)
    weights = np.array([1 / 2**i for i in range(num_outputs)])
    weights[-1] = 0
    return tuple(float(w) for w in weights / weights.sum())


@dataclass(frozen=True)
class DeepSupervisionLoss:
    """The weighted sum of `segmentation_loss` over the network's outputs (`DeepSupervisionWrapper`).

    `outputs[i]` and `targets[i]` share a resolution, highest first; outputs with weight 0 are skipped.
    Build it with `DeepSupervisionLoss(settings, deep_supervision_weights(len(scales)))`.
    """

    settings: LossSettings
    weights: tuple[float, ...]

    def __post_init__(self) -> None:
        if not any(weight > 0 for weight in self.weights):
            raise LossInputError(f"deep supervision needs a positive weight, got {self.weights}")

    def __call__(self, outputs: Sequence[Tensor], targets: Sequence[Tensor]) -> Tensor:
        if len(outputs) != len(self.weights) or len(targets) != len(self.weights):
            raise LossInputError(
                f"{len(self.weights)} deep supervision weights, but {len(outputs)} outputs "
                f"and {len(targets)} targets"
            )
        terms = [
            weight * segmentation_loss(output, target, self.settings)
            for weight, output, target in zip(self.weights, outputs, targets, strict=True)
            if weight != 0
        ]
        return torch.stack(terms).sum()


# --- Pseudo-Dice (METHOD.md 5.6) ---


@dataclass(frozen=True)
class DiceCounts:
    """True positives, false positives and false negatives per foreground class or region (int64).

    Counts add up over the validation batches of an epoch, so the pseudo-Dice is one global Dice per
    class rather than a mean of per-patch values.
    """

    true_positives: np.ndarray
    false_positives: np.ndarray
    false_negatives: np.ndarray

    def __add__(self, other: DiceCounts) -> DiceCounts:
        return DiceCounts(
            self.true_positives + other.true_positives,
            self.false_positives + other.false_positives,
            self.false_negatives + other.false_negatives,
        )


def hard_dice_counts(logits: Tensor, target: Tensor, settings: LossSettings) -> DiceCounts:
    """Counts of one batch from the highest-resolution output and its target, with hard predictions.

    Label mode: argmax, background dropped, ignore voxels masked. Region mode: sigmoid > 0.5 per region,
    the target's last channel masking ignore voxels when there is an ignore label.
    """
    with torch.no_grad():
        if settings.has_regions:
            has_ignore = settings.ignore_label is not None
            _check_shapes(logits, target, expected_target_channels=logits.shape[1] + int(has_ignore))
            predicted = torch.sigmoid(logits) > 0.5
            reference = target[:, : logits.shape[1]].bool()
            annotated = ~target[:, -1:].bool() if has_ignore else torch.ones_like(predicted[:, :1])
        else:
            _check_shapes(logits, target, expected_target_channels=1)
            labels = target.long()
            annotated = (
                labels != settings.ignore_label
                if settings.ignore_label is not None
                else torch.ones_like(labels, dtype=torch.bool)
            )
            classes = torch.arange(1, logits.shape[1], device=logits.device).view(
                1, -1, *[1] * (logits.ndim - 2)
            )
            predicted = logits.argmax(1, keepdim=True) == classes
            reference = labels == classes
        axes = [0, *range(2, logits.ndim)]
        counts = [
            (a & b & annotated).sum(axes).cpu().numpy().astype(np.int64)
            for a, b in ((predicted, reference), (predicted, ~reference), (~predicted, reference))
        ]
    return DiceCounts(*counts)


def dice_per_class(counts: DiceCounts) -> np.ndarray:
    """Global Dice `2 TP / (2 TP + FP + FN)` per class; NaN where a class is absent from both."""
    tp = counts.true_positives.astype(np.float64)
    denominator = 2 * tp + counts.false_positives + counts.false_negatives
    safe = np.where(denominator > 0, denominator, 1)
    return np.where(denominator > 0, 2 * tp / safe, np.nan)


def mean_foreground_dice(per_class: np.ndarray) -> float:
    """The mean over classes that have a Dice (nanmean); NaN when none has."""
    present = per_class[~np.isnan(per_class)]
    return float(present.mean()) if present.size else float("nan")


def moving_average_dice(previous: float | None, current: float) -> float:
    """The pseudo-Dice moving average: the first epoch's value, then 0.9 * previous + 0.1 * current.

    As upstream, a NaN stays NaN once it enters the average.
    """
    if previous is None:
        return current
    return TRAINING_PSEUDO_DICE_EMA_DECAY * previous + (1 - TRAINING_PSEUDO_DICE_EMA_DECAY) * current
