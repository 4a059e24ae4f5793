"""A small network learns two small generated cases: the whole training path can actually learn."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from core.pipeline import PlanOptions, plan_and_preprocess
from core.synthetic import PRESETS, generate_dataset
from core.training.checkpoints import FINAL, load_checkpoint
from core.training.options import TrainingOptions
from core.training.trainer import train_fold
from tests.label_support import merge_labels_into_one_organ


def test_two_cases_are_learned_to_dice_above_0_9(tmp_path: Path) -> None:
    raw = generate_dataset(tmp_path / "raw", replace(PRESETS["mr"], num_cases=2, shape=(24, 32, 28)), seed=5)
    merge_labels_into_one_organ(raw)
    plan_and_preprocess(raw, tmp_path / "preprocessed", PlanOptions(workers=1))
    options = TrainingOptions(epochs=8, iterations_per_epoch=12, validation_iterations=2, seed=0)
    train_fold(tmp_path / "preprocessed", "3d_fullres", "all", tmp_path / "model", options)
    log = load_checkpoint(tmp_path / "model" / "3d_fullres" / "fold_all" / FINAL)["logging"]
    assert log["mean_fg_dice"][-1] > 0.9, log["mean_fg_dice"]
    assert log["train_losses"][-1] < log["train_losses"][0]
