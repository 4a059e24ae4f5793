"""Regions and the ignore label go through preprocessing and training (METHOD.md 1.2, 5.2, 5.3)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from core.pipeline import PlanOptions, plan_and_preprocess
from core.synthetic import PRESETS, generate_dataset
from core.training.checkpoints import FINAL, load_checkpoint
from core.training.options import TrainingOptions
from core.training.trainer import train_fold

OPTIONS = TrainingOptions(epochs=2, iterations_per_epoch=3, validation_iterations=2)


def make_raw(tmp_path: Path, labels: dict, extra: dict | None = None) -> Path:
    raw = generate_dataset(tmp_path / "raw", replace(PRESETS["mr"], num_cases=3, shape=(20, 24, 24)), seed=2)
    document = json.loads((raw / "dataset.json").read_text())
    document.update({"labels": labels, **(extra or {})})
    (raw / "dataset.json").write_text(json.dumps(document))
    return raw


def mark_unannotated_slab(raw: Path, ignore_label: int) -> None:
    """The first third of every label map is 'not annotated', as in sparsely labelled data."""
    for path in (raw / "labelsTr").iterdir():
        image = sitk.ReadImage(str(path))
        array = sitk.GetArrayFromImage(image)
        array[: array.shape[0] // 3] = ignore_label
        marked = sitk.GetImageFromArray(array)
        marked.CopyInformation(image)
        sitk.WriteImage(marked, str(path))


@pytest.mark.parametrize("scenario", ["regions", "ignore_label", "regions_with_ignore"])
def test_scenario_trains(tmp_path: Path, scenario: str) -> None:
    if scenario == "regions":
        raw = make_raw(
            tmp_path, {"background": 0, "whole": [1, 2], "lesion": 2}, {"regions_class_order": [1, 2]}
        )
        expected_outputs = 2  # one sigmoid channel per region
    elif scenario == "ignore_label":
        raw = make_raw(tmp_path, {"background": 0, "organ": 1, "lesion": 2, "ignore": 3})
        mark_unannotated_slab(raw, 3)
        expected_outputs = 3  # background, organ, lesion: the ignore label has no channel
    else:
        labels = {"background": 0, "whole": [1, 2], "lesion": 2, "ignore": 3}
        raw = make_raw(tmp_path, labels, {"regions_class_order": [1, 2]})
        mark_unannotated_slab(raw, 3)
        expected_outputs = 2
    plan_and_preprocess(raw, tmp_path / "preprocessed", PlanOptions(workers=1))
    result = train_fold(tmp_path / "preprocessed", "3d_fullres", "all", tmp_path / "model", OPTIONS)
    checkpoint = load_checkpoint(result.fold_dir / FINAL)
    heads = [
        k
        for k in checkpoint["network_weights"]
        if k.startswith("decoder.seg_layers.") and k.endswith("weight")
    ]
    assert {checkpoint["network_weights"][k].shape[0] for k in heads} == {expected_outputs}
    losses = checkpoint["logging"]["train_losses"]
    assert len(losses) == 2 and all(np.isfinite(losses))
    assert len(checkpoint["logging"]["dice_per_class_or_region"][-1]) == expected_outputs - (
        scenario == "ignore_label"
    )
