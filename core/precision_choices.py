"""The precision names every front door accepts ("auto", "fp32", "bf16", "fp16"), apart from
core.precision so that argument parsers and option records need no torch."""

from __future__ import annotations

from typing import Literal, get_args

PrecisionChoice = Literal["auto", "fp32", "bf16", "fp16"]
PRECISION_CHOICES: tuple[str, ...] = get_args(PrecisionChoice)
