"""nnU-Net v2's results layout (METHOD.md 9.3) and its names, next to ours.

    nnUNet_results/DatasetXXX_Name/
        <Trainer>__<Plans>__<configuration>/      one trained model ("model folder")
            plans.json  dataset.json  dataset_fingerprint.json
            fold_K/checkpoint_final.pth  [checkpoint_best.pth]  progress.png  validation/summary.json
            crossval_results_folds_0_1_2_3_4/postprocessing.pkl  postprocessing.json  summary.json
        ensembles/ensemble___<model A>___<model B>___0_1_2_3_4/postprocessing.pkl ...
        inference_information.json  inference_instructions.txt

`nnUNetv2_export_model_to_zip` writes a zip of the same tree whose member paths start at the dataset
folder. Ours (core.selection) keys everything by configuration name: `MODEL_DIR/<configuration>/` with
the same files and fold folders, `MODEL_DIR/ensembles/<a>__<b>/`, `MODEL_DIR/selection.json`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

MODEL_SEPARATOR = "__"
ENSEMBLE_SEPARATOR = "___"
ENSEMBLE_PREFIX = "ensemble"
ENSEMBLES_DIR = "ensembles"
CROSSVAL_PREFIX = "crossval_results_folds_"
PLANS_FILE = "plans.json"
DATASET_FILE = "dataset.json"
FINGERPRINT_FILE = "dataset_fingerprint.json"
POSTPROCESSING_PICKLE = "postprocessing.pkl"
POSTPROCESSING_JSON = "postprocessing.json"
SUMMARY_FILE = "summary.json"
INFERENCE_INFORMATION = "inference_information.json"
INFERENCE_INSTRUCTIONS = "inference_instructions.txt"
IMPORT_RECORD = "import.json"
FOLD_PREFIX = "fold_"
DEFAULT_TRAINER = "nnUNetTrainer"
DATASET_NAME = re.compile(r"^Dataset\d{3}_\S+$")


@dataclass(frozen=True)
class ModelId:
    """`<Trainer>__<Plans>__<configuration>`: nnU-Net v2's name for one trained model."""

    trainer: str
    plans: str
    configuration: str

    @property
    def name(self) -> str:
        return MODEL_SEPARATOR.join((self.trainer, self.plans, self.configuration))

    @classmethod
    def parse(cls, name: str) -> ModelId | None:
        parts = name.split(MODEL_SEPARATOR)
        if len(parts) != 3 or not all(parts):
            return None
        return cls(*parts)


def nnunet_dataset_name(name: str) -> str:
    """nnU-Net v2 finds datasets by `DatasetXXX_Name` (three-digit id); other names get id 000, as our
    planner's default name has."""
    if DATASET_NAME.match(name):
        return name
    return f"Dataset000_{re.sub(r'[^A-Za-z0-9_-]', '_', name)}"


def folds_text(folds: Sequence[int | str]) -> str:
    return "_".join(str(fold) for fold in folds)


def ensemble_folder_name(members: Sequence[ModelId], folds: Sequence[int | str]) -> str:
    return ENSEMBLE_SEPARATOR.join((ENSEMBLE_PREFIX, *(m.name for m in members), folds_text(folds)))


def parse_ensemble_folder_name(name: str) -> tuple[tuple[ModelId, ...], str] | None:
    """The member models and the folds text of `ensemble___A___B___0_1_2_3_4`, or None."""
    parts = name.split(ENSEMBLE_SEPARATOR)
    if len(parts) < 4 or parts[0] != ENSEMBLE_PREFIX:
        return None
    members = [ModelId.parse(part) for part in parts[1:-1]]
    parsed = tuple(member for member in members if member is not None)
    return (parsed, parts[-1]) if len(parsed) == len(members) else None


def fold_name(fold_folder: str) -> str:
    """`fold_3` → `3`, `fold_all` → `all`."""
    return fold_folder.removeprefix(FOLD_PREFIX)
