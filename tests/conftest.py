"""Shared fixtures: generated raw datasets, made once per test session."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from core.synthetic import PRESETS, generate_dataset

pytest_plugins = ["tests.trained_model"]


@pytest.fixture(scope="session")
def raw_dataset(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """`raw_dataset("ct", num_cases=6)`: a generated raw dataset, cached per (preset, options)."""
    made: dict[tuple, Path] = {}

    def make(preset: str, seed: int = 0, **overrides: object) -> Path:
        key = (preset, seed, tuple(sorted(overrides.items())))
        if key not in made:
            spec = replace(PRESETS[preset], **overrides)
            folder = tmp_path_factory.mktemp(f"raw_{preset}")
            made[key] = generate_dataset(folder, spec, seed=seed)
        return made[key]

    return make
