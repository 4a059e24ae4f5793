"""Resampling (METHOD.md 4.3) against skimage/scipy computations written the way nnU-Net calls them."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from skimage.transform import resize

from core.resampling import (
    ResamplingError,
    _apply_along_axis,
    compute_new_shape,
    flush_subnormals,
    resample,
    resample_data,
    resample_segmentation,
    separate_z_axis,
    zoom_matrix,
)


def smooth_volume(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return ndimage.gaussian_filter(rng.normal(size=shape), 1.5).astype(np.float32)


def blob_labels(shape: tuple[int, ...]) -> np.ndarray:
    z, y, x = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    seg = np.zeros(shape, np.int8)
    seg[z**2 + y**2 + x**2 < 0.8] = 1
    seg[z**2 + y**2 + (x - 0.3) ** 2 < 0.2] = 2
    seg[np.abs(x) > 0.9] = -1
    return seg


def slice_axis_nearest(volume: np.ndarray, new_size: int) -> np.ndarray:
    """nnU-Net's across-slice step on axis 0: map_coordinates(order 0) at scale * (i + 0.5) - 0.5."""
    scale = volume.shape[0] / new_size
    rows, cols, dims = np.mgrid[:new_size, : volume.shape[1], : volume.shape[2]]
    coordinates = np.array([scale * (rows + 0.5) - 0.5, cols, dims])
    return ndimage.map_coordinates(volume, coordinates, order=0, mode="nearest")


def skimage_labels(seg: np.ndarray, new_shape: tuple[int, ...]) -> np.ndarray:
    """Label argmax of order-1 indicator resizes; ties to the nearest-neighbour label (batchgenerators)."""
    labels = np.unique(seg)
    scores = np.stack(
        [resize((seg == c).astype(float), new_shape, 1, mode="edge", anti_aliasing=False) for c in labels]
    )
    nearest = resize(seg.astype(float), new_shape, 0, mode="edge", anti_aliasing=False)
    winner = labels[np.argmax(scores, axis=0)]
    nearest_index = np.searchsorted(labels, nearest)
    nearest_score = np.take_along_axis(scores, nearest_index[None], axis=0)[0]
    tie = (nearest_score == scores.max(axis=0)) & (nearest_score > 0)
    return np.where(tie, nearest, winner).astype(seg.dtype)


def test_compute_new_shape_rounds_like_nnunet() -> None:
    assert compute_new_shape((40, 160, 160), (3.0, 0.75, 0.75), (2.5, 0.8, 0.7)) == (48, 150, 171)
    with pytest.raises(ResamplingError, match="same length"):
        compute_new_shape((4, 4), (1.0, 1.0, 1.0), (1.0, 1.0, 1.0))


@pytest.mark.parametrize(
    ("current", "target", "force", "axis"),
    [
        ((3.0, 0.75, 0.75), (3.0, 0.75, 0.75), None, 0),
        ((1.0, 1.0, 3.5), (1.0, 1.0, 1.0), None, 2),
        ((1.0, 1.0, 1.0), (4.0, 1.0, 1.0), None, 0),
        ((1.0, 4.0, 1.0), (5.0, 1.0, 1.0), None, 1),
        ((3.0, 1.0, 1.0), (3.0, 1.0, 1.0), None, None),
        ((1.0, 1.0, 1.0), (1.0, 1.0, 1.0), None, None),
        ((0.24, 1.25, 1.25), (0.24, 1.25, 1.25), None, None),
        ((1.0, 1.0, 2.0), (1.0, 1.0, 1.0), True, 2),
        ((1.0, 1.0, 1.0), (1.0, 1.0, 1.0), True, None),
        ((5.0, 1.0, 1.0), (5.0, 1.0, 1.0), False, None),
    ],
    ids=[
        "anisotropic-current",
        "anisotropic-last-axis",
        "anisotropic-target",
        "current-decides-over-target",
        "ratio-exactly-3-is-not-anisotropic",
        "isotropic",
        "two-axes-tie-for-coarsest",
        "forced",
        "forced-but-three-axes-tie",
        "forced-off",
    ],
)
def test_separate_z_decision(
    current: tuple[float, ...], target: tuple[float, ...], force: bool | None, axis: int | None
) -> None:
    assert separate_z_axis(current, target, force) == axis


@pytest.mark.parametrize(("n_in", "n_out", "order"), [(7, 12, 3), (12, 7, 3), (9, 4, 1), (1, 5, 3)])
def test_zoom_matrix_equals_scipy_zoom(n_in: int, n_out: int, order: int) -> None:
    vector = np.random.default_rng(1).normal(size=n_in)
    expected = ndimage.zoom(vector, n_out / n_in, order=order, mode="nearest", grid_mode=True)
    np.testing.assert_allclose(zoom_matrix(n_in, n_out, order) @ vector, expected, atol=1e-12)


def test_joint_resize_equals_skimage() -> None:
    data = smooth_volume((2, 12, 20, 17))
    new_shape = (15, 14, 25)
    result = resample_data(data, new_shape, (1.0, 1.0, 1.0), (0.8, 1.4, 0.7))
    expected = np.stack(
        [resize(c.astype(float), new_shape, 3, mode="edge", anti_aliasing=False) for c in data]
    )
    assert result.dtype == np.float32
    np.testing.assert_allclose(result, expected, atol=1e-5 * np.ptp(data))


