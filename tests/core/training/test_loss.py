"""Loss and pseudo-Dice (METHOD.md 5.2, 5.6) on tiny tensors whose values are worked out by hand."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from core.dataset import parse_dataset_json
from core.training.loss import (
    DeepSupervisionLoss,
    DiceCounts,
    LossInputError,
    LossSettings,
    deep_supervision_scales,
    deep_supervision_weights,
    dice_per_class,
    hard_dice_counts,
    label_mode_loss,
    mean_foreground_dice,
    moving_average_dice,
    region_mode_loss,
    segmentation_loss,
    soft_dice_loss,
)

S = 1e-5  # the method's Dice smoothing


def tensor(values: list) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


# --- Soft Dice ---


def test_soft_dice_of_one_channel() -> None:
    probabilities = tensor([[[1.0, 0.5, 0.0, 0.0]]])
    target = tensor([[[1, 1, 0, 0]]])
    # intersection 1.5, predicted 1.5, reference 2
    expected = -(3 + S) / (3.5 + S)
    assert soft_dice_loss(probabilities, target, is_batch_dice=False).item() == pytest.approx(expected)


def test_batch_dice_pools_the_samples_per_sample_dice_averages_them() -> None:
    probabilities = tensor([[[1.0, 0.0]], [[0.0, 0.0]]])
    target = tensor([[[1, 0]], [[0, 1]]])
    # Sample 0 is perfect (1), sample 1 misses its only voxel (0): per-sample mean 0.5.
    per_sample = soft_dice_loss(probabilities, target, is_batch_dice=False, smooth=0)
    # Pooled: intersection 1, predicted 1, reference 2 -> 2/3.
    batch = soft_dice_loss(probabilities, target, is_batch_dice=True, smooth=0)
    assert per_sample.item() == pytest.approx(-0.5)
    assert batch.item() == pytest.approx(-2 / 3)


def test_smoothing_makes_an_empty_channel_perfect() -> None:
    empty = torch.zeros(1, 1, 3)
    assert soft_dice_loss(empty, empty, is_batch_dice=False).item() == pytest.approx(-1.0)


def test_dice_gradient_reaches_the_probabilities() -> None:
    probabilities = tensor([[[0.2, 0.7]]]).requires_grad_()
    soft_dice_loss(probabilities, tensor([[[1, 0]]]), is_batch_dice=False).backward()
    assert probabilities.grad is not None
    assert probabilities.grad[0, 0, 0] < 0 < probabilities.grad[0, 0, 1]


# --- Label mode ---

# Two voxels, two classes: voxel 0 has softmax (0.25, 0.75), voxel 1 (0.5, 0.5); reference (1, 0).
LOGITS = tensor([[[0.0, 0.0], [math.log(3), 0.0]]])
TARGET = tensor([[[1, 0]]])
CROSS_ENTROPY = (-math.log(0.75) - math.log(0.5)) / 2
# Foreground Dice: intersection 0.75, predicted 1.25, reference 1.
FOREGROUND_DICE = (1.5 + S) / (2.25 + S)


def test_label_loss_is_cross_entropy_plus_negative_foreground_dice() -> None:
    loss = label_mode_loss(LOGITS, TARGET, is_batch_dice=False, ignore_label=None)
    assert loss.item() == pytest.approx(CROSS_ENTROPY - FOREGROUND_DICE, rel=1e-6)


def test_ignore_voxels_leave_both_terms() -> None:
    # A third voxel with the ignore label (2) and confident wrong logits changes nothing.
    logits = torch.cat([LOGITS, tensor([[[9.0], [-9.0]]])], dim=2)
    target = tensor([[[1, 0, 2]]])
    loss = label_mode_loss(logits, target, is_batch_dice=False, ignore_label=2)
    assert loss.item() == pytest.approx(CROSS_ENTROPY - FOREGROUND_DICE, rel=1e-6)


def test_batch_without_annotation_has_no_cross_entropy() -> None:
    target = tensor([[[2, 2]]])
    loss = label_mode_loss(LOGITS, target, is_batch_dice=True, ignore_label=2)
    # Cross-entropy is skipped; Dice of nothing against nothing is smooth / smooth = 1.
    assert loss.item() == pytest.approx(-1.0)


def test_label_loss_is_differentiable() -> None:
    logits = LOGITS.clone().requires_grad_()
    label_mode_loss(logits, TARGET, is_batch_dice=True, ignore_label=None).backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


@pytest.mark.parametrize(
    "target",
    [torch.zeros(1, 2), torch.zeros(1, 2, 2), torch.zeros(1, 1, 3), torch.zeros(2, 1, 2)],
    ids=["no-channel-axis", "one-hot", "spatial-mismatch", "batch-mismatch"],
)
def test_misshapen_label_targets_are_refused(target: torch.Tensor) -> None:
    with pytest.raises(LossInputError, match="does not fit"):
        label_mode_loss(LOGITS, target, is_batch_dice=False, ignore_label=None)


# --- Region mode ---

# Two regions over two voxels, every logit 0 (sigmoid 0.5, BCE ln 2 per entry).
REGION_LOGITS = torch.zeros(1, 2, 2)
REGION_TARGET = torch.tensor([[[True, False], [True, True]]])
REGION_DICE = ((1 + S) / (2 + S) + (2 + S) / (3 + S)) / 2


def test_region_loss_is_bce_plus_negative_dice_over_every_region() -> None:
    loss = region_mode_loss(REGION_LOGITS, REGION_TARGET, is_batch_dice=False, has_ignore_label=False)
    assert loss.item() == pytest.approx(math.log(2) - REGION_DICE, rel=1e-6)


def test_region_ignore_mask_is_the_last_target_channel() -> None:
    ignore = torch.tensor([[[False, True]]])
    target = torch.cat([REGION_TARGET, ignore], dim=1)
    loss = region_mode_loss(REGION_LOGITS, target, is_batch_dice=False, has_ignore_label=True)
    # Only voxel 0 counts. BCE: 2 regions x ln 2 over 1 annotated voxel (upstream divides by voxels,
    # not by regions x voxels). Dice per region: intersection 0.5, predicted 0.5, reference 1.
    expected = 2 * math.log(2) - (1 + S) / (1.5 + S)
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_region_target_without_the_ignore_channel_is_refused() -> None:
    with pytest.raises(LossInputError, match=r"expected \(b, 3"):
        region_mode_loss(REGION_LOGITS, REGION_TARGET, is_batch_dice=False, has_ignore_label=True)


def test_settings_choose_the_mode() -> None:
    regions = LossSettings(has_regions=True, is_batch_dice=False, ignore_label=None)
    labels = LossSettings(has_regions=False, is_batch_dice=False, ignore_label=None)
    assert segmentation_loss(REGION_LOGITS, REGION_TARGET, regions).item() == pytest.approx(
        math.log(2) - REGION_DICE, rel=1e-6
    )
    assert segmentation_loss(LOGITS, TARGET, labels).item() == pytest.approx(
        CROSS_ENTROPY - FOREGROUND_DICE, rel=1e-6
    )


def test_settings_from_plans_and_dataset() -> None:
    dataset = parse_dataset_json(
        {
            "channel_names": {"0": "MR"},
            "labels": {"background": 0, "whole": [1, 2], "core": 2, "ignore": 3},
            "regions_class_order": [1, 2],
            "numTraining": 1,
            "file_ending": ".nii.gz",
        }
    )
    configuration = SimpleNamespace(batch_dice=True)
    settings = LossSettings.from_plans(configuration, dataset)  # type: ignore[arg-type]
    assert settings == LossSettings(has_regions=True, is_batch_dice=True, ignore_label=3)


# --- Deep supervision ---


def test_deep_supervision_weights_of_the_method() -> None:
    assert deep_supervision_weights(5) == pytest.approx((8 / 15, 4 / 15, 2 / 15, 1 / 15, 0.0))
    assert deep_supervision_weights(5) == pytest.approx((0.5333, 0.2667, 0.1333, 0.0667, 0), abs=1e-4)
    assert deep_supervision_weights(2) == (1.0, 0.0)
    assert deep_supervision_weights(1) == (1.0,)


def test_deep_supervision_needs_an_output() -> None:
    with pytest.raises(LossInputError):
        deep_supervision_weights(0)


def test_deep_supervision_loss_needs_a_positive_weight() -> None:
    settings = LossSettings(has_regions=False, is_batch_dice=False, ignore_label=None)
    with pytest.raises(LossInputError, match="positive weight"):
        DeepSupervisionLoss(settings, (0.0, 0.0))


def test_deep_supervision_scales_from_strides() -> None:
    strides = [[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2]]
    assert deep_supervision_scales(strides) == (
        (1.0, 1.0, 1.0),
        (1.0, 0.5, 0.5),
        (0.5, 0.25, 0.25),
    )


def test_deep_supervision_loss_is_the_weighted_sum() -> None:
    settings = LossSettings(has_regions=False, is_batch_dice=False, ignore_label=None)
    low_logits, low_target = LOGITS[..., :1], TARGET[..., :1]
    # The last output has weight 0 and is never evaluated, so even a misshapen one passes.
    outputs = [LOGITS, low_logits, torch.zeros(1, 2, 7)]
    targets = [TARGET, low_target, torch.zeros(1, 1, 1)]
    loss = DeepSupervisionLoss(settings, deep_supervision_weights(3))(outputs, targets)
    expected = 2 / 3 * segmentation_loss(LOGITS, TARGET, settings) + 1 / 3 * segmentation_loss(
        low_logits, low_target, settings
    )
    assert loss.item() == pytest.approx(expected.item())


def test_deep_supervision_loss_refuses_a_wrong_output_count() -> None:
    settings = LossSettings(has_regions=False, is_batch_dice=False, ignore_label=None)
    with pytest.raises(LossInputError, match="3 deep supervision weights, but 2 outputs"):
        DeepSupervisionLoss(settings, deep_supervision_weights(3))([LOGITS] * 2, [TARGET] * 2)


# --- Pseudo-Dice ---


def one_hot_logits(labels: list[list[int]], num_classes: int) -> torch.Tensor:
    """Logits whose argmax is `labels` (b, *spatial)."""
    return torch.nn.functional.one_hot(torch.tensor(labels), num_classes).movedim(-1, 1).float()


def test_label_counts_drop_background_and_ignore_voxels() -> None:
    settings = LossSettings(has_regions=False, is_batch_dice=False, ignore_label=3)
    logits = one_hot_logits([[1, 1, 2, 0, 2]], 3)
    target = tensor([[[1, 0, 0, 2, 3]]])
    counts = hard_dice_counts(logits, target, settings)
    # class 1: voxel 0 hit, voxel 1 false positive; class 2: voxel 2 false positive, voxel 3 missed;
    # voxel 4 (predicted 2) is ignored.
    np.testing.assert_array_equal(counts.true_positives, [1, 0])
    np.testing.assert_array_equal(counts.false_positives, [1, 1])
    np.testing.assert_array_equal(counts.false_negatives, [0, 1])


def test_region_counts_threshold_the_sigmoid() -> None:
    settings = LossSettings(has_regions=True, is_batch_dice=False, ignore_label=4)
    logits = tensor([[[2.0, -2.0, 1.0], [-1.0, -1.0, 3.0]]])
    target = torch.tensor([[[True, True, False], [False, False, True], [False, False, True]]])
    counts = hard_dice_counts(logits, target, settings)
    # The last voxel is ignored: region 0 hits voxel 0 and misses voxel 1; region 1 is absent.
    np.testing.assert_array_equal(counts.true_positives, [1, 0])
    np.testing.assert_array_equal(counts.false_positives, [0, 0])
    np.testing.assert_array_equal(counts.false_negatives, [1, 0])


def test_counts_accumulate_into_a_global_dice_with_nan_for_absent_classes() -> None:
    first = DiceCounts(np.array([1, 0, 0]), np.array([1, 0, 2]), np.array([0, 0, 0]))
    second = DiceCounts(np.array([3, 0, 0]), np.array([0, 0, 0]), np.array([1, 0, 0]))
    per_class = dice_per_class(first + second)
    # class 1: 2*4 / (8 + 1 + 1); class 2: absent everywhere; class 3: only false positives.
    np.testing.assert_allclose(per_class, [0.8, np.nan, 0.0])
    assert mean_foreground_dice(per_class) == pytest.approx(0.4)
    assert math.isnan(mean_foreground_dice(np.array([np.nan, np.nan])))


def test_moving_average_starts_at_the_first_value() -> None:
    ema = moving_average_dice(None, 0.5)
    assert ema == 0.5
    assert moving_average_dice(ema, 1.0) == pytest.approx(0.55)
