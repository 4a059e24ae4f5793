"""Cross-validation splits: the method's fold assignment, fold `all`, random folds, splits files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.training.splits import (
    SPLITS_FILE_NAME,
    Split,
    SplitsError,
    check_splits,
    generate_crossval_splits,
    load_or_create_splits,
    load_splits,
    random_split,
    save_splits,
    split_for_fold,
    splits_from_json,
)

CASES = ["c", "a", "b", "e", "d", "f", "g"]

# Derived once from nnU-Net v2 2.8.1 (tests/reference_scripts/splits_reference.py with CASES and folds
# all,0,4,5,7: `nnUNetTrainer.do_split`, i.e. sklearn KFold(5, shuffle=True, random_state=12345) on the
# sorted identifiers, and RandomState(12345 + fold) for folds past the file). The parity test re-checks
# this against the live reference for more lists.
EXPECTED_VALIDATION = [["d", "g"], ["a", "e"], ["b"], ["f"], ["c"]]
EXPECTED_RANDOM = {5: (["f", "a", "e", "d", "g"], ["b", "c"]), 7: (["a", "g", "e", "b", "c"], ["d", "f"])}


def test_crossval_assignment_equals_nnunet() -> None:
    splits = generate_crossval_splits(CASES)
    assert [list(split.val) for split in splits] == EXPECTED_VALIDATION
    for split in splits:
        assert list(split.train) == sorted(set(CASES) - set(split.val))


@pytest.mark.parametrize(("fold", "expected"), list(EXPECTED_RANDOM.items()), ids=["fold5", "fold7"])
def test_fold_past_the_file_is_the_seeded_random_split(fold: int, expected: tuple[list, list]) -> None:
    split = split_for_fold(generate_crossval_splits(CASES), CASES, fold)
    assert (list(split.train), list(split.val)) == expected


@pytest.mark.parametrize("num_cases", [5, 23, 100])
def test_every_case_validates_exactly_once_with_balanced_folds(num_cases: int) -> None:
    cases = [f"case_{i}" for i in range(num_cases)]
    splits = generate_crossval_splits(cases)
    validated = [case for split in splits for case in split.val]
    assert sorted(validated) == sorted(cases)
    sizes = [len(split.val) for split in splits]
    # KFold: the first n % 5 folds are one case longer.
    assert sizes == [num_cases // 5 + (1 if i < num_cases % 5 else 0) for i in range(5)]


def test_input_order_does_not_matter() -> None:
    assert generate_crossval_splits(CASES) == generate_crossval_splits(sorted(CASES))


def test_fold_all_trains_and_validates_on_every_case() -> None:
    split = split_for_fold([], CASES, "all")
    assert split.train == split.val == tuple(sorted(CASES))


def test_random_split_keeps_eighty_percent_for_training() -> None:
    cases = [f"case_{i}" for i in range(23)]
    split = random_split(cases, 5)
    assert len(split.train) == 18
    assert sorted(split.train + split.val) == sorted(cases)


@pytest.mark.parametrize(("cases", "folds"), [(["a", "b", "c"], 5), (CASES, 1)], ids=["too-few", "one-fold"])
def test_impossible_fold_counts_are_refused(cases: list[str], folds: int) -> None:
    with pytest.raises(SplitsError, match="cannot make"):
        generate_crossval_splits(cases, n_splits=folds)


def test_negative_fold_is_refused() -> None:
    with pytest.raises(SplitsError, match="non-negative"):
        split_for_fold([], CASES, -1)


def test_check_splits_lists_every_problem() -> None:
    splits = [
        Split(train=("a", "b", "zz"), val=("b", "c")),
        Split(train=("a", "a"), val=()),
    ]
    with pytest.raises(SplitsError) as raised:
        check_splits(splits, CASES)
    assert raised.value.problems == [
        "fold 0: 'train' names cases that do not exist: zz",
        "fold 0: cases in both 'train' and 'val': b",
        "fold 1: 'train' lists cases more than once: a",
        "fold 1: 'val' is empty",
    ]


def test_check_splits_accepts_the_generated_splits() -> None:
    check_splits(generate_crossval_splits(CASES), CASES)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"train": []}, "must be a JSON list"),
        ([{"train": ["a"], "val": "b"}], "fold 0: 'val' must be a list"),
        (["a"], "fold 0: 'train' must be a list"),
    ],
    ids=["not-a-list", "val-not-a-list", "entry-not-an-object"],
)
def test_malformed_documents_are_refused(document: object, message: str) -> None:
    with pytest.raises(SplitsError, match=message):
        splits_from_json(document)


def test_splits_file_round_trip(tmp_path: Path) -> None:
    splits = generate_crossval_splits(CASES)
    path = tmp_path / SPLITS_FILE_NAME
    save_splits(path, splits)
    assert json.loads(path.read_text())[0] == {"train": ["a", "b", "c", "e", "f"], "val": ["d", "g"]}
    assert load_splits(path) == splits


def test_unreadable_splits_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / SPLITS_FILE_NAME
    path.write_text("[{")
    with pytest.raises(SplitsError, match="not valid JSON"):
        load_splits(path)
    with pytest.raises(SplitsError, match="not found"):
        load_splits(tmp_path / "missing.json")


def test_load_or_create_writes_the_default_then_uses_the_file(tmp_path: Path) -> None:
    path = tmp_path / SPLITS_FILE_NAME
    assert load_or_create_splits(path, CASES) == generate_crossval_splits(CASES)
    custom = [Split(train=("a", "b"), val=("c",))]
    save_splits(path, custom)
    assert load_or_create_splits(path, CASES) == custom
    with pytest.raises(SplitsError, match="do not exist: c"):
        load_or_create_splits(path, ["a", "b"])
