"""The whole method from the command line, as a person runs it: plan → train five folds → find-best →
predict held-out cases → evaluate. A tiny budget on small 2D images, so that it fits in CI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from core.synthetic import PRESETS, generate_dataset
from tests.label_support import merge_labels_into_one_organ

HELD_OUT = ("case_010", "case_011")
# Four short epochs per fold on 64 × 64 images with one organ label reach a held-out Dice of about 0.9;
# 0.75 leaves room for the randomness of so short a run while failing a pipeline that learns nothing
# (an empty or all-foreground prediction scores below 0.3 here).
DICE_FLOOR = 0.75


def nnsvc(*arguments: str | Path) -> str:
    command = [str(Path(sys.executable).with_name("nnsvc")), *map(str, arguments), "--no-progress"]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    assert completed.returncode == 0, f"{arguments[0]} failed:\n{completed.stdout}\n{completed.stderr}"
    return completed.stdout


def hold_out_test_cases(raw: Path, references: Path) -> None:
    (raw / "imagesTs").mkdir()
    references.mkdir()
    for case in HELD_OUT:
        shutil.move(raw / "imagesTr" / f"{case}_0000.nii.gz", raw / "imagesTs" / f"{case}_0000.nii.gz")
        shutil.move(raw / "labelsTr" / f"{case}.nii.gz", references / f"{case}.nii.gz")
    document = json.loads((raw / "dataset.json").read_text())
    document["numTraining"] -= len(HELD_OUT)
    (raw / "dataset.json").write_text(json.dumps(document))


def test_plan_train_select_predict_evaluate(tmp_path: Path) -> None:
    spec = replace(PRESETS["2d"], num_cases=12, shape=(1, 64, 64))
    raw = generate_dataset(tmp_path / "raw", spec, seed=1)
    merge_labels_into_one_organ(raw)
    hold_out_test_cases(raw, tmp_path / "references")
    nnsvc("plan", raw, "-o", tmp_path / "preprocessed", "-j", "2")
    for fold in range(5):
        nnsvc(
            "train", tmp_path / "preprocessed", "-c", "2d", "-f", fold, "-o", tmp_path / "model",
            "--epochs", "4", "--iterations-per-epoch", "6", "--validation-iterations", "1",
        )  # fmt: skip
        assert (tmp_path / "model" / "2d" / f"fold_{fold}" / "validation" / "summary.json").is_file()
    nnsvc("find-best", tmp_path / "model")
    selection = json.loads((tmp_path / "model" / "selection.json").read_text())
    assert selection["best_model_or_ensemble"]["selected_model_or_models"] == [{"configuration": "2d"}]
    nnsvc("predict", tmp_path / "model", "-i", raw / "imagesTs", "-o", tmp_path / "predictions", "--best")
    nnsvc("evaluate", tmp_path / "predictions", tmp_path / "references", "-o", tmp_path / "summary.json")
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert len(summary["metric_per_case"]) == len(HELD_OUT)
    assert summary["foreground_mean"]["Dice"] > DICE_FLOOR, summary["foreground_mean"]
