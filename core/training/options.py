"""Every choice of a training run, saved with the model so that a run can be reproduced and resumed.

nnU-Net v2 records a run's choices in its trainer's class name (`nnUNetTrainer_250epochs`), so every
variant needs a subclass; here they are fields, written into the checkpoint and `training_options.json`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Literal

from core.constants import (
    TRAINING_EPOCHS,
    TRAINING_INITIAL_LR,
    TRAINING_ITERATIONS_PER_EPOCH,
    TRAINING_SGD_MOMENTUM,
    TRAINING_VALIDATION_ITERATIONS,
    TRAINING_WEIGHT_DECAY,
)
from core.errors import ProblemsError
from core.precision_choices import PrecisionChoice

DeviceChoice = Literal["auto", "cpu", "cuda"]


class TrainingOptionsError(ProblemsError):
    """Training options that cannot describe a run; `problems` lists every reason."""


@dataclass(frozen=True)
class TrainingOptions:
    """Defaults are the method's (METHOD.md 5.1); `checkpoint_every_epochs` bounds the work a lost
    worker can lose (nnU-Net v2 saves every 50 epochs). `precision` "auto" is float16 autocast with
    a gradient scaler on CUDA, as nnU-Net v2, and float32 on the CPU (core.precision says why not
    bfloat16); "fp32" turns mixed precision off."""

    epochs: int = TRAINING_EPOCHS
    iterations_per_epoch: int = TRAINING_ITERATIONS_PER_EPOCH
    validation_iterations: int = TRAINING_VALIDATION_ITERATIONS
    initial_lr: float = TRAINING_INITIAL_LR
    weight_decay: float = TRAINING_WEIGHT_DECAY
    momentum: float = TRAINING_SGD_MOMENTUM
    seed: int = 0
    device: DeviceChoice = "auto"
    precision: PrecisionChoice = "auto"
    checkpoint_every_epochs: int = 1
    pretrained_weights: str | None = None

    def __post_init__(self) -> None:
        problems = [
            f"{name} must be at least {minimum}, got {getattr(self, name)}"
            for name, minimum in (
                ("epochs", 1),
                ("iterations_per_epoch", 1),
                ("validation_iterations", 1),
                ("checkpoint_every_epochs", 1),
            )
            if getattr(self, name) < minimum
        ]
        if self.initial_lr <= 0:
            problems.append(f"initial_lr must be positive, got {self.initial_lr}")
        if self.precision not in ("auto", "fp32", "bf16", "fp16"):
            problems.append(f"precision must be auto, fp32, bf16 or fp16, got {self.precision!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            problems.append(f"device must be auto, cpu or cuda, got {self.device!r}")
        if problems:
            raise TrainingOptionsError(problems)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> TrainingOptions:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise TrainingOptionsError([f"unknown training option(s): {', '.join(unknown)}"])
        return cls(**data)

    def differs_only_in_length(self, other: TrainingOptions) -> bool:
        """Resuming may extend or shorten a run; any other change would make it a different run."""
        ignored = {"epochs", "device", "pretrained_weights"}
        return all(
            getattr(self, f.name) == getattr(other, f.name) for f in fields(self) if f.name not in ignored
        )
