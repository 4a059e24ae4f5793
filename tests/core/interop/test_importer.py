"""Importing nnU-Net v2 results folders and export zips: what lands where, and what is refused.

Every refusal must name its cause and leave nothing behind: no destination folder and no temporary
folder beside it.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from core.errors import ProblemsError
from core.inference import Predictor
from core.interop import ImportOptions, import_nnunet_model
from core.postprocessing import KeepLargestComponent, load_postprocessing
from core.selection import load_selection
from core.training.checkpoints import load_checkpoint
from tests.core.interop.support import (
    DATASET,
    inference_information,
    nnunet_checkpoint,
    nnunet_postprocessing_bytes,
    tiny_plans,
    write_model_folder,
    zip_dataset,
)

VARIANT = "nnUNetTrainer_250epochs"
PLAIN_3D = "nnUNetTrainer__nnUNetPlans__3d_fullres"
RESENC_2D = f"{VARIANT}__nnUNetResEncUNetMPlans__2d"


@pytest.fixture
def results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A dataset results folder: a plain 3d_fullres model, a residual-encoder 2d model (a trainer
    variant), their ensemble chosen with a postprocessing pickle, and the inference information."""
    dataset = tmp_path / "results" / DATASET
    write_model_folder(dataset, tiny_plans(), "3d_fullres")
    write_model_folder(dataset, tiny_plans("nnUNetResEncUNetMPlans", is_residual=True), "2d", VARIANT)
    ensemble = dataset / "ensembles" / f"ensemble___{PLAIN_3D}___{RESENC_2D}___0_1"
    ensemble.mkdir(parents=True)
    (ensemble / "postprocessing.pkl").write_bytes(nnunet_postprocessing_bytes(monkeypatch, [[1, 2, 3], 2]))
    best = [
        {"configuration": "3d_fullres", "trainer": "nnUNetTrainer", "plans_identifier": "nnUNetPlans"},
        {"configuration": "2d", "trainer": VARIANT, "plans_identifier": "nnUNetResEncUNetMPlans"},
    ]
    information = inference_information([PLAIN_3D, RESENC_2D], best)
    (dataset / "inference_information.json").write_text(json.dumps(information))
    return dataset


def leftovers(destination: Path) -> list[str]:
    return sorted(p.name for p in destination.parent.iterdir() if p.name.startswith(f".{destination.name}"))


def assert_refused(source: Path, destination: Path, *expected: str, **options: object) -> list[str]:
    with pytest.raises(ProblemsError) as raised:
        import_nnunet_model(source, destination, options=ImportOptions(**options))
    text = "\n".join(raised.value.problems)
    for fragment in expected:
        assert fragment in text
    assert not destination.exists()
    assert leftovers(destination) == []
    return raised.value.problems


@pytest.mark.parametrize("as_zip", [False, True], ids=["folder", "zip"])
def test_import_writes_our_model_folder(results: Path, tmp_path: Path, as_zip: bool) -> None:
    source = zip_dataset(results, tmp_path / "model.zip") if as_zip else results
    destination = tmp_path / "models" / "imported"
    stages = []
    model = import_nnunet_model(source, destination, progress=lambda f, s, m="", **_: stages.append((s, f)))

    assert [c.configuration for c in model.configurations] == ["2d", "3d_fullres"]
    assert {c.configuration: c.trainer for c in model.configurations}["2d"] == VARIANT
    assert stages[-1] == ("import", 1.0)
    original = torch.load(results / PLAIN_3D / "fold_1" / "checkpoint_final.pth", weights_only=False)
    imported = load_checkpoint(destination / "3d_fullres" / "fold_1" / "checkpoint_final.pth")
    for name, tensor in original["network_weights"].items():
        assert torch.equal(imported["network_weights"][name], tensor)
    assert imported["_best_ema"] == pytest.approx(0.6) and type(imported["_best_ema"]) is float
    assert imported["trainer_name"] == "nnUNetTrainer"

    predictor = Predictor.from_model_dir(destination, "2d", device="cpu")
    assert len(predictor.fold_weights) == 2
    selection = load_selection(destination / "selection.json")
    assert selection.selected_configurations == ("3d_fullres", "2d")
    assert selection.all_results == {"3d_fullres": 0.5, "2d": 0.5, "3d_fullres__2d": 0.6}
    assert load_postprocessing(destination / selection.postprocessing_file) == (
        KeepLargestComponent((1, 2, 3)),
        KeepLargestComponent((2,)),
    )
    record = json.loads((destination / "import.json").read_text())
    assert record["source"] == source.name and record["has_selection"] is True
    assert leftovers(destination) == []


def test_import_of_a_cascade_needs_its_previous_stage(tmp_path: Path) -> None:
    dataset = tmp_path / DATASET
    plans = tiny_plans()
    for configuration in ("3d_lowres", "3d_cascade_fullres"):
        write_model_folder(dataset, plans, configuration)
    destination = tmp_path / "imported"
    assert_refused(
        dataset,
        destination,
        "a cascade needs its previous stage 3d_lowres",
        configurations=("3d_cascade_fullres",),
    )
    import_nnunet_model(dataset, destination)
    predictor = Predictor.from_model_dir(destination, "3d_cascade_fullres", device="cpu")
    assert predictor.is_cascade


