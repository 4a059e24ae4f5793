"""The training loop: it learns, it resumes exactly, it stops when asked, it records everything."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from core.pipeline import PlanOptions, plan_and_preprocess
from core.precision import PrecisionError, training_autocast_dtype
from core.synthetic import PRESETS, generate_dataset
from core.training.checkpoints import BEST, FINAL, LATEST, CheckpointError, load_checkpoint
from core.training.options import TrainingOptions
from core.training.trainer import TrainingStopped, train_fold

SHORT = TrainingOptions(epochs=2, iterations_per_epoch=2, validation_iterations=1, seed=7)


@pytest.fixture(scope="module")
def preprocessed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six small two-channel MR-like cases, planned and preprocessed by the real pipeline."""
    root = tmp_path_factory.mktemp("trainer")
    spec = replace(PRESETS["mr"], num_cases=6, shape=(24, 32, 28))
    generate_dataset(root / "raw", spec, seed=3)
    plan_and_preprocess(root / "raw", root / "preprocessed", PlanOptions(workers=1))
    return root / "preprocessed"


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["network_weights"]


def test_resuming_gives_the_weights_of_an_uninterrupted_run(preprocessed: Path, tmp_path: Path) -> None:
    straight = train_fold(preprocessed, "3d_fullres", 0, tmp_path / "straight", SHORT)
    one = replace(SHORT, epochs=2)
    stop_after_first_epoch = iter([False] * 3 + [True] * 100)  # 2 train + 1 validation checks, then stop
    with pytest.raises(TrainingStopped):
        train_fold(
            preprocessed,
            "3d_fullres",
            0,
            tmp_path / "resumed",
            one,
            should_stop=lambda: next(stop_after_first_epoch),
        )
    fold = tmp_path / "resumed" / "3d_fullres" / "fold_0"
    assert (fold / LATEST).is_file() and not (fold / FINAL).exists()
    assert load_checkpoint(fold / LATEST)["current_epoch"] == 1
    resumed = train_fold(preprocessed, "3d_fullres", 0, tmp_path / "resumed", SHORT, is_resume=True)
    assert resumed.epochs_run == straight.epochs_run == 2
    a, b = weights(straight.fold_dir / FINAL), weights(fold / FINAL)
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    assert not (fold / LATEST).exists()  # removed once the final checkpoint exists


def test_a_run_records_its_options_log_curves_and_nnunet_checkpoint_keys(
    preprocessed: Path, tmp_path: Path
) -> None:
    events: list[dict] = []

    def progress(fraction: float, stage: str, message: str = "", **metrics: float) -> None:
        events.append({"fraction": fraction, "stage": stage, **metrics})

    train_fold(preprocessed, "2d", "all", tmp_path / "model", SHORT, progress=progress)
    fold = tmp_path / "model" / "2d" / "fold_all"
    assert {"plans.json", "dataset.json", "dataset_fingerprint.json"} <= {
        p.name for p in (tmp_path / "model" / "2d").iterdir()
    }
    assert json.loads((fold / "training_options.json").read_text())["seed"] == 7
    assert (fold / "progress.png").stat().st_size > 10_000
    assert "pseudo dice" in next(fold.glob("training_log_*.txt")).read_text()
    checkpoint = load_checkpoint(fold / FINAL)
    nnunet_keys = {"network_weights", "optimizer_state", "logging", "_best_ema", "current_epoch", "init_args"}
    assert nnunet_keys | {"trainer_name", "inference_allowed_mirroring_axes"} <= set(checkpoint)
    assert checkpoint["current_epoch"] == 2 and len(checkpoint["logging"]["ema_fg_dice"]) == 2
    assert (fold / BEST).is_file()
    assert [e["fraction"] for e in events] == sorted(e["fraction"] for e in events)
    assert events[-1]["fraction"] == pytest.approx(1.0)
    assert {"epoch", "iteration", "loss", "learning_rate", "pseudo_dice", "eta_s"} <= set(events[-1])


def test_should_stop_is_honoured_within_one_iteration(preprocessed: Path, tmp_path: Path) -> None:
    calls = []

    def should_stop() -> bool:
        calls.append(1)
        return len(calls) > 1

    with pytest.raises(TrainingStopped):
        train_fold(preprocessed, "3d_fullres", 1, tmp_path / "m", SHORT, should_stop=should_stop)
    assert len(calls) == 2  # one iteration ran, the next check stopped the run


def test_a_fold_with_checkpoints_is_not_overwritten_without_resume(
    preprocessed: Path, tmp_path: Path
) -> None:
    train_fold(preprocessed, "2d", 0, tmp_path / "m", replace(SHORT, epochs=1))
    with pytest.raises(CheckpointError, match="resume"):
        train_fold(preprocessed, "2d", 0, tmp_path / "m", replace(SHORT, epochs=1))
    with pytest.raises(CheckpointError, match="other options"):
        train_fold(preprocessed, "2d", 0, tmp_path / "m", replace(SHORT, seed=8), is_resume=True)


def test_the_cpu_trains_in_float32_and_refuses_bf16(preprocessed: Path, tmp_path: Path) -> None:
    cpu = replace(SHORT, device="cpu")
    with pytest.raises(PrecisionError, match="bf16 training on the CPU is refused"):
        train_fold(preprocessed, "2d", 0, tmp_path / "m", replace(cpu, precision="bf16"))
    assert not (tmp_path / "m").exists()
    assert training_autocast_dtype(torch.device("cpu"), "auto") is None
    assert training_autocast_dtype(torch.device("cpu"), "fp32") is None
    assert training_autocast_dtype(torch.device("cuda"), "auto") == torch.float16


def test_fine_tuning_loads_matching_weights_and_names_mismatches(preprocessed: Path, tmp_path: Path) -> None:
    source = train_fold(preprocessed, "2d", 0, tmp_path / "source", replace(SHORT, epochs=1))
    checkpoint = source.fold_dir / FINAL
    tuned = train_fold(
        preprocessed,
        "2d",
        0,
        tmp_path / "tuned",
        replace(SHORT, epochs=1, pretrained_weights=str(checkpoint)),
    )
    assert tuned.epochs_run == 1
    with pytest.raises(CheckpointError, match="shape"):
        train_fold(
            preprocessed,
            "3d_fullres",
            0,
            tmp_path / "wrong",
            replace(SHORT, epochs=1, pretrained_weights=str(checkpoint)),
        )
