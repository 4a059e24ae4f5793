"""nnU-Net v2's postprocessing files: read without running pickled code, written as nnU-Net loads them."""

from __future__ import annotations

import json
import os
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest

from core.errors import ProblemsError
from core.interop.postprocessing import (
    NNUNET_FUNCTION,
    nnunet_postprocessing_json,
    nnunet_postprocessing_pickle,
    read_nnunet_postprocessing,
)
from core.postprocessing import KeepLargestComponent
from tests.core.interop.support import nnunet_postprocessing_bytes

FOREGROUND = [1, 2, 3]


def read_pickle(folder: Path, data: bytes, foreground: list[int] = FOREGROUND):
    folder.mkdir(exist_ok=True)
    (folder / "postprocessing.pkl").write_bytes(data)
    return read_nnunet_postprocessing(folder, foreground, folder.name)


@pytest.mark.parametrize(
    ("labels_or_regions", "expected"),
    [
        ([[np.int64(1), np.int64(2), np.int64(3)]], ((1, 2, 3),)),  # step A: all foreground labels
        ([np.int64(2), (1, 3)], ((2,), (1, 3))),  # step B: a label, then a region
        ([], ()),
    ],
    ids=["foreground", "label-and-region", "none"],
)
def test_reads_the_pickle_nnunet_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, labels_or_regions: list, expected: tuple
) -> None:
    data = nnunet_postprocessing_bytes(monkeypatch, labels_or_regions)
    choice = read_pickle(tmp_path / "pp", data)
    assert choice.steps == tuple(KeepLargestComponent(labels) for labels in expected)


class Exploit:
    def __init__(self, canary: Path) -> None:
        self.canary = canary

    def __reduce__(self) -> tuple:
        return os.system, (f"touch {self.canary}",)


def test_refuses_a_pickle_naming_anything_else(tmp_path: Path) -> None:
    canary = tmp_path / "code-ran"
    data = pickle.dumps(([Exploit(canary)], [{"labels_or_regions": 1}]))
    with pytest.raises(ProblemsError, match=r"pp/postprocessing.pkl: refused, it names posix.system"):
        read_pickle(tmp_path / "pp", data)
    assert not canary.exists()


def test_nnunets_function_cannot_be_called_by_the_pickle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nnunet_postprocessing_bytes(monkeypatch, [])  # puts the stand-in function where pickle finds it
    function = getattr(sys.modules["nnunetv2.postprocessing.remove_connected_components"], NNUNET_FUNCTION)

    class Call:
        def __reduce__(self) -> tuple:
            return function, (1, 1)

    with pytest.raises(ProblemsError, match="refused, '_KeepLargestMarker' object is not callable"):
        read_pickle(tmp_path / "pp", pickle.dumps(([Call()], [{"labels_or_regions": 1}])))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"labels_or_regions": 7}, "not foreground labels"),
        ({"labels_or_regions": 1, "background_label": 2}, "not supported"),
        ({"labels": 1}, "lack labels_or_regions"),
        ({"labels_or_regions": "liver"}, "is not a label"),
    ],
    ids=["unknown-label", "other-background", "no-labels", "text"],
)
def test_refuses_arguments_it_cannot_follow(tmp_path: Path, kwargs: dict, message: str) -> None:
    (tmp_path / "postprocessing.json").write_text(
        json.dumps({"postprocessing_fns": [NNUNET_FUNCTION], "postprocessing_kwargs": [kwargs]})
    )
    with pytest.raises(ProblemsError, match=message):
        read_nnunet_postprocessing(tmp_path, FOREGROUND, "model")


def test_prefers_the_json_and_keeps_its_metrics(tmp_path: Path) -> None:
    document = {
        "input_folder": {"foreground_mean": {"Dice": 0.5}},
        "postprocessed": {"foreground_mean": {"Dice": 0.6}},
        "postprocessing_fns": [NNUNET_FUNCTION],
        "postprocessing_kwargs": [{"labels_or_regions": [1, 2, 3]}],
    }
    (tmp_path / "postprocessing.json").write_text(json.dumps(document))
    (tmp_path / "postprocessing.pkl").write_bytes(b"not a pickle at all")
    choice = read_nnunet_postprocessing(tmp_path, FOREGROUND, "model")
    assert choice.steps == (KeepLargestComponent((1, 2, 3)),)
    assert choice.to_our_json()["postprocessed"] == {"foreground_mean": {"Dice": 0.6}}


def test_written_files_read_back_and_unpickle_as_nnunet_would(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps = (KeepLargestComponent((1, 2)), KeepLargestComponent((3,)))
    data = nnunet_postprocessing_pickle(steps)
    assert read_pickle(tmp_path / "pickle", data).steps == steps
    nnunet_postprocessing_bytes(monkeypatch, [])
    functions, kwargs = pickle.loads(data)  # what nnU-Net's load_pickle sees
    assert [f.__name__ for f in functions] == [NNUNET_FUNCTION] * 2
    assert kwargs == [{"labels_or_regions": [1, 2]}, {"labels_or_regions": [3]}]
    (tmp_path / "json").mkdir()
    (tmp_path / "json" / "postprocessing.json").write_text(nnunet_postprocessing_json(steps, {}))
    assert read_nnunet_postprocessing(tmp_path / "json", FOREGROUND, "json").steps == steps
