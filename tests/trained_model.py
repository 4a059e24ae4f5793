"""A tiny model trained briefly by our trainer on oblique, anisotropic CT-like cases.

Trained until its predictions are confident: an untrained network's class scores sit near ties
everywhere, where any difference in summation order between two correct predictors flips the argmax,
so agreement tests on it would measure noise. Registered once as a plugin (tests/conftest.py) so
the inference tests and both parity modules share one training instead of each defining its own.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from core.pipeline import PlanOptions, plan_and_preprocess
from core.synthetic import PRESETS, generate_dataset
from core.training.options import TrainingOptions
from core.training.trainer import train_fold

TINY_TRAINING = TrainingOptions(
    epochs=6, iterations_per_epoch=8, validation_iterations=1, seed=1, device="cpu"
)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`root/raw` (5 oblique cases, 3 mm × 0.75 mm voxels) and `root/model/{3d_fullres,2d}/fold_0`."""
    root = tmp_path_factory.mktemp("inference")
    spec = replace(PRESETS["ct"], num_cases=5, shape=(16, 40, 40), is_oblique=True)
    generate_dataset(root / "raw", spec, seed=3)
    options = PlanOptions(workers=1, configurations=("2d", "3d_fullres"))
    plan_and_preprocess(root / "raw", root / "preprocessed", options)
    for configuration in ("3d_fullres", "2d"):
        train_fold(root / "preprocessed", configuration, 0, root / "model", TINY_TRAINING)
    return root
