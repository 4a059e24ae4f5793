"""Models moved between nnU-Net v2 and us predict alike (issue 7): same weights, same case, both predictors.

Import: nnU-Net v2 trains fold 0 of 3d_fullres and 2d for a few iterations with its own trainer and
preprocessing (starting from our tiny model's weights, so predictions are confident rather than ties),
validates it and exports the results with `nnUNetv2_export_model_to_zip`'s function; we import the zip
and predict the case nnU-Net's `nnUNetPredictor` predicts from its own results folder. Export: our tiny
model, with a selection and two postprocessing steps, is exported as a zip; nnU-Net's predictor loads the
unpacked folders unmodified, and nnU-Net's postprocessing loader applies the exported pickle.

Required, with mirroring on: per-label Dice ≥ 0.999 between the segmentations and probabilities within
1e-3 everywhere. Ours runs in float32 with nnU-Net's float16 accumulator (test_inference_parity says why).
"""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from core.inference import Predictor
from core.interop import export_nnunet_model, import_nnunet_model
from core.postprocessing import KeepLargestComponent, apply_postprocessing, load_postprocessing
from core.selection import Selection, save_selection
from tests.parity.test_inference_parity import DICE_FLOOR, PROBABILITY_TOLERANCE, dice
from tests.reference import run_reference

pytestmark = pytest.mark.parity

CONFIGURATIONS = ("3d_fullres", "2d")
TRAINER = "nnUNetTrainer_1epoch"
ITERATIONS = 2
STEPS = (KeepLargestComponent((1, 2)), KeepLargestComponent((2,)))


@pytest.fixture(scope="module")
def nnunet_results(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """nnU-Net v2's results of fold 0 of each configuration, and their export zip."""
    root = tmp_path_factory.mktemp("nnunet")
    return run_reference(
        "interop_reference.py",
        "train",
        str(root),
        str(tiny_model / "raw"),
        str(tiny_model / "preprocessed"),
        str(tiny_model / "model"),
        str(ITERATIONS),
        *CONFIGURATIONS,
    )


def predict_with_nnunet(models: list[str], image: Path, out: Path, postprocess: dict | None = None) -> dict:
    job = {
        "models": models,
        "images": [str(image)],
        "out": str(out),
        "folds": [0],
        "mirroring": True,
        "threads": 1,
        "device": "cpu",
        "postprocess": postprocess,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "job.json").write_text(json.dumps(job))
    return run_reference("interop_reference.py", "predict", str(out / "job.json"))


def assert_agreement(model_dir: Path, configuration: str, image: Path, reference: dict) -> None:
    predictor = Predictor.from_model_dir(
        model_dir, configuration, device="cpu", accumulator_dtype=torch.float16, precision="fp32"
    )
    ours = predictor.predict_case([image], return_probabilities=True)
    theirs = sitk.GetArrayFromImage(sitk.ReadImage(reference["segmentations"][0]))
    assert ours.segmentation.shape == theirs.shape
    for label in predictor.spec.foreground_labels:
        assert dice(ours.segmentation == label, theirs == label) >= DICE_FLOOR, (configuration, label)
    probabilities = np.load(reference["probabilities"][0])["probabilities"]
    assert ours.probabilities is not None and ours.probabilities.shape == probabilities.shape
    assert np.abs(ours.probabilities - probabilities).max() <= PROBABILITY_TOLERANCE, configuration


def test_imported_nnunet_model_predicts_as_nnunet(
    nnunet_results: dict,
    tiny_model: Path,
    tmp_path: Path,
) -> None:
    imported = import_nnunet_model(Path(nnunet_results["zip"]), tmp_path / "imported")
    assert {(c.configuration, c.trainer) for c in imported.configurations} == {
        (c, TRAINER) for c in CONFIGURATIONS
    }
    # nnU-Net's own postprocessing.pkl (numpy label values), read without unpickling its function
    pp_file = tmp_path / "imported" / "3d_fullres" / "crossval_results_folds_0" / "postprocessing.json"
    assert load_postprocessing(pp_file) == (KeepLargestComponent((1, 2)),)
    image = tiny_model / "raw" / "imagesTr" / "case_004_0000.nii.gz"
    reference = predict_with_nnunet(nnunet_results["models"], image, tmp_path / "theirs")
    for folder in nnunet_results["models"]:
        assert_agreement(tmp_path / "imported", folder.rsplit("__", 1)[-1], image, reference[folder])


def test_exported_model_predicts_in_nnunet_as_ours(tiny_model: Path, tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model / "model", model_dir)
    pp_dir = model_dir / "3d_fullres" / "crossval_results_folds_0"
    pp_dir.mkdir()
    (pp_dir / "postprocessing.json").write_text(json.dumps({"steps": [s.to_json() for s in STEPS]}))
    selection = Selection(
        folds=(0,),
        considered_configurations=CONFIGURATIONS,
        ensembling_allowed=False,
        all_results={"3d_fullres": 0.8, "2d": 0.7},
        best="3d_fullres",
        selected_configurations=("3d_fullres",),
        dice_before_postprocessing=0.8,
        dice_after_postprocessing=0.81,
        postprocessing_file="3d_fullres/crossval_results_folds_0/postprocessing.json",
        plans_file="3d_fullres/plans.json",
    )
    save_selection(selection, model_dir / "selection.json")
    exported = export_nnunet_model(model_dir, tmp_path / "export.zip", as_zip=True)
    with zipfile.ZipFile(exported.path) as archive:
        archive.extractall(tmp_path / "results")
    dataset = tmp_path / "results" / exported.dataset_name
    folders = [str(dataset / name) for name in exported.model_folders]
    information = json.loads((dataset / "inference_information.json").read_text())
    pkl = dataset / information["best_model_or_ensemble"]["postprocessing_file"]
    segmentation = write_components(tmp_path / "components.nii.gz")
    postprocess = {"pkl": str(pkl), "segmentation": str(segmentation), "out": str(tmp_path / "pp.nii.gz")}
    image = tiny_model / "raw" / "imagesTr" / "case_004_0000.nii.gz"
    reference = predict_with_nnunet(folders, image, tmp_path / "theirs", postprocess)
    for folder in folders:
        assert_agreement(model_dir, folder.rsplit("__", 1)[-1], image, reference[folder])
    components = sitk.GetArrayFromImage(sitk.ReadImage(str(segmentation)))
    postprocessed = sitk.GetArrayFromImage(sitk.ReadImage(reference["postprocess"]["out"]))
    expected = apply_postprocessing(components, STEPS)
    assert not np.array_equal(expected, components)
    np.testing.assert_array_equal(postprocessed, expected)


def write_components(path: Path) -> Path:
    """A segmentation with two components of each label, for the postprocessing steps to act on."""
    segmentation = np.zeros((16, 40, 40), np.uint8)
    segmentation[2:6, 2:10, 2:10] = 1
    segmentation[10:12, 30:32, 30:32] = 1
    segmentation[2:6, 20:30, 20:30] = 2
    segmentation[12:13, 5:6, 30:31] = 2
    sitk.WriteImage(sitk.GetImageFromArray(segmentation), str(path))
    return path
