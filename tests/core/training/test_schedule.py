"""The polynomial learning-rate schedule (METHOD.md 5.1)."""

from __future__ import annotations

import pytest

from core.constants import TRAINING_INITIAL_LR
from core.training.schedule import poly_lr


@pytest.mark.parametrize(
    ("epoch", "expected"),
    [(0, 0.01), (1, 0.01 * 0.999**0.9), (500, 0.01 * 0.5**0.9), (999, 0.01 * 0.001**0.9), (1000, 0.0)],
)
def test_method_schedule(epoch: int, expected: float) -> None:
    assert poly_lr(epoch, 1000) == pytest.approx(expected, rel=1e-12, abs=0)


def test_defaults_are_the_method_constants() -> None:
    assert poly_lr(0, 10) == TRAINING_INITIAL_LR
    assert poly_lr(5, 10, initial_lr=1.0, exponent=1.0) == 0.5


@pytest.mark.parametrize(("epoch", "max_epochs"), [(-1, 10), (11, 10), (0, 0)])
def test_epochs_outside_the_schedule_are_refused(epoch: int, max_epochs: int) -> None:
    with pytest.raises(ValueError, match="epoch must lie"):
        poly_lr(epoch, max_epochs)
