"""Image files in and out through SimpleITK, with the geometry needed to write results back exactly.

Every array in `core` is channel-first in SimpleITK's numpy order: images are (channels, z, y, x), label
maps (z, y, x). A 2D file is read as a one-slice volume (1, y, x) so that the rest of the method needs no
2D special case; its first spacing is then a large dummy value (999 × the largest in-plane spacing, as
nnU-Net v2 does), which makes the planner see it as a single-slice, 2D-only dataset.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from core.errors import ProblemsError
from core.geometry import Geometry

SUPPORTED_FILE_ENDINGS = (".nii.gz", ".nii", ".nrrd", ".mha", ".nhdr", ".mhd", ".png", ".tif", ".tiff")


class ImageReadError(ProblemsError):
    """A file could not be read as an image, or a case's channel files do not fit together."""


def geometry_of(image: sitk.Image) -> Geometry:
    return Geometry.from_itk(image.GetSpacing(), image.GetOrigin(), image.GetDirection())


def apply_geometry(image: sitk.Image, geometry: Geometry) -> None:
    image.SetSpacing(geometry.itk_spacing)
    image.SetOrigin(geometry.origin)
    image.SetDirection(geometry.direction)


def read_sitk(path: Path) -> sitk.Image:
    """Read one file, turning SimpleITK's exceptions into an ImageReadError that names the file."""
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as error:
        first_line = str(error).strip().splitlines()[-1] if str(error).strip() else "unknown error"
        raise ImageReadError(f"{path.name}: cannot be read as an image ({first_line})") from error
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise ImageReadError(
            f"{path.name}: has {image.GetNumberOfComponentsPerPixel()} components per voxel; "
            "store each channel as its own file (CASE_0000, CASE_0001, ...)"
        )
    if image.GetDimension() not in (2, 3):
        raise ImageReadError(f"{path.name}: is {image.GetDimension()}D; only 2D and 3D are supported")
    return image


def as_volume(image: sitk.Image) -> np.ndarray:
    """The voxels as a (z, y, x) array; a 2D image becomes one slice."""
    array = sitk.GetArrayFromImage(image)
    return array[None] if image.GetDimension() == 2 else array


def read_image(paths: Sequence[Path]) -> tuple[np.ndarray, Geometry]:
    """Read one case's channel files into a float32 (channels, z, y, x) array.

    The geometry is the first channel's. All channels must share shape and spacing; a differing origin or
    direction is tolerated here (the dataset check reports it) because nnU-Net v2 tolerates it too.
    """
    if not paths:
        raise ImageReadError("no channel files given")
    images = [read_sitk(Path(p)) for p in paths]
    geometry = geometry_of(images[0])
    volumes = []
    for path, image in zip(paths, images, strict=True):
        volume = as_volume(image)
        if volumes and volume.shape != volumes[0].shape:
            raise ImageReadError(
                f"{Path(path).name}: shape {volume.shape} differs from the first channel's {volumes[0].shape}"
            )
        if not np.allclose(image.GetSpacing(), geometry.itk_spacing, rtol=1e-4, atol=1e-6):
            raise ImageReadError(
                f"{Path(path).name}: spacing {image.GetSpacing()} differs from the first channel's "
                f"{geometry.itk_spacing}"
            )
        volumes.append(volume.astype(np.float32, copy=False))
    return np.stack(volumes), geometry


def read_segmentation(path: Path) -> tuple[np.ndarray, Geometry]:
    """Read a label map as a (z, y, x) array in the file's own integer or float type."""
    image = read_sitk(Path(path))
    return as_volume(image), geometry_of(image)


def write_segmentation(segmentation: np.ndarray, geometry: Geometry, path: Path) -> None:
    """Write a (z, y, x) label map with exactly the given geometry, atomically.

    uint8 when every label fits, else uint16, compressed where the format allows, as nnU-Net v2 writes.
    """
    path = Path(path)
    if segmentation.ndim != 3:
        raise ValueError(f"segmentation must be (z, y, x), got shape {segmentation.shape}")
    if geometry.image_dimension == 2:
        if segmentation.shape[0] != 1:
            raise ValueError(f"a 2D geometry needs one slice, got shape {segmentation.shape}")
        segmentation = segmentation[0]
    dtype = np.uint8 if segmentation.max(initial=0) < 255 else np.uint16
    image = sitk.GetImageFromArray(segmentation.astype(dtype, copy=False))
    apply_geometry(image, geometry)
    write_atomically(image, path)


def write_image(volume: np.ndarray, geometry: Geometry, path: Path) -> None:
    """Write one (z, y, x) channel with the given geometry, keeping its dtype; used for sample data."""
    if geometry.image_dimension == 2:
        volume = volume[0]
    image = sitk.GetImageFromArray(volume)
    apply_geometry(image, geometry)
    write_atomically(image, Path(path))


def write_atomically(image: sitk.Image, path: Path) -> None:
    """Write next to the target and rename, so a reader never sees half a file."""
    ending = file_ending_of(path)
    temporary = path.with_name(f".{path.name[: -len(ending)]}.partial{ending}")
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(temporary), useCompression=True)
    temporary.replace(path)


def file_ending_of(path: Path | str) -> str:
    """The file ending, with '.nii.gz' treated as one ending."""
    name = Path(path).name
    for ending in SUPPORTED_FILE_ENDINGS:
        if name.endswith(ending):
            return ending
    return Path(name).suffix