def test_one_model_folder_can_be_imported_alone(results: Path, tmp_path: Path) -> None:
    model = import_nnunet_model(results / PLAIN_3D, tmp_path / "one")
    assert [c.configuration for c in model.configurations] == ["3d_fullres"]
    assert not model.has_selection and "selects" in model.notes[0]


def test_refuses_what_is_not_a_results_folder(tmp_path: Path) -> None:
    source = tmp_path / "raw"
    (source / "imagesTr").mkdir(parents=True)
    (source / "dataset.json").write_text("{}")
    assert_refused(source, tmp_path / "imported", "not an nnU-Net v2 results folder")
    (tmp_path / "notes.txt").write_text("hello")
    assert_refused(tmp_path / "notes.txt", tmp_path / "imported", "not an nnU-Net v2 results folder")


def test_refuses_a_missing_fold_checkpoint(results: Path, tmp_path: Path) -> None:
    fold = results / PLAIN_3D / "fold_1"
    os.rename(fold / "checkpoint_final.pth", fold / "checkpoint_latest.pth")
    assert_refused(
        results,
        tmp_path / "imported",
        f"{PLAIN_3D}/fold_1: checkpoint_final.pth is missing",
        "training has not finished",
    )


def test_refuses_an_unknown_architecture_class(results: Path, tmp_path: Path) -> None:
    plans_file = results / PLAIN_3D / "plans.json"
    plans = json.loads(plans_file.read_text())
    plans["configurations"]["3d_fullres"]["architecture"]["network_class_name"] = "my_lab.nets.SwinUNETR"
    plans_file.write_text(json.dumps(plans))
    assert_refused(results, tmp_path / "imported", PLAIN_3D, "'my_lab.nets.SwinUNETR'")


class Exploit:
    """Pickles as a call to os.system: loading it unsafely would create the canary file."""

    def __init__(self, canary: Path) -> None:
        self.canary = canary

    def __reduce__(self) -> tuple:
        return os.system, (f"touch {self.canary}",)


def test_refuses_a_checkpoint_that_needs_arbitrary_unpickling(results: Path, tmp_path: Path) -> None:
    canary = tmp_path / "code-ran"
    path = results / RESENC_2D / "fold_0" / "checkpoint_final.pth"
    document = torch.load(path, weights_only=False)
    document["init_args"]["hook"] = Exploit(canary)
    torch.save(document, path)
    assert_refused(
        results, tmp_path / "imported", f"{RESENC_2D}/fold_0/checkpoint_final.pth: refused", "posix.system"
    )
    assert not canary.exists()


def test_refuses_unsupported_trainers_and_lists_every_problem(results: Path, tmp_path: Path) -> None:
    batch_norm = results / "nnUNetTrainerBN__nnUNetPlans__2d"
    write_model_folder(results, tiny_plans(), "2d", "nnUNetTrainerBN")
    (batch_norm / "fold_1" / "checkpoint_final.pth").unlink()
    problems = assert_refused(
        results,
        tmp_path / "imported",
        "'nnUNetTrainerBN' is not supported: it replaces the plans' instance norm by batch norm",
        "nnUNetTrainerBN__nnUNetPlans__2d/fold_1: checkpoint_final.pth is missing",
        plans="nnUNetPlans",
    )
    assert len(problems) == 2


def test_refuses_weights_of_another_network(results: Path, tmp_path: Path) -> None:
    path = results / PLAIN_3D / "fold_0" / "checkpoint_final.pth"
    other = nnunet_checkpoint(
        tiny_plans("nnUNetResEncUNetMPlans", is_residual=True), "3d_fullres", "nnUNetTrainer", 0
    )
    torch.save(other, path)
    assert_refused(results, tmp_path / "imported", f"{PLAIN_3D}/fold_0", "the plans' network lacks")


def test_two_models_of_one_configuration_need_a_choice(results: Path, tmp_path: Path) -> None:
    write_model_folder(results, tiny_plans("nnUNetResEncUNetLPlans", is_residual=True), "3d_fullres")
    assert_refused(results, tmp_path / "imported", "configuration 3d_fullres is trained by several models")
    model = import_nnunet_model(results, tmp_path / "chosen", options=ImportOptions(plans="nnUNetPlans"))
    assert [c.plans for c in model.configurations] == ["nnUNetPlans"]


def test_refuses_an_existing_destination(results: Path, tmp_path: Path) -> None:
    destination = tmp_path / "taken"
    (destination / "3d_fullres").mkdir(parents=True)
    with pytest.raises(ProblemsError, match="already exists"):
        import_nnunet_model(results, destination)
    shutil.rmtree(destination)
    destination.mkdir()
    import_nnunet_model(results, destination)
    assert (destination / "import.json").is_file()


def test_best_checkpoints_become_the_models_weights(results: Path, tmp_path: Path) -> None:
    for fold in ("fold_0", "fold_1"):
        os.rename(
            results / PLAIN_3D / fold / "checkpoint_final.pth",
            results / PLAIN_3D / fold / "checkpoint_best.pth",
        )
    assert_refused(
        results, tmp_path / "imported", "checkpoint_final.pth is missing (it has checkpoint_best.pth)"
    )
    options = ImportOptions(checkpoint="checkpoint_best.pth", configurations=("3d_fullres",))
    model = import_nnunet_model(results, tmp_path / "imported", options=options)
    assert model.checkpoint == "checkpoint_best.pth"
    assert len(Predictor.from_model_dir(tmp_path / "imported", "3d_fullres", device="cpu").fold_weights) == 2
