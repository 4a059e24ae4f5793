"""nnU-Net v2's loss and pseudo-Dice counts equal ours on the same random outputs (METHOD.md 5.2, 5.6)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from core.training.loss import DeepSupervisionLoss, LossSettings, deep_supervision_weights, hard_dice_counts
from tests.reference import run_reference

pytestmark = pytest.mark.parity

# name -> (settings, number of classes or regions)
SCENARIOS = {
    "labels": (LossSettings(has_regions=False, is_batch_dice=False, ignore_label=None), 3),
    "labels_batch_ignore": (LossSettings(has_regions=False, is_batch_dice=True, ignore_label=3), 3),
    "regions_batch": (LossSettings(has_regions=True, is_batch_dice=True, ignore_label=None), 2),
    "regions_ignore": (LossSettings(has_regions=True, is_batch_dice=False, ignore_label=3), 2),
}
SHAPES = [(2, 16, 12), (2, 8, 6), (2, 4, 3)]  # (batch, *spatial) per deep supervision output


def make_outputs(settings: LossSettings, channels: int, seed: int) -> tuple[list, list]:
    generator = np.random.default_rng(seed)
    logits, targets = [], []
    for batch, *spatial in SHAPES:
        logits.append(generator.normal(0, 2, (batch, channels, *spatial)).astype(np.float32))
        labels = generator.integers(0, 3, (batch, 1, *spatial))
        if settings.ignore_label is not None:
            labels[generator.random(labels.shape) < 0.3] = settings.ignore_label
        if settings.has_regions:
            # Regions (1, 2) and (2,), then the ignore mask when there is an ignore label.
            masks = [labels >= 1, labels == 2]
            if settings.ignore_label is not None:
                masks.append(labels == settings.ignore_label)
            targets.append(np.concatenate(masks, axis=1))
        else:
            targets.append(labels.astype(np.float32))
    return logits, targets


def test_loss_and_counts_equal_nnunet(tmp_path: Path) -> None:
    arrays: dict[str, np.ndarray] = {}
    ours = {}
    for seed, (name, (settings, channels)) in enumerate(SCENARIOS.items()):
        logits, targets = make_outputs(settings, channels, seed)
        for k, (x, y) in enumerate(zip(logits, targets, strict=True)):
            arrays[f"{name}/logits_{k}"], arrays[f"{name}/target_{k}"] = x, y
        arrays[f"{name}/settings"] = np.array(
            [settings.has_regions, settings.is_batch_dice, settings.ignore_label or -1]
        )
        outputs = [torch.from_numpy(x) for x in logits]
        truths = [torch.from_numpy(y) for y in targets]
        loss = DeepSupervisionLoss(settings, deep_supervision_weights(len(SHAPES)))(outputs, truths)
        ours[name] = (loss.item(), hard_dice_counts(outputs[0], truths[0], settings))
    path = tmp_path / "cases.npz"
    np.savez(path, **arrays)
    reference = run_reference("loss_reference.py", str(path))
    for name, (loss, counts) in ours.items():
        assert loss == pytest.approx(reference[name]["loss"], rel=1e-6), name
        assert counts.true_positives.tolist() == reference[name]["tp"], name
        assert counts.false_positives.tolist() == reference[name]["fp"], name
        assert counts.false_negatives.tolist() == reference[name]["fn"], name
