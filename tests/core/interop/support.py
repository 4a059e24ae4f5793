"""nnU-Net v2 results folders built without nnU-Net: real plans, tiny networks, checkpoints in its layout.

Plans come from our planner for the `large_ct` planning case (2d, 3d_fullres, 3d_lowres and the
cascade), with each configuration's network swapped for a tiny one so that checkpoints take
kilobytes. Checkpoints carry nnU-Net v2's keys and value types, numpy scalars in the training log
included, as its trainer writes them; `nnunet_postprocessing_bytes` pickles a postprocessing choice
as nnU-Net v2 does, through stand-in modules under nnU-Net's import path (pickle records a function by
its module and name only).
"""

from __future__ import annotations

import json
import pickle
import sys
import types
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from core.dataset import parse_dataset_json
from core.inference.export import OutputLayout
from core.network import build_network
from core.planning import plan_experiment
from core.plans import Plans
from tests.core.network.cases import TINY_CASES
from tests.planning_cases import CASES, make_dataset_json, make_fingerprint

DATASET = "Dataset042_Tiny"
CASE = CASES["large_ct"]
DATASET_JSON = make_dataset_json(CASE)
TINY_3D = TINY_CASES["plain_3d_anisotropic"].architecture
TINY_RESENC_3D = TINY_CASES["resenc_3d_anisotropic"].architecture
TINY_2D = TINY_CASES["plain_2d"].architecture
TINY_RESENC_2D = TINY_CASES["resenc_2d"].architecture


def tiny_plans(plans_name: str = "nnUNetPlans", is_residual: bool = False) -> Plans:
    """Planned configurations of `large_ct` with tiny plain (or residual-encoder) networks."""
    plans = plan_experiment(make_fingerprint(CASE), parse_dataset_json(DATASET_JSON), dataset_name=DATASET)
    architectures = (TINY_RESENC_2D, TINY_RESENC_3D) if is_residual else (TINY_2D, TINY_3D)
    configurations = {
        name: replace(plan, architecture=architectures[len(plan.patch_size) - 2])
        for name, plan in plans.configurations.items()
    }
    return replace(plans, plans_name=plans_name, configurations=configurations)


def nnunet_checkpoint(plans: Plans, configuration: str, trainer: str, fold: int | str, seed: int = 0) -> dict:
    """A checkpoint as nnU-Net v2's trainer saves it (random weights for the plans' network)."""
    plan = plans.configuration(configuration)
    spec = parse_dataset_json(DATASET_JSON)
    extra = len(spec.foreground_labels) if plan.previous_stage is not None else 0
    torch.manual_seed(seed)
    network = build_network(plan, spec.num_channels + extra, OutputLayout.from_spec(spec).num_outputs)
    return {
        "network_weights": network.state_dict(),
        "optimizer_state": {"state": {}, "param_groups": []},
        "grad_scaler_state": None,
        "logging": {"mean_fg_dice": [np.float32(0.4), np.float32(0.6)], "lrs": [0.01, 0.005]},
        "_best_ema": np.float32(0.6),
        "current_epoch": 2,
        "init_args": {
            "plans": plans.to_json(),
            "configuration": configuration,
            "fold": fold,
            "dataset_json": DATASET_JSON,
            "device": torch.device("cpu"),
        },
        "trainer_name": trainer,
        "inference_allowed_mirroring_axes": tuple(range(len(plan.patch_size))),
    }


def write_model_folder(
    dataset_dir: Path,
    plans: Plans,
    configuration: str,
    trainer: str = "nnUNetTrainer",
    folds: tuple[int | str, ...] = (0, 1),
) -> Path:
    """`dataset_dir/<trainer>__<plans>__<configuration>/` with one checkpoint_final.pth per fold."""
    folder = dataset_dir / f"{trainer}__{plans.plans_name}__{configuration}"
    folder.mkdir(parents=True)
    (folder / "plans.json").write_text(json.dumps(plans.to_json()))
    (folder / "dataset.json").write_text(json.dumps(DATASET_JSON))
    (folder / "dataset_fingerprint.json").write_text(json.dumps({"spacings": []}))
    for index, fold in enumerate(folds):
        (folder / f"fold_{fold}").mkdir()
        document = nnunet_checkpoint(plans, configuration, trainer, fold, seed=index)
        torch.save(document, folder / f"fold_{fold}" / "checkpoint_final.pth")
    return folder


def nnunet_postprocessing_bytes(monkeypatch: pytest.MonkeyPatch, labels_or_regions: list) -> bytes:
    """`postprocessing.pkl` as nnU-Net v2 writes it: its function once per step, numpy label values."""
    path = "nnunetv2.postprocessing.remove_connected_components"
    name = "remove_all_but_largest_component_from_segmentation"
    for index in range(1, 4):
        module_name = ".".join(path.split(".")[:index])
        monkeypatch.setitem(sys.modules, module_name, types.ModuleType(module_name))

    def function(segmentation: np.ndarray, labels_or_regions: object) -> np.ndarray:
        return segmentation

    function.__module__, function.__qualname__, function.__name__ = path, name, name
    setattr(sys.modules[path], name, function)
    kwargs = [{"labels_or_regions": value} for value in labels_or_regions]
    return pickle.dumps(([function] * len(kwargs), kwargs), protocol=4)


def inference_information(models: list[str], best: list[dict], folds: tuple[int, ...] = (0, 1)) -> dict:
    """`inference_information.json` as find_best_configuration writes it (absolute paths elsewhere)."""
    return {
        "folds": list(folds),
        "dataset_name_or_id": DATASET,
        "considered_models": [
            dict(zip(("trainer", "plans", "configuration"), m.split("__"), strict=True)) for m in models
        ],
        "ensembling_allowed": True,
        "all_results": {**{m: 0.5 for m in models}, f"ensemble___{'___'.join(models)}___0_1": 0.6},
        "best_model_or_ensemble": {
            "result_on_crossval_pre_pp": 0.6,
            "result_on_crossval_post_pp": 0.61,
            "postprocessing_file": "/elsewhere/postprocessing.pkl",
            "some_plans_file": "/elsewhere/plans.json",
            "selected_model_or_models": best,
        },
    }


def zip_dataset(dataset_dir: Path, target: Path) -> Path:
    """The export zip of a dataset folder: members start at the dataset folder, as nnU-Net's do."""
    with zipfile.ZipFile(target, "w") as archive:
        for path in sorted(dataset_dir.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(dataset_dir.parent).as_posix())
    return target
