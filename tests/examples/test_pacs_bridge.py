"""examples/pacs_bridge.py against the live server: a study sent through a network that fails twice is
segmented exactly once, and sending it again returns the first prediction."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import SimpleITK as sitk

from service.db.models import Role
from tests.examples.conftest import LiveService, run_example
from tests.examples.flaky_proxy import FlakyProxy


def geometry(path: Path) -> tuple:
    image = sitk.ReadImage(str(path))
    return image.GetSize(), image.GetSpacing(), image.GetOrigin(), image.GetDirection()


def prediction_id(output: str) -> str:
    match = re.search(r"prediction (\w+) \(job", output)
    assert match, output
    return match.group(1)


def test_a_study_through_a_flaky_network_is_segmented_once(live_service: LiveService, tmp_path: Path) -> None:
    study, out = live_service.test_images[0], tmp_path / "segmentations"
    arguments = ["--key", live_service.keys[Role.predictor], "--model", live_service.model]
    arguments += ["--out", str(out), str(study)]
    before = live_service.jobs("predict")
    proxy = FlakyProxy(urlsplit(live_service.url).port or 0, ["unavailable", "lose_answer"])
    try:
        first = run_example("pacs_bridge.py", "--url", proxy.url, *arguments)
    finally:
        proxy.close()
    assert first.returncode == 0, first.stdout + first.stderr
    assert proxy.faults_done == ["unavailable", "lose_answer"]
    assert first.stderr.count("retrying in") == 2, first.stderr
    # The lost answer's prediction was made; the retry got it back instead of a second one.
    assert live_service.jobs("predict") == before + 1
    saved = out / study.name.replace("_0000", "")
    assert f"saved {saved}" in first.stdout
    assert geometry(saved) == geometry(study)

    again = run_example("pacs_bridge.py", "--url", live_service.url, *arguments)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "already known" in again.stdout
    assert prediction_id(again.stdout) == prediction_id(first.stdout)
    assert live_service.jobs("predict") == before + 1


def test_a_refused_study_exits_2_with_the_servers_reason(live_service: LiveService, tmp_path: Path) -> None:
    broken = tmp_path / "study_0000.nii.gz"
    broken.write_bytes(b"not an image")
    result = run_example(
        "pacs_bridge.py",
        *["--url", live_service.url, "--key", live_service.keys[Role.predictor]],
        *["--model", live_service.model, "--out", str(tmp_path / "out"), str(broken)],
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "posting the study: 422" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()
