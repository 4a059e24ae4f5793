"""`nnsvc import-nnunet` and `nnsvc export-nnunet`: what they print, and a refusal as readable lines.

(Kept beside the interop tests; tests/cli/ would mirror the source tree.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.main import main
from tests.core.interop.support import DATASET, tiny_plans, write_model_folder


def test_import_then_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dataset = tmp_path / "results" / DATASET
    write_model_folder(dataset, tiny_plans(), "2d", "nnUNetTrainer_250epochs", folds=(0, "all"))
    assert main(["import-nnunet", str(dataset), "-o", str(tmp_path / "model"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "2d" in out and "nnUNetTrainer_250epochs / nnUNetPlans, PlainConvUNet, folds 0, all" in out
    assert main(["export-nnunet", str(tmp_path / "model"), "-o", str(tmp_path / "m.zip"), "--zip"]) == 0
    out = capsys.readouterr().out
    assert (
        f"as {DATASET} to {tmp_path / 'm.zip'}" in out and "nnUNetTrainer_250epochs__nnUNetPlans__2d" in out
    )


def test_a_refused_import_prints_every_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dataset = tmp_path / "results" / DATASET
    folder = write_model_folder(dataset, tiny_plans(), "2d", "MyLabTrainer")
    (folder / "fold_1" / "checkpoint_final.pth").unlink()
    assert main(["import-nnunet", str(dataset), "-o", str(tmp_path / "model"), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "error: 2 problems:" in err
    assert "trainer class 'MyLabTrainer' is not supported" in err
    assert "fold_1: checkpoint_final.pth is missing" in err
    assert "what to do: fix what is named above (nothing was written)" in err
    assert not (tmp_path / "model").exists()
