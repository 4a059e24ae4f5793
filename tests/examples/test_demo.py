"""`nnsvc demo`, the README's main job, as written but with a tiny budget: it walks upload → plan →
train → predict → evaluate over HTTP, prints the Dice it reached and where the files are, and leaves
them there. (Its clean stop on Ctrl-C is checked when the package's live service is torn down.)"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import SimpleITK as sitk

from tests.examples.conftest import LiveService


def printed_path(output: str, label: str) -> Path:
    match = re.search(rf"^{label}:\s+(\S+)", output, re.MULTILINE)
    assert match, f"no '{label}:' line in\n{output}"
    return Path(match.group(1))


def test_the_demo_walks_the_whole_path_and_prints_the_dice(live_service: LiveService) -> None:
    out = live_service.demo_output
    steps = [line[:3] for line in out.splitlines() if re.match(r"\d/7 ", line)]
    assert steps == [f"{step}/7" for step in range(1, 8)], out
    dice = re.search(r"^\s+foreground mean\s+(\d\.\d{4})$", out, re.MULTILINE)
    assert dice and 0.0 <= float(dice.group(1)) <= 1.0, out
    assert re.search(r"^\s+organ\s+\d\.\d{4}$", out, re.MULTILINE), out


def test_the_files_it_names_exist(live_service: LiveService) -> None:
    out = live_service.demo_output
    for label in ("segmentation", "training curves", "evaluation"):
        assert printed_path(out, label).is_file(), label
    assert printed_path(out, "training curves").read_bytes().startswith(b"\x89PNG")
    segmentation = sitk.ReadImage(str(printed_path(out, "segmentation")))
    held_out = sitk.ReadImage(str(live_service.test_images[0]))
    assert (segmentation.GetSize(), segmentation.GetSpacing()) == (held_out.GetSize(), held_out.GetSpacing())


def test_the_api_docs_it_names_are_served(live_service: LiveService) -> None:
    docs = re.search(r"^API docs:\s+(http://\S+/docs)", live_service.demo_output, re.MULTILINE)
    assert docs and docs.group(1) == f"{live_service.url}/docs"
    assert httpx.get(docs.group(1), timeout=30).status_code == 200
    paths = httpx.get(f"{live_service.url}/openapi.json", timeout=30).json()["paths"]
    assert {"/v1/datasets/upload", "/v1/trainings", "/v1/predictions", "/v1/evaluations"} <= set(paths)
