"""Image I/O keeps geometry exactly and names the file when it cannot read one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from core.geometry import Geometry
from core.io import ImageReadError, read_image, read_segmentation, write_segmentation
from core.synthetic import random_direction


def oblique_image(shape_zyx: tuple[int, ...], spacing_xyz: tuple[float, ...]) -> sitk.Image:
    image = sitk.GetImageFromArray(np.arange(np.prod(shape_zyx), dtype=np.float32).reshape(shape_zyx))
    image.SetSpacing(spacing_xyz)
    image.SetOrigin((12.5, -40.25, 3.0))
    image.SetDirection(random_direction(np.random.default_rng(3)))
    return image


@pytest.mark.parametrize("ending", [".nii.gz", ".nii", ".nrrd", ".mha"])
def test_segmentation_is_written_with_the_input_geometry(tmp_path: Path, ending: str) -> None:
    source = tmp_path / f"image_0000{ending}"
    sitk.WriteImage(oblique_image((5, 6, 7), (0.7, 0.8, 3.0)), str(source))
    data, geometry = read_image([source])
    assert data.shape == (1, 5, 6, 7) and data.dtype == np.float32
    assert geometry.spacing == pytest.approx((3.0, 0.8, 0.7))  # array axis order (z, y, x)

    labels = np.zeros((5, 6, 7), np.int16)
    labels[2, 3, 4] = 300  # above 255: the file must be uint16
    target = tmp_path / f"seg{ending}"
    write_segmentation(labels, geometry, target)
    written = sitk.ReadImage(str(target))
    original = sitk.ReadImage(str(source))
    assert written.GetSize() == original.GetSize()
    assert written.GetSpacing() == original.GetSpacing()
    assert written.GetOrigin() == original.GetOrigin()
    assert written.GetDirection() == original.GetDirection()
    assert written.GetPixelID() == sitk.sitkUInt16
    assert (sitk.GetArrayFromImage(written) == labels).all()
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind


def test_2d_images_become_one_slice_volumes_and_are_written_back_as_2d(tmp_path: Path) -> None:
    image = sitk.GetImageFromArray(np.ones((6, 9), np.float32))
    image.SetSpacing((0.5, 0.25))
    sitk.WriteImage(image, str(tmp_path / "a_0000.nii.gz"))
    data, geometry = read_image([tmp_path / "a_0000.nii.gz"])
    assert data.shape == (1, 1, 6, 9)
    # METHOD.md 1.3: a dummy first spacing of 999 × the largest in-plane spacing.
    assert geometry.spacing == (999 * 0.5, 0.25, 0.5)
    write_segmentation(np.ones((1, 6, 9), np.uint8), geometry, tmp_path / "seg.nii.gz")
    written = sitk.ReadImage(str(tmp_path / "seg.nii.gz"))
    assert written.GetDimension() == 2 and written.GetSpacing() == (0.5, 0.25)
    assert Geometry.from_json(geometry.to_json()) == geometry


def test_channels_must_share_shape_and_unreadable_files_are_named(tmp_path: Path) -> None:
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((3, 4, 5), np.float32)), str(tmp_path / "c_0000.mha"))
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((3, 4, 6), np.float32)), str(tmp_path / "c_0001.mha"))
    with pytest.raises(ImageReadError, match=r"c_0001\.mha: shape"):
        read_image([tmp_path / "c_0000.mha", tmp_path / "c_0001.mha"])
    (tmp_path / "bad.nii.gz").write_bytes(b"garbage")
    with pytest.raises(ImageReadError, match=r"bad\.nii\.gz: cannot be read"):
        read_segmentation(tmp_path / "bad.nii.gz")
