"""nnU-Net v2's `do_split` and ours assign every case to the same fold (METHOD.md 5.10)."""

from __future__ import annotations

import json

import pytest

from core.training.splits import generate_crossval_splits, split_for_fold
from tests.reference import run_reference

pytestmark = pytest.mark.parity

FOLDS = ["all", "0", "1", "2", "3", "4", "5", "6", "9"]

# Unsorted on purpose, with names whose sort order is easy to get wrong: numbers without padding,
# upper before lower case, a prefix of another name.
CASE_LISTS = {
    "5 cases": ["case_4", "case_0", "case_3", "case_1", "case_2"],
    "7 cases": ["liver_10", "liver_2", "Liver_3", "liver_1", "liver_1b", "liver_20", "liver"],
    "23 cases": [f"BraTS_{i:03d}" for i in reversed(range(23))],
    "100 cases": [f"patient{(i * 37) % 100}" for i in range(100)],
}


@pytest.fixture(scope="module")
def reference() -> dict[str, dict]:
    # One reference process for every list: importing nnU-Net's trainer takes seconds.
    results = run_reference("splits_reference.py", json.dumps(list(CASE_LISTS.values())), ",".join(FOLDS))
    return dict(zip(CASE_LISTS, results, strict=True))


@pytest.mark.parametrize("name", list(CASE_LISTS))
def test_crossval_splits_equal_nnunet(reference: dict[str, dict], name: str) -> None:
    ours = [split.to_json() for split in generate_crossval_splits(CASE_LISTS[name])]
    assert ours == reference[name]["splits_final"]


@pytest.mark.parametrize("name", list(CASE_LISTS))
def test_every_fold_equals_nnunet(reference: dict[str, dict], name: str) -> None:
    cases = CASE_LISTS[name]
    splits = generate_crossval_splits(cases)
    for fold in FOLDS:
        theirs = reference[name]["folds"][fold]
        ours = split_for_fold(splits, cases, "all" if fold == "all" else int(fold)).to_json()
        if fold == "all":
            # Upstream lists fold `all` in directory order; we sort it.
            theirs = {part: sorted(names) for part, names in theirs.items()}
        assert ours == theirs, fold
