"""The demo's own pieces: its work folder and its sample dataset. The demo itself runs end to end in
tests/examples/test_demo.py, whose server the example tests then use."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.demo_commands import MARKER, DemoError, make_sample, prepare_workdir
from core.errors import ProblemsError


def test_a_workdir_of_an_earlier_demo_is_cleared_and_any_other_is_left_alone(tmp_path: Path) -> None:
    earlier = tmp_path / "earlier"
    prepare_workdir(earlier)
    (earlier / "data").mkdir()
    assert list(prepare_workdir(earlier).iterdir()) == [earlier / MARKER]

    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("keep me")
    with pytest.raises(DemoError, match="not touching them"):
        prepare_workdir(precious)
    assert (precious / "thesis.tex").read_text() == "keep me"


def test_the_sample_holds_out_labelled_test_cases(tmp_path: Path) -> None:
    raw = make_sample(tmp_path, num_cases=7, num_test=2, image_size=32)
    assert len(list((raw / "imagesTr").iterdir())) == len(list((raw / "labelsTr").iterdir())) == 5
    assert sorted(p.name for p in (raw / "labelsTs").iterdir()) == ["case_005.nii.gz", "case_006.nii.gz"]
    assert '"numTraining": 5' in (raw / "dataset.json").read_text()
    with pytest.raises(ProblemsError) as refused:
        make_sample(tmp_path / "bad", num_cases=4, num_test=0, image_size=8)
    assert len(refused.value.problems) == 3
