"""The learning-rate schedule (METHOD.md 5.1): polynomial decay, set once at the start of each epoch.

A pure function of the epoch rather than a stateful scheduler object, so a resumed run needs only its
epoch number to continue on the same curve, and nothing about the schedule has to be checkpointed.
"""

from __future__ import annotations

from core.constants import TRAINING_INITIAL_LR, TRAINING_POLY_LR_EXPONENT


def poly_lr(
    epoch: int,
    max_epochs: int,
    initial_lr: float = TRAINING_INITIAL_LR,
    exponent: float = TRAINING_POLY_LR_EXPONENT,
) -> float:
    """`initial_lr * (1 - epoch / max_epochs) ** exponent`, for epochs 0 (full rate) to max_epochs (0).

    Epochs outside that range are refused: past the end the base turns negative and the power complex.
    """
    if max_epochs < 1 or not 0 <= epoch <= max_epochs:
        raise ValueError(f"epoch must lie in 0..max_epochs with max_epochs >= 1, got {epoch} of {max_epochs}")
    return initial_lr * (1 - epoch / max_epochs) ** exponent
