"""The cascade from the command line: 3d_lowres folds → their predictions for the next stage →
3d_cascade_fullres training, validation, selection and prediction.

A tiny GPU-memory target makes the planner choose patches so small against these 20 × 24 × 24 CT-like
images that it plans a real 3d_lowres stage and its cascade, as it does for large images. A two-fold
`splits_final.json` (custom splits are the user's right, METHOD.md 5.10) halves the folds to train.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from cli.main import main
from core.inference.predictor import Predictor
from core.io import read_image, read_segmentation, write_segmentation
from core.plans import load_plans
from core.preprocessed import list_cases, load_case
from core.synthetic import PRESETS, generate_dataset
from core.training.cascade import PREDICTED_NEXT_STAGE
from core.training.checkpoints import FINAL, load_checkpoint

CASES = ("case_000", "case_001", "case_002", "case_003")
SPLITS = [
    {"train": ["case_002", "case_003"], "val": ["case_000", "case_001"]},
    {"train": ["case_000", "case_001"], "val": ["case_002", "case_003"]},
]
FOREGROUND_LABELS = (1, 2)
SCHEDULE = ("--epochs", "1", "--iterations-per-epoch", "2", "--validation-iterations", "1")
FAST = ("--no-tta", "--device", "cpu")


def nnsvc(*arguments: str | Path) -> int:
    return main([*map(str, arguments), "--no-progress"])


def train(preprocessed: Path, model: Path, configuration: str, fold: int) -> int:
    return nnsvc(
        "train", preprocessed, "-c", configuration, "-f", fold, "-o", model, "--device", "cpu", *SCHEDULE
    )


@pytest.fixture(scope="module")
def planned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("cascade")
    spec = replace(PRESETS["ct"], num_cases=len(CASES), shape=(20, 24, 24))
    raw = generate_dataset(root / "raw", spec, seed=2)
    preprocessed = root / "preprocessed"
    status = nnsvc(
        "plan",
        raw,
        "-o",
        preprocessed,
        "--gpu-memory-gb",
        "0.005",
        "-c",
        "3d_lowres",
        "3d_fullres",
        "-j",
        "1",
    )
    assert status == 0
    (preprocessed / "splits_final.json").write_text(json.dumps(SPLITS))
    return raw, preprocessed


def test_lowres_folds_feed_the_cascade_which_trains_selects_and_predicts(
    planned: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw, preprocessed = planned
    model = tmp_path / "model"
    plans = load_plans(preprocessed / "plans.json")
    assert plans.configuration("3d_cascade_fullres").previous_stage == "3d_lowres"

    assert train(preprocessed, model, "3d_cascade_fullres", 0) == 1
    refusal = capsys.readouterr().err
    for fold, split in enumerate(SPLITS):
        assert f"3d_lowres fold {fold}: no previous-stage segmentation" in refusal
        assert ", ".join(split["val"]) in refusal

    for fold in range(len(SPLITS)):
        assert train(preprocessed, model, "3d_lowres", fold) == 0
    next_stage = model / "3d_lowres" / PREDICTED_NEXT_STAGE / "3d_cascade_fullres"
    fullres_data = preprocessed / plans.configuration("3d_fullres").data_identifier
    assert sorted(p.stem for p in next_stage.glob("*.npy")) == list(CASES) == list_cases(fullres_data)
    for case in CASES:
        previous = np.load(next_stage / f"{case}.npy")
        assert previous.shape == (1, *load_case(fullres_data, case)[0].shape[1:])
        assert set(np.unique(previous)) <= {0, *FOREGROUND_LABELS}

    for fold in range(len(SPLITS)):
        assert train(preprocessed, model, "3d_cascade_fullres", fold) == 0
        assert (model / "3d_cascade_fullres" / f"fold_{fold}" / "validation" / "summary.json").is_file()
    weights = load_checkpoint(model / "3d_cascade_fullres" / "fold_0" / FINAL)["network_weights"]
    first_conv = next(w for name, w in weights.items() if name.endswith("weight") and w.ndim == 5)
    assert first_conv.shape[1] == 1 + len(FOREGROUND_LABELS)  # one CT channel + one-hot previous stage

    assert nnsvc("find-best", model, "-c", "3d_cascade_fullres", "--no-ensembling", "--folds", 0, 1) == 0
    image = raw / "imagesTr" / "case_001_0000.nii.gz"
    assert nnsvc("predict", model, "-i", image, "-o", tmp_path / "out", "--best", *FAST) == 0
    written, geometry = read_segmentation(tmp_path / "out" / "case_001.nii.gz")
    data, expected = read_image([image])
    assert written.shape == data.shape[1:]
    assert geometry == expected

    # Previous-stage segmentations made by an earlier call give the same result as the cascade's own.
    lowres_out, cascade_out = tmp_path / "lowres", tmp_path / "given"
    assert nnsvc("predict", model, "-i", image, "-o", lowres_out, "-c", "3d_lowres", *FAST) == 0
    assert nnsvc("predict", model, "-i", image, "-o", cascade_out, "--previous-stage", lowres_out, *FAST) == 0
    given_written, _ = read_segmentation(cascade_out / "case_001.nii.gz")
    np.testing.assert_array_equal(given_written, written)

    # Refusals name the problem (a configuration without previous stage, a missing folder or case, a
    # segmentation of another shape) and write nothing.
    def refusal(case_image: Path, previous: Path, *extra: str) -> str:
        capsys.readouterr()
        out = tmp_path / f"refused_{previous.name}{len(extra)}"
        assert (
            nnsvc("predict", model, "-i", case_image, "-o", out, "--previous-stage", previous, *extra, *FAST)
            == 1
        )
        assert not any(out.glob("*.nii.gz"))
        return capsys.readouterr().err

    assert "configuration 3d_lowres has no previous stage" in refusal(image, lowres_out, "-c", "3d_lowres")
    assert "previous-stage folder does not exist" in refusal(image, tmp_path / "nothing")
    missing = lowres_out / "case_002.nii.gz"
    other = raw / "imagesTr" / "case_002_0000.nii.gz"
    assert f"case_002: no previous-stage segmentation {missing}" in refusal(other, lowres_out)
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    given_lowres, lowres_geometry = read_segmentation(lowres_out / "case_001.nii.gz")
    write_segmentation(given_lowres[:-1], lowres_geometry, wrong / "case_001.nii.gz")
    assert "the previous-stage segmentation has shape" in refusal(image, wrong)

    # The cascade's predictor segments with 3d_lowres first and feeds that segmentation in.
    predictor = Predictor.from_model_dir(
        model, "3d_cascade_fullres", folds=[0], device="cpu", use_mirroring=False
    )
    assert predictor.previous_stage_predictor is not None
    assert predictor.previous_stage_predictor.configuration_name == "3d_lowres"
    lowres = predictor.previous_stage_predictor.predict_arrays(data, expected).segmentation
    given = predictor.predict_arrays(data, expected, previous_stage=lowres).segmentation
    np.testing.assert_array_equal(predictor.predict_arrays(data, expected).segmentation, given)
