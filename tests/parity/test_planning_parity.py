"""Parity: our planner against nnU-Net v2's planner classes on the same fingerprints.

One reference subprocess plans every job in the table (importing nnunetv2 once), and each job's
test compares the whole plans document: every decision (target spacing, transposition, the
configurations present, patch size, strides, kernels, features, stages, batch size, batch Dice,
normalization, mask use, resampling, data identifiers, stage links) and nnU-Net's key order.
It also reads the nnU-Net-written file with `Plans.from_json` and writes it back unchanged.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from core.network_size import conv_feature_map_size
from core.planner_presets import PRESETS
from core.planning import architecture_for, plan_experiment
from core.plans import Plans
from core.topology import compute_topology
from tests.planning_cases import CASES, make_dataset_json, make_fingerprint, make_spec
from tests.reference import ReferenceUnavailable, reference_python, run_reference

pytestmark = pytest.mark.parity

# (case, preset, gpu_memory_gb or None for the preset's default)
JOBS = [
    *[(name, "default", None) for name in CASES],
    ("mr_isotropic", "ResEncM", None),
    ("ct_anisotropic", "ResEncM", None),
    ("single_slice_2d", "ResEncM", None),
    ("large_ct", "ResEncM", None),
    ("ct_anisotropic", "ResEncL", None),
    ("large_ct", "ResEncL", None),
    ("thick_slice_mr", "ResEncL", None),
    ("large_ct", "ResEncXL", None),
    ("brain_mr_cropped", "ResEncXL", None),
    ("mr_isotropic", "default", 4.0),
    ("ct_anisotropic", "default", 4.0),
    ("large_ct", "default", 24.0),
    ("ct_anisotropic", "default", 24.0),
    ("single_slice_2d", "default", 24.0),
    ("ct_anisotropic", "ResEncL", 12.0),
]


def job_name(job: tuple[str, str, float | None]) -> str:
    case, preset, gpu = job
    return f"{case}-{preset}-{'default' if gpu is None else f'{gpu:g}GB'}"


def dataset_name(index: int) -> str:
    """The folder name the reference script gives job `index` (plans record it)."""
    return f"Dataset{index + 1:03d}_Job"


@pytest.fixture(scope="module")
def reference_plans(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    try:
        reference_python()
    except ReferenceUnavailable as error:
        pytest.skip(str(error))
    folder = tmp_path_factory.mktemp("planning_parity")
    jobs = []
    for job in JOBS:
        case, preset, gpu = job
        name = job_name(job)
        fingerprint_path = folder / f"{name}_fingerprint.json"
        dataset_json_path = folder / f"{name}_dataset.json"
        fingerprint_path.write_text(json.dumps(make_fingerprint(CASES[case]).to_json()))
        dataset_json_path.write_text(json.dumps(make_dataset_json(CASES[case])))
        jobs.append(
            {
                "name": name,
                "fingerprint": str(fingerprint_path),
                "dataset_json": str(dataset_json_path),
                "planner": PRESETS[preset].planner_name,
                "gpu_memory_target_in_gb": gpu,
            }
        )
    jobs_file = folder / "jobs.json"
    jobs_file.write_text(json.dumps({"jobs": jobs}))
    return run_reference("plan_experiment.py", str(jobs_file))["results"]


def differences(ours: object, reference: object, path: str = "plans") -> list[str]:
    """Every place where two JSON documents differ; numbers equal to 1e-9 relative, keys in order."""
    if isinstance(reference, dict) and isinstance(ours, dict):
        if list(ours) != list(reference):
            return [f"{path}: keys {list(ours)} != reference {list(reference)}"]
        found = []
        for key in reference:
            found += differences(ours[key], reference[key], f"{path}.{key}")
        return found
    if isinstance(reference, list) and isinstance(ours, list):
        if len(ours) != len(reference):
            return [f"{path}: {ours} != reference {reference}"]
        found = []
        for index, (a, b) in enumerate(zip(ours, reference, strict=True)):
            found += differences(a, b, f"{path}[{index}]")
        return found
    is_number = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (ours, reference))
    if is_number and math.isclose(ours, reference, rel_tol=1e-9):  # type: ignore[arg-type]
        return []
    if ours == reference and type(ours) is type(reference):
        return []
    return [f"{path}: ours {ours!r} != reference {reference!r}"]


@pytest.mark.parametrize("index", range(len(JOBS)), ids=[job_name(j) for j in JOBS])
def test_plans_match_nnunet(index: int, reference_plans: dict[str, dict]) -> None:
    case, preset, gpu = JOBS[index]
    reference = reference_plans[job_name(JOBS[index])]
    ours = plan_experiment(
        make_fingerprint(CASES[case]),
        make_spec(CASES[case]),
        gpu_memory_gb=gpu,
        preset=preset,
        dataset_name=dataset_name(index),
    )
    assert differences(json.loads(json.dumps(ours.to_json())), reference) == []


@pytest.mark.parametrize("index", range(len(JOBS)), ids=[job_name(j) for j in JOBS])
def test_nnunet_plans_round_trip(index: int, reference_plans: dict[str, dict], tmp_path: Path) -> None:
    """An nnU-Net-written plans file reads, resolves the cascade, and writes back the same."""
    reference = reference_plans[job_name(JOBS[index])]
    plans = Plans.from_json(reference)
    assert differences(plans.to_json(), reference) == []
    if "3d_cascade_fullres" in plans.configurations:
        cascade = plans.configuration("3d_cascade_fullres")
        assert cascade.previous_stage == "3d_lowres"
        assert cascade.patch_size == plans.configuration("3d_fullres").patch_size


def random_network_cases(count: int, seed: int = 0) -> list[dict]:
    """Networks as the planner would write them, for random spacings and (unpadded) patches."""
    rng = np.random.default_rng(seed)
    cases = []
    for index in range(count):
        dim = int(rng.integers(2, 4))
        spacing = rng.choice([0.5, 0.8, 1.0, 2.5, 5.0], dim)
        patch = [int(p) for p in rng.integers(8, 200, dim)]
        preset = PRESETS["default" if index % 2 else "ResEncL"]
        topology = compute_topology(spacing, patch)
        architecture = architecture_for(topology, preset)
        cases.append(
            {
                "network_class_name": architecture.network_class_name,
                "arch_kwargs": architecture.arch_kwargs,
                "input_channels": int(rng.integers(1, 4)),
                "num_classes": int(rng.integers(2, 6)),
                "deep_supervision": bool(index % 3 == 0),
                "patch_size": patch if index % 4 == 0 else list(topology.patch_size),
            }
        )
    return cases


def test_network_size_matches_dynamic_network_architectures(tmp_path: Path) -> None:
    try:
        reference_python()
    except ReferenceUnavailable as error:
        pytest.skip(str(error))
    cases = random_network_cases(24)
    cases_file = tmp_path / "cases.json"
    cases_file.write_text(json.dumps({"cases": cases}))
    expected = run_reference("conv_feature_map_size.py", str(cases_file))["sizes"]
    ours = [
        conv_feature_map_size(
            case["network_class_name"],
            case["arch_kwargs"],
            case["num_classes"],
            case["patch_size"],
            case["deep_supervision"],
        )
        for case in cases
    ]
    assert ours == expected