def test_separate_z_resizes_slices_then_takes_nearest_slices() -> None:
    data = smooth_volume((1, 6, 30, 24))
    new_shape = (10, 20, 32)
    result = resample_data(data, new_shape, (4.0, 1.0, 1.0), (2.4, 1.5, 0.75))
    slices = np.stack(
        [resize(s.astype(float), new_shape[1:], 3, mode="edge", anti_aliasing=False) for s in data[0]]
    )
    expected = slice_axis_nearest(slices, new_shape[0])
    np.testing.assert_allclose(result[0], expected, atol=1e-5 * np.ptp(data))


def test_same_shape_is_returned_unchanged() -> None:
    data = smooth_volume((1, 5, 6, 7))
    np.testing.assert_array_equal(resample_data(data, (5, 6, 7), (1, 1, 1), (2, 2, 2)), data)


@pytest.mark.parametrize(
    ("shape", "new_shape"),
    [((9, 16, 14), (11, 24, 10)), ((8, 12, 12), (4, 6, 6)), ((5, 7, 6), (10, 14, 12))],
    ids=["mixed", "halving-ties", "doubling"],
)
def test_segmentation_joint_equals_indicator_argmax(
    shape: tuple[int, ...], new_shape: tuple[int, ...]
) -> None:
    rng = np.random.default_rng(3)
    for seg in (blob_labels(shape), rng.integers(-1, 3, size=shape).astype(np.int8)):
        result = resample_segmentation(seg[None], new_shape, (1.0, 1.0, 1.0), (1.0, 1.0, 1.0))
        assert result.dtype == np.int8
        np.testing.assert_array_equal(result[0], skimage_labels(seg, new_shape))


def test_segmentation_separate_z_equals_per_slice_then_nearest() -> None:
    seg = blob_labels((6, 20, 18))
    new_shape = (9, 26, 14)
    result = resample_segmentation(seg[None], new_shape, (5.0, 1.0, 1.0), (3.3, 0.8, 1.3))
    slices = np.stack([skimage_labels(s, new_shape[1:]) for s in seg])
    np.testing.assert_array_equal(result[0], slice_axis_nearest(slices, new_shape[0]))


def test_segmentation_order_0_is_nearest_neighbour() -> None:
    seg = blob_labels((7, 11, 9))
    result = resample_segmentation(seg[None], (10, 6, 13), (1, 1, 1), (1, 1, 1), order=0)
    expected = resize(seg.astype(float), (10, 6, 13), 0, mode="edge", anti_aliasing=False)
    np.testing.assert_array_equal(result[0], expected.astype(np.int8))


def test_segmentation_keeps_only_input_labels() -> None:
    seg = blob_labels((10, 15, 15)).astype(np.int16) * 100
    result = resample_segmentation(seg[None], (13, 9, 21), (1, 1, 1), (1, 1, 1))
    assert result.dtype == np.int16
    assert set(np.unique(result)) <= set(np.unique(seg))


def test_resample_dispatches_on_plans_kwargs() -> None:
    seg = blob_labels((6, 10, 10))[None]
    kwargs = {"is_seg": True, "order": 1, "order_z": 0, "force_separate_z": None}
    expected = resample_segmentation(seg, (8, 12, 12), (1, 1, 1), (1, 1, 1))
    np.testing.assert_array_equal(resample(seg, (8, 12, 12), (1, 1, 1), (1, 1, 1), kwargs), expected)
    with pytest.raises(ResamplingError, match="unknown resampling arguments"):
        resample(seg, (8, 12, 12), (1, 1, 1), (1, 1, 1), {"mode": 1})


def test_probabilities_stay_in_range_with_order_1() -> None:
    probabilities = np.random.default_rng(0).dirichlet([1, 1, 1], size=(6, 8, 8)).transpose(3, 0, 1, 2)
    kwargs = {"is_seg": False, "order": 1, "order_z": 0, "force_separate_z": None}
    result = resample(probabilities.astype(np.float32), (9, 12, 5), (3.5, 1, 1), (2, 0.6, 1.6), kwargs)
    assert result.shape == (3, 9, 12, 5)
    assert result.min() >= 0 and result.max() <= 1


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ResamplingError, match="channels, z, y, x"):
        resample_data(np.zeros((4, 4, 4), np.float32), (2, 2, 2), (1, 1, 1), (1, 1, 1))
    with pytest.raises(ResamplingError, match="three positive sizes"):
        resample_data(np.zeros((1, 4, 4, 4), np.float32), (2, 0, 2), (1, 1, 1), (1, 1, 1))


def test_subnormal_weights_are_flushed_without_changing_results() -> None:
    """A wide axis's spline matrix holds float32 subnormals (slow on x86); they become zeros, the
    normal weights stay, and the product is bit for bit what the unflushed matrix gives."""
    matrix = zoom_matrix(512, 485, 3).astype(np.float32)
    tiny = np.finfo(np.float32).tiny
    subnormal = (matrix != 0) & (np.abs(matrix) < tiny)
    assert subnormal.sum() > 1000
    flushed = flush_subnormals(matrix.copy())
    assert not ((flushed != 0) & (np.abs(flushed) < tiny)).any()
    np.testing.assert_array_equal(flushed[~subnormal], matrix[~subnormal])
    volume = np.random.default_rng(3).uniform(-1000, 1000, (4, 512, 16)).astype(np.float32)
    exact = np.matmul(matrix, volume)
    np.testing.assert_array_equal(np.matmul(flushed, volume), exact)
    np.testing.assert_array_equal(_apply_along_axis(volume, zoom_matrix(512, 485, 3), 1), exact)
