"""Foreign checkpoints: weights-only loading plus numpy scalars, and the trainer classes accepted."""

from __future__ import annotations

import argparse
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from core.interop.checkpoints import CheckpointRefused, load_foreign_checkpoint, plain_data
from core.interop.trainers import ACCEPTED_TRAINERS, trainer_problem


def test_numpy_scalars_load_and_become_python_numbers(tmp_path: Path) -> None:
    weights = OrderedDict(w=torch.ones(2))
    document = {
        "network_weights": weights,
        "_best_ema": np.float32(0.5),
        "log": [[np.float64(1.5)], (np.int64(3),)],
    }
    torch.save(document, tmp_path / "c.pth")
    loaded = load_foreign_checkpoint(tmp_path / "c.pth", "c.pth")
    assert loaded["_best_ema"] == 0.5 and type(loaded["_best_ema"]) is float
    assert loaded["log"] == [[1.5], (3,)] and type(loaded["log"][1][0]) is int
    assert isinstance(loaded["network_weights"], OrderedDict)
    assert torch.equal(loaded["network_weights"]["w"], weights["w"])
    torch.save(loaded, tmp_path / "again.pth")
    torch.load(tmp_path / "again.pth", weights_only=True)  # plain data: no allowances needed any more


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"args": argparse.Namespace(lr=0.1)}, "needs arbitrary unpickling: it names argparse.Namespace"),
        ({"array": np.zeros(3)}, "needs arbitrary unpickling: it names numpy"),
        ([torch.ones(1)], "holds a list, not a checkpoint dictionary"),
    ],
    ids=["namespace", "numpy-array", "not-a-dict"],
)
def test_refuses_what_weights_only_loading_refuses(tmp_path: Path, content: object, message: str) -> None:
    torch.save(content, tmp_path / "c.pth")
    with pytest.raises(CheckpointRefused, match=message):
        load_foreign_checkpoint(tmp_path / "c.pth", "fold_0/c.pth")


def test_refuses_a_file_that_is_no_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "c.pth").write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointRefused, match=r"fold_0/c.pth: cannot be read as a PyTorch checkpoint"):
        load_foreign_checkpoint(tmp_path / "c.pth", "fold_0/c.pth")


def test_plain_data_leaves_tensors_alone() -> None:
    tensor = torch.zeros(2)
    assert plain_data({"t": tensor})["t"] is tensor


@pytest.mark.parametrize(
    ("trainer", "reason"),
    [
        ("nnUNetTrainer", None),
        ("nnUNetTrainer_250epochs", None),
        ("nnUNetTrainer_1epoch", None),
        ("nnUNetTrainerNoMirroring", None),
        ("nnUNetTrainerBN", "batch norm"),
        ("nnUNet_Primus_M_Trainer", "transformer"),
        ("nnUNetTrainerBenchmark_5epochs", "no usable checkpoint"),
        ("MyLabTrainer", "not one of nnU-Net v2's shipped trainers"),
    ],
)
def test_trainer_classes(trainer: str, reason: str | None) -> None:
    problem = trainer_problem(trainer)
    assert (problem is None) == (reason is None) == (trainer in ACCEPTED_TRAINERS)
    if reason is not None:
        assert trainer in problem and reason in problem
