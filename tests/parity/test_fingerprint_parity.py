"""nnU-Net v2's fingerprint of the same generated raw datasets equals ours (METHOD.md 2)."""

from __future__ import annotations

import numpy as np
import pytest

from core.fingerprint import extract_fingerprint
from tests.reference import run_reference

pytestmark = pytest.mark.parity


@pytest.mark.parametrize("preset", ["mr", "ct", "2d"])
def test_fingerprint_equals_nnunet(raw_dataset, preset: str) -> None:
    raw = raw_dataset(preset)
    reference = run_reference("fingerprint.py", str(raw), "2")
    ours = extract_fingerprint(raw, workers=2).to_json()

    np.testing.assert_allclose(ours["spacings"], reference["spacings"], rtol=0, atol=1e-12)
    assert ours["shapes_after_crop"] == reference["shapes_after_crop"]
    assert ours["median_relative_size_after_cropping"] == pytest.approx(
        reference["median_relative_size_after_cropping"], rel=1e-12
    )
    theirs = reference["foreground_intensity_properties_per_channel"]
    assert set(ours["foreground_intensity_properties_per_channel"]) == set(theirs)
    for channel, stats in ours["foreground_intensity_properties_per_channel"].items():
        for key, value in stats.items():
            # Order statistics are exact; moments differ only by nnU-Net's float32 accumulation.
            tolerance = 1e-6 if key in ("mean", "std") else 1e-7
            assert value == pytest.approx(theirs[channel][key], rel=tolerance), (channel, key)
