"""`nnsvc verify`, `nnsvc plan` and `nnsvc demo` as a person runs them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cli.main import main
from core.plans import load_plans


def run_cli(*arguments: str) -> subprocess.CompletedProcess[str]:
    """The installed console script, in a separate process, as a user would call it."""
    nnsvc = Path(sys.executable).with_name("nnsvc")
    return subprocess.run([str(nnsvc), *arguments], capture_output=True, text=True, timeout=600, check=False)


def test_verify_exits_0_on_a_clean_dataset_and_1_listing_every_problem(raw_dataset, tmp_path: Path) -> None:
    clean = run_cli("verify", str(raw_dataset("2d")), "--no-progress")
    assert clean.returncode == 0, clean.stderr
    assert "no problems found" in clean.stdout

    broken = tmp_path / "broken"
    shutil.copytree(raw_dataset("2d"), broken)
    (broken / "labelsTr" / "case_000.nii.gz").unlink()
    (broken / "imagesTr" / "readme.md").write_text("stray")
    result = run_cli("verify", str(broken), "--no-progress")
    assert result.returncode == 1
    assert "2 problem(s)" in result.stdout
    assert "labelsTr/case_000.nii.gz is missing" in result.stdout
    assert "imagesTr/readme.md" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_plan_refuses_a_broken_dataset_before_writing_anything(
    raw_dataset, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(raw_dataset("2d"), broken)
    (broken / "imagesTr" / "case_003_0000.nii.gz").write_bytes(b"not an image")
    document = json.loads((broken / "dataset.json").read_text())
    document["numTraining"] = 99
    (broken / "dataset.json").write_text(json.dumps(document))
    out = tmp_path / "out"
    assert main(["plan", str(broken), "-o", str(out), "--no-progress", "-j", "1"]) == 1
    error = capsys.readouterr().err
    assert "case_003_0000.nii.gz: cannot be read" in error and "numTraining=99" in error
    assert not out.exists()


def test_plan_writes_fingerprint_plans_and_preprocessed_data(raw_dataset, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_cli("plan", str(raw_dataset("2d")), "-o", str(out), "-j", "2")
    assert result.returncode == 0, result.stderr
    assert {"dataset.json", "dataset_fingerprint.json", "plans.json"} <= {p.name for p in out.iterdir()}
    plans = load_plans(out / "plans.json")
    assert list(plans.configurations) == ["2d"]  # single-slice images plan 2d only
    data_folder = out / plans.configuration("2d").data_identifier
    assert len(list(data_folder.glob("case_*_seg.npy"))) == 12
    assert "%" in result.stderr  # the progress bars were drawn


def test_plan_from_a_fingerprint_reads_no_image(raw_dataset, tmp_path: Path) -> None:
    first = tmp_path / "first"
    assert main(["plan", str(raw_dataset("ct")), "-o", str(first), "--plan-only", "--no-progress"]) == 0
    again = tmp_path / "again"
    arguments = ["plan", "--fingerprint", str(first / "dataset_fingerprint.json")]
    arguments += ["--dataset-json", str(first / "dataset.json"), "-o", str(again), "--gpu-memory-gb", "4"]
    assert main(arguments) == 0
    small, large = load_plans(again / "plans.json"), load_plans(first / "plans.json")
    small_patch = small.configuration("3d_fullres").patch_size
    large_patch = large.configuration("3d_fullres").patch_size
    # Half the memory target never buys a larger patch (METHOD.md 3.5 step 4).
    assert all(s <= b for s, b in zip(small_patch, large_patch, strict=True))
    assert not (again / "nnUNetPlans_3d_fullres").exists()


def test_plan_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "-o", str(tmp_path)]) == 2
    assert "either RAW_DIR" in capsys.readouterr().err
    assert main(["plan", "--fingerprint", "f.json", "-o", str(tmp_path)]) == 2


def test_asking_for_an_unplanned_configuration_names_the_planned_ones(
    raw_dataset, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main(["plan", str(raw_dataset("2d")), "-o", str(out), "-c", "3d_fullres", "--no-progress"]) == 1
    assert "'3d_fullres' was not planned" in capsys.readouterr().err
    assert not (out / "plans.json").exists()
