"""Training checkpoints: everything it takes to resume exactly, in nnU-Net v2's key layout.

The keys nnU-Net v2 writes (`network_weights`, `optimizer_state`, `grad_scaler_state`, `logging`,
`_best_ema`, `current_epoch`, `init_args`, `trainer_name`, `inference_allowed_mirroring_axes`) keep
their meaning, so checkpoints move between the two tools; `options` is ours and records every choice
of the run. Batches are seeded by their index (see `data_loader`), so the epoch counter is all the
random state a resume needs.

Files are written to a temporary name and renamed: a kill mid-write leaves the previous checkpoint
intact (nnU-Net v2 writes in place and can lose it). They load with `weights_only=True`, which refuses
any pickled object that is not plain data, so a checkpoint from elsewhere cannot run code.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from core.errors import ProblemsError
from core.training.checkpoint_names import BEST as BEST
from core.training.checkpoint_names import FINAL as FINAL
from core.training.checkpoint_names import LATEST as LATEST

TRAINER_NAME = "nnsvcTrainer"


class CheckpointError(ProblemsError):
    """A checkpoint is missing, unreadable, or does not fit the run that wants it."""


@dataclass
class TrainingState:
    """What changes from epoch to epoch, besides the weights and the optimizer."""

    next_epoch: int
    best_ema: float | None


def save_checkpoint(path: Path, document: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.partial")
    torch.save(document, temporary)
    os.replace(temporary, path)


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict:
    """Load with weights-only unpickling; a file needing arbitrary objects is refused, not run."""
    try:
        return torch.load(Path(path), map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: checkpoint not found") from None
    except Exception as error:  # torch raises UnpicklingError, RuntimeError, EOFError, ...
        raise CheckpointError(f"{Path(path).name}: cannot be loaded safely ({error})") from None


def resumable_checkpoint(fold_dir: Path) -> Path | None:
    """The checkpoint a resume starts from: final, else latest, else none (as nnU-Net v2)."""
    for name in (FINAL, LATEST):
        if (Path(fold_dir) / name).is_file():
            return Path(fold_dir) / name
    return None
