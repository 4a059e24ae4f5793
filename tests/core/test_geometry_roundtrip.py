"""Geometry round trip on an oblique, anisotropic image: read, crop, resample, revert, write gives back
the same shape, spacing, origin and direction (METHOD.md 1.3, "Geometry restoration at export")."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from core.dataset import load_dataset
from core.io import read_segmentation, write_segmentation
from core.preprocessing import preprocess_case_files, revert_segmentation_geometry
from tests.core.preprocessing_support import plan_dataset


def test_oblique_anisotropic_round_trip(raw_dataset: Callable[..., Path], tmp_path: Path) -> None:
    # coarse x axis, so that the planner transposes it first and the revert must transpose back
    raw = raw_dataset("mr", num_cases=2, shape=(40, 36, 12), spacing_mm=(0.9, 0.8, 3.2), is_oblique=True)
    plans = plan_dataset(raw)
    assert plans.transpose_forward != [0, 1, 2]
    _, cases = load_dataset(raw)
    case = cases[0]
    data, seg, properties = preprocess_case_files(case.images, case.label, plans, "3d_fullres")
    assert seg is not None and data.shape[1:] != properties.shape_before_cropping

    reverted = revert_segmentation_geometry(seg[0], properties, plans, "3d_fullres")
    written = tmp_path / "case.nii.gz"
    write_segmentation(reverted, properties.geometry, written)

    image = sitk.ReadImage(str(case.images[0]))
    result = sitk.ReadImage(str(written))
    assert result.GetSize() == image.GetSize()
    np.testing.assert_allclose(result.GetSpacing(), image.GetSpacing(), rtol=1e-6)
    np.testing.assert_allclose(result.GetOrigin(), image.GetOrigin(), atol=1e-6)
    np.testing.assert_allclose(result.GetDirection(), image.GetDirection(), atol=1e-6)
    assert not np.allclose(image.GetDirection(), np.eye(3).ravel())

    original, _ = read_segmentation(case.label)
    restored = sitk.GetArrayFromImage(result)
    organ = (original == 1), (restored == 1)
    dice = 2 * np.logical_and(*organ).sum() / (organ[0].sum() + organ[1].sum())
    assert dice > 0.9
