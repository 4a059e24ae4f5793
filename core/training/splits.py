"""Cross-validation splits (METHOD.md 5.10): which cases train and which validate each fold.

The default is nnU-Net v2's: scikit-learn's `KFold(n_splits=5, shuffle=True, random_state=12345)` over
the sorted case identifiers, so a dataset gets the same case -> fold assignment here as upstream and
models of either tool can be compared fold by fold. scikit-learn is not a dependency: KFold's shuffle is
one `RandomState(seed).shuffle` of the indices, which numpy's legacy generator reproduces exactly, and
its folds are consecutive runs of the shuffled indices, the first `n % k` one longer.

Splits are stored as `splits_final.json`, a list of `{"train": [...], "val": [...]}`. A user may place
their own; `check_splits` refuses one naming unknown cases or overlapping train and validation sets.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from core.constants import SPLITS_NUM_FOLDS, SPLITS_RANDOM_TRAIN_FRACTION, SPLITS_SEED
from core.errors import ProblemsError
from core.files import read_json, write_json_atomically

SPLITS_FILE_NAME = "splits_final.json"

Fold = int | Literal["all"]


class SplitsError(ProblemsError):
    """Splits that cannot be used; `problems` lists every reason found, one readable line each."""


@dataclass(frozen=True)
class Split:
    """One fold: the training and the validation case identifiers, in the order stored."""

    train: tuple[str, ...]
    val: tuple[str, ...]

    def to_json(self) -> dict[str, list[str]]:
        return {"train": list(self.train), "val": list(self.val)}


def generate_crossval_splits(
    identifiers: Iterable[str], n_splits: int = SPLITS_NUM_FOLDS, seed: int = SPLITS_SEED
) -> list[Split]:
    """KFold(n_splits, shuffle=True, random_state=seed) over the sorted identifiers, as upstream.

    Both lists of a fold come out sorted, because KFold returns indices in ascending order.
    """
    cases = sorted(identifiers)
    if n_splits < 2 or n_splits > len(cases):
        raise SplitsError(
            [
                f"cannot make {n_splits} cross-validation folds from {len(cases)} cases "
                "(need 2 <= folds <= cases)"
            ]
        )
    order = np.arange(len(cases))
    np.random.RandomState(seed).shuffle(order)
    fold_sizes = np.full(n_splits, len(cases) // n_splits)
    fold_sizes[: len(cases) % n_splits] += 1
    splits = []
    start = 0
    for size in fold_sizes:
        is_val = np.zeros(len(cases), dtype=bool)
        is_val[order[start : start + size]] = True
        start += size
        splits.append(
            Split(
                train=tuple(c for c, v in zip(cases, is_val, strict=True) if not v),
                val=tuple(c for c, v in zip(cases, is_val, strict=True) if v),
            )
        )
    return splits


def random_split(identifiers: Iterable[str], fold: int) -> Split:
    """The seeded 80:20 split upstream uses for a fold past the last split in the file.

    `RandomState(12345 + fold).choice` picks int(0.8 n) training cases from the sorted identifiers,
    listed in the order drawn; the rest validate, in sorted order.
    """
    cases = sorted(identifiers)
    generator = np.random.RandomState(SPLITS_SEED + fold)
    chosen = generator.choice(len(cases), int(len(cases) * SPLITS_RANDOM_TRAIN_FRACTION), replace=False)
    chosen_set = {int(i) for i in chosen}
    return Split(
        train=tuple(cases[int(i)] for i in chosen),
        val=tuple(c for i, c in enumerate(cases) if i not in chosen_set),
    )


def split_for_fold(splits: Sequence[Split], identifiers: Iterable[str], fold: Fold) -> Split:
    """The split a fold trains on: `all` (every case trains and validates), a stored fold, or a random one.

    Identifiers of fold `all` are sorted; upstream lists them in directory order.
    """
    if fold == "all":
        cases = tuple(sorted(identifiers))
        return Split(train=cases, val=cases)
    if fold < 0:
        raise SplitsError([f"fold must be 'all' or a non-negative integer, got {fold}"])
    if fold < len(splits):
        return splits[fold]
    return random_split(identifiers, fold)


def check_splits(splits: Sequence[Split], identifiers: Iterable[str]) -> None:
    """Raise `SplitsError` listing every problem: unknown cases, overlaps, duplicates, empty lists."""
    known = set(identifiers)
    problems: list[str] = []
    if not splits:
        problems.append("splits: the list of folds is empty")
    for index, split in enumerate(splits):
        for part in ("train", "val"):
            names = getattr(split, part)
            if not names:
                problems.append(f"fold {index}: '{part}' is empty")
            unknown = sorted(set(names) - known)
            if unknown:
                problems.append(f"fold {index}: '{part}' names cases that do not exist: {', '.join(unknown)}")
            duplicated = sorted({n for n in names if names.count(n) > 1})
            if duplicated:
                problems.append(f"fold {index}: '{part}' lists cases more than once: {', '.join(duplicated)}")
        overlap = sorted(set(split.train) & set(split.val))
        if overlap:
            problems.append(f"fold {index}: cases in both 'train' and 'val': {', '.join(overlap)}")
    if problems:
        raise SplitsError(problems)


def splits_from_json(document: object) -> list[Split]:
    """Parse a `splits_final.json` document, collecting every structural problem."""
    if not isinstance(document, list):
        raise SplitsError(['splits: must be a JSON list of {"train": [...], "val": [...]} objects'])
    problems: list[str] = []
    splits = []
    for index, entry in enumerate(document):
        parts: dict[str, tuple[str, ...]] = {}
        for part in ("train", "val"):
            value = entry.get(part) if isinstance(entry, dict) else None
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                parts[part] = tuple(value)
            else:
                problems.append(f"fold {index}: '{part}' must be a list of case identifiers")
        if len(parts) == 2:
            splits.append(Split(train=parts["train"], val=parts["val"]))
    if problems:
        raise SplitsError(problems)
    return splits


def load_splits(path: Path) -> list[Split]:
    """Read a splits file (structure checked; use `check_splits` against the dataset's cases)."""
    return splits_from_json(read_json(path, SplitsError, "splits file"))


def stored_splits(path: Path) -> list[Split]:
    """The splits in `path`, or none when no splits file exists (yet)."""
    return load_splits(path) if Path(path).is_file() else []


def save_splits(path: Path, splits: Sequence[Split]) -> None:
    write_json_atomically(Path(path), [split.to_json() for split in splits])


def load_or_create_splits(path: Path, identifiers: Iterable[str]) -> list[Split]:
    """The splits in `path`, checked against the cases; or the default 5 folds, written there first."""
    cases = list(identifiers)
    if Path(path).is_file():
        splits = load_splits(path)
        check_splits(splits, cases)
        return splits
    splits = generate_crossval_splits(cases)
    save_splits(path, splits)
    return splits
