"""Exporting our model folders in nnU-Net v2's layout, and importing them back unchanged."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
import torch

from core.errors import ProblemsError
from core.interop import export_nnunet_model, import_nnunet_model
from core.interop.postprocessing import read_nnunet_postprocessing
from core.postprocessing import KeepLargestComponent, load_postprocessing
from core.selection import Selection, load_selection, save_selection
from core.training.checkpoints import TRAINER_NAME, load_checkpoint, save_checkpoint
from core.training.options import TrainingOptions
from tests.core.interop.support import DATASET, DATASET_JSON, nnunet_checkpoint, tiny_plans

STEPS = (KeepLargestComponent((1, 2, 3)), KeepLargestComponent((3,)))


def write_our_model(model_dir: Path, configurations: tuple[str, ...] = ("3d_fullres", "2d")) -> Path:
    """A model folder as `nnsvc train` leaves it, with an ensemble chosen by `nnsvc find-best`."""
    plans = tiny_plans()
    for configuration in configurations:
        folder = model_dir / configuration
        folder.mkdir(parents=True)
        (folder / "plans.json").write_text(json.dumps(plans.to_json()))
        (folder / "dataset.json").write_text(json.dumps(DATASET_JSON))
        document = nnunet_checkpoint(plans, configuration, TRAINER_NAME, 0)
        document.update(options=TrainingOptions(epochs=2).to_json(), _best_ema=0.6, logging={})
        save_checkpoint(folder / "fold_0" / "checkpoint_final.pth", document)
    pair = "__".join(configurations)
    (model_dir / "ensembles" / pair).mkdir(parents=True)
    steps = {"steps": [step.to_json() for step in STEPS], "postprocessed": {"foreground_mean": {"Dice": 0.7}}}
    (model_dir / "ensembles" / pair / "postprocessing.json").write_text(json.dumps(steps))
    selection = Selection(
        folds=(0,),
        considered_configurations=configurations,
        ensembling_allowed=True,
        all_results={**dict.fromkeys(configurations, 0.5), pair: 0.6},
        best=pair,
        selected_configurations=configurations,
        dice_before_postprocessing=0.6,
        dice_after_postprocessing=0.7,
        postprocessing_file=f"ensembles/{pair}/postprocessing.json",
        plans_file=f"{configurations[0]}/plans.json",
    )
    save_selection(selection, model_dir / "selection.json")
    return model_dir


def test_export_writes_what_nnunet_reads(tmp_path: Path) -> None:
    model_dir = write_our_model(tmp_path / "model")
    exported = export_nnunet_model(model_dir, tmp_path / "results")

    dataset = tmp_path / "results" / DATASET
    assert exported.path == dataset
    assert exported.model_folders == (
        "nnUNetTrainer__nnUNetPlans__2d",
        "nnUNetTrainer__nnUNetPlans__3d_fullres",
    )
    checkpoint = load_checkpoint(
        dataset / "nnUNetTrainer__nnUNetPlans__3d_fullres" / "fold_0" / "checkpoint_final.pth"
    )
    original = load_checkpoint(model_dir / "3d_fullres" / "fold_0" / "checkpoint_final.pth")
    assert checkpoint["trainer_name"] == "nnUNetTrainer"
    assert checkpoint["init_args"]["configuration"] == "3d_fullres"
    assert all(
        torch.equal(checkpoint["network_weights"][k], v) for k, v in original["network_weights"].items()
    )
    ensemble = "ensemble___nnUNetTrainer__nnUNetPlans__3d_fullres___nnUNetTrainer__nnUNetPlans__2d___0"
    choice = read_nnunet_postprocessing(dataset / "ensembles" / ensemble, [1, 2, 3], ensemble)
    assert choice.steps == STEPS
    information = json.loads((dataset / "inference_information.json").read_text())
    assert (
        information["best_model_or_ensemble"]["postprocessing_file"]
        == f"ensembles/{ensemble}/postprocessing.pkl"
    )
    assert information["all_results"][ensemble] == 0.6
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "results"]


def test_export_zip_imports_back_unchanged(tmp_path: Path) -> None:
    model_dir = write_our_model(tmp_path / "model")
    exported = export_nnunet_model(model_dir, tmp_path / "model.zip", as_zip=True)
    with zipfile.ZipFile(exported.path) as archive:
        assert all(name.startswith(f"{DATASET}/") for name in archive.namelist())

    imported = import_nnunet_model(exported.path, tmp_path / "back")
    assert {c.trainer for c in imported.configurations} == {"nnUNetTrainer"}
    selection = load_selection(tmp_path / "back" / "selection.json")
    assert selection == load_selection(model_dir / "selection.json")
    assert load_postprocessing(tmp_path / "back" / selection.postprocessing_file) == STEPS
    again = load_checkpoint(tmp_path / "back" / "2d" / "fold_0" / "checkpoint_final.pth")
    original = load_checkpoint(model_dir / "2d" / "fold_0" / "checkpoint_final.pth")
    assert all(torch.equal(again["network_weights"][k], v) for k, v in original["network_weights"].items())
    assert again["options"] == original["options"]


def test_a_name_nnunet_cannot_look_up_gets_an_id(tmp_path: Path) -> None:
    model_dir = write_our_model(tmp_path / "model", ("2d",))
    exported = export_nnunet_model(model_dir, tmp_path / "results", dataset_name="liver scans")
    assert exported.dataset_name == "Dataset000_liver_scans"


def test_refuses_to_overwrite_and_writes_nothing(tmp_path: Path) -> None:
    model_dir = write_our_model(tmp_path / "model")
    export_nnunet_model(model_dir, tmp_path / "results", configurations=("2d",))
    with pytest.raises(ProblemsError, match="nnUNetTrainer__nnUNetPlans__2d: already exists"):
        export_nnunet_model(model_dir, tmp_path / "results")
    assert sorted(p.name for p in (tmp_path / "results" / DATASET).iterdir()) == [
        "nnUNetTrainer__nnUNetPlans__2d"
    ]
    assert [p.name for p in (tmp_path / "results").iterdir()] == [DATASET]
    with pytest.raises(ProblemsError, match="3d_lowres not trained"):
        export_nnunet_model(model_dir, tmp_path / "elsewhere", configurations=("3d_lowres",))
