"""Parity with nnU-Net v2's preprocessing, run in its own environment (tests/reference.py).

Both tools preprocess the same generated raw dataset with the same (nnU-Net-written) plans; data must
agree to float32 rounding, label maps and class locations exactly, crop boxes and shapes exactly.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from core.plans import load_plans
from core.preprocessed import load_case
from core.preprocessing import preprocess
from core.resampling import resample
from tests.reference import run_reference

pytestmark = pytest.mark.parity

DATASETS = {
    "ct": ({"num_cases": 4, "shape": (20, 64, 64)}, ("3d_fullres", "2d")),
    "mr": ({"num_cases": 3, "shape": (24, 28, 24), "spacing_mm": (1.0, 0.9, 1.1)}, ("3d_fullres",)),
}


def compare_folders(ours: Path, reference: Path) -> tuple[float, int]:
    """Largest data difference and label-map disagreements; asserts everything that must be equal."""
    worst, mismatches = 0.0, 0
    identifiers = sorted(p.stem for p in reference.glob("*.json"))
    assert identifiers
    for identifier in identifiers:
        data, seg, properties = load_case(ours, identifier)
        expected = json.loads((reference / f"{identifier}.json").read_text())
        assert list(properties.shape_before_cropping) == expected["shape_before_cropping"]
        assert [list(b) for b in properties.bbox_used_for_cropping] == expected["bbox_used_for_cropping"]
        assert (
            list(properties.shape_after_cropping_and_before_resampling)
            == expected["shape_after_cropping_and_before_resampling"]
        )
        np.testing.assert_allclose(properties.spacing, expected["spacing"], rtol=1e-6)
        reference_data = np.load(reference / f"{identifier}.npy")
        reference_seg = np.load(reference / f"{identifier}_seg.npy")
        assert data.shape == reference_data.shape and seg is not None
        worst = max(worst, float(np.abs(data - reference_data).max()))
        mismatches += int((seg != reference_seg).sum())
        locations = np.load(reference / f"{identifier}_locations.npz")
        assert sorted(locations.files) == sorted(expected["class_location_keys"])
        for text in locations.files:
            key = int(text) if "," not in text else tuple(int(v) for v in text.split(",") if v)
            np.testing.assert_array_equal(properties.class_locations[key], locations[text])
    return worst, mismatches


@pytest.mark.parametrize("preset", sorted(DATASETS))
def test_preprocessing_equals_nnunet(preset: str, raw_dataset: Callable[..., Path], tmp_path: Path) -> None:
    overrides, configurations = DATASETS[preset]
    raw = raw_dataset(preset, **overrides)
    plans_path = tmp_path / "nnUNetPlans.json"
    run_reference("preprocess_reference.py", "plan", str(raw), str(plans_path), "2")
    plans = load_plans(plans_path)
    for configuration in configurations:
        if configuration not in plans.configurations:
            continue
        reference = tmp_path / f"reference_{configuration}"
        run_reference(
            "preprocess_reference.py",
            "preprocess",
            str(raw),
            str(plans_path),
            configuration,
            str(reference),
            "2",
        )
        summary = preprocess(raw, plans, configuration, tmp_path / "ours", workers=2)
        worst, mismatches = compare_folders(summary.folder, reference)
        assert worst < 1e-4, f"{configuration}: data differs by {worst}"
        assert mismatches == 0, f"{configuration}: {mismatches} label voxels differ"


def test_resampling_equals_nnunet_on_arrays(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    smooth = ndimage.gaussian_filter(rng.normal(size=(2, 10, 30, 26)), 1.5).astype(np.float32)
    labels = rng.integers(-1, 4, size=(1, 10, 30, 26)).astype(np.int8)
    cases = [
        (smooth, (14, 41, 20), (3.5, 1.0, 1.0), (2.5, 0.73, 1.3), False, 3, 0),
        (smooth, (12, 24, 30), (1.0, 1.0, 1.0), (0.8, 1.25, 0.9), False, 3, 0),
        (smooth, (5, 30, 26), (1.0, 1.0, 1.0), (2.0, 1.0, 1.0), False, 1, 0),
        (labels, (14, 41, 20), (3.5, 1.0, 1.0), (2.5, 0.73, 1.3), True, 1, 0),
        (labels, (5, 15, 13), (1.0, 1.0, 1.0), (2.0, 2.0, 2.0), True, 1, 0),
        (labels, (20, 30, 26), (4.0, 1.0, 1.0), (2.0, 1.0, 1.0), True, 1, 1),
    ]
    arrays, arguments = {}, []
    for index, (array, shape, current, target, is_seg, order, order_z) in enumerate(cases):
        arrays[f"array_{index}"] = array
        arguments.append(
            {
                "new_shape": list(shape),
                "current_spacing": list(current),
                "new_spacing": list(target),
                "is_seg": is_seg,
                "order": order,
                "order_z": order_z,
                "force_separate_z": None,
            }
        )
    np.savez(tmp_path / "in.npz", arguments=json.dumps(arguments), **arrays)
    run_reference("preprocess_resampling.py", str(tmp_path / "in.npz"), str(tmp_path / "out.npz"))
    expected = np.load(tmp_path / "out.npz")
    for index, (array, shape, current, target, is_seg, order, order_z) in enumerate(cases):
        kwargs = {"is_seg": is_seg, "order": order, "order_z": order_z, "force_separate_z": None}
        ours = resample(array, shape, current, target, kwargs)
        reference = expected[f"result_{index}"]
        if is_seg:
            np.testing.assert_array_equal(ours, reference.astype(ours.dtype), err_msg=str(index))
        else:
            np.testing.assert_allclose(ours, reference, atol=1e-5 * np.ptp(array), err_msg=str(index))
