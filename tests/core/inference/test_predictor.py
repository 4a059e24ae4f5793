"""The predictor end to end on a tiny trained model: geometry, files, folds, postprocessing, errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from core.inference import Predictor, PredictorError
from core.io import read_image
from core.preprocessing import preprocess_case_files


def case_files(root: Path, index: int = 0) -> list[Path]:
    return [root / "raw" / "imagesTr" / f"case_{index:03d}_0000.nii.gz"]


@pytest.mark.parametrize(("configuration", "use_mirroring"), [("3d_fullres", True), ("2d", False)])
def test_written_segmentation_has_exactly_the_input_geometry(
    tiny_model: Path, tmp_path: Path, configuration: str, use_mirroring: bool
) -> None:
    predictor = Predictor.from_model_dir(
        tiny_model / "model", configuration, device="cpu", use_mirroring=use_mirroring
    )
    out = predictor.predict_to_file(case_files(tiny_model), tmp_path / "case_000.nii.gz")
    image = sitk.ReadImage(str(case_files(tiny_model)[0]))
    written = sitk.ReadImage(str(out))
    direction = np.array(image.GetDirection()).reshape(3, 3)
    assert not np.allclose(np.abs(direction), np.eye(3))  # really oblique
    assert max(image.GetSpacing()) / min(image.GetSpacing()) > 3  # really anisotropic
    assert written.GetSize() == image.GetSize()
    assert written.GetSpacing() == image.GetSpacing()
    assert written.GetOrigin() == image.GetOrigin()
    assert written.GetDirection() == image.GetDirection()
    assert written.GetPixelID() == sitk.sitkUInt8
    assert set(np.unique(sitk.GetArrayFromImage(written))) <= {0, 1, 2}


def test_probabilities_are_saved_in_reader_order_and_agree_with_the_segmentation(
    tiny_model: Path, tmp_path: Path
) -> None:
    predictor = Predictor.from_model_dir(
        tiny_model / "model", "3d_fullres", device="cpu", use_mirroring=False
    )
    input_dir = tmp_path / "in"
    input_dir.mkdir()
    shutil.copy(case_files(tiny_model, 1)[0], input_dir)
    events: list[float] = []
    written = predictor.predict_folder(
        input_dir,
        tmp_path / "out",
        save_probabilities=True,
        progress=lambda f, s, m="", **k: events.append(f),
    )
    assert [p.name for p in written] == ["case_001.nii.gz"] and events == [1.0]
    segmentation = sitk.GetArrayFromImage(sitk.ReadImage(str(written[0])))
    probabilities = np.load(tmp_path / "out" / "case_001.npz")["probabilities"]
    assert probabilities.dtype == np.float32
    assert probabilities.shape == (3, *segmentation.shape)
    np.testing.assert_allclose(probabilities.sum(0), 1.0, atol=1e-5)
    top = np.sort(probabilities, axis=0)
    decided = top[-1] - top[-2] > 1e-4
    assert np.array_equal(probabilities.argmax(0)[decided], segmentation[decided])
    properties = json.loads((tmp_path / "out" / "case_001.json").read_text())
    assert properties["shape_before_cropping"] == list(segmentation.shape)


def test_several_folds_average_logits_and_postprocessing_is_applied(tiny_model: Path) -> None:
    one = Predictor.from_model_dir(tiny_model / "model", "3d_fullres", device="cpu", use_mirroring=False)
    twice = Predictor.from_model_dir(
        tiny_model / "model", "3d_fullres", folds=[0, 0], device="cpu", use_mirroring=False
    )
    data, _, _ = preprocess_case_files(case_files(tiny_model, 2), None, one.plans, "3d_fullres")
    torch.testing.assert_close(twice.predict_logits(data), one.predict_logits(data), atol=1e-5, rtol=1e-5)
    everything_one = Predictor.from_model_dir(
        tiny_model / "model",
        "3d_fullres",
        device="cpu",
        use_mirroring=False,
        postprocess=lambda seg: np.ones_like(seg),
    )
    assert (everything_one.predict_case(case_files(tiny_model, 2)).segmentation == 1).all()


def test_unusable_inputs_are_named(tiny_model: Path, tmp_path: Path) -> None:
    with pytest.raises(PredictorError, match=r"no plans\.json"):
        Predictor.from_model_dir(tmp_path, "3d_fullres")
    with pytest.raises(PredictorError, match="no fold_K"):
        Predictor.from_model_dir(tiny_model / "model", "3d_fullres", checkpoint="missing.pth")
    predictor = Predictor.from_model_dir(tiny_model / "model", "2d", device="cpu")
    data, geometry = read_image(case_files(tiny_model))
    with pytest.raises(PredictorError, match="has no previous stage"):
        predictor.predict_arrays(data, geometry, previous_stage=np.zeros(data.shape[1:], np.uint8))
    with pytest.raises(PredictorError, match="expected 1 channels"):
        predictor.predict_arrays(np.concatenate([data, data]), geometry)
    (tmp_path / "empty").mkdir()
    with pytest.raises(PredictorError, match="no CASE_XXXX"):
        predictor.predict_folder(tmp_path / "empty", tmp_path / "out")
