"""Sliding window against known answers: window positions, the Gaussian map, exact single-window
results, mirroring of an equivariant function, 2D slice by slice, and the out-of-memory retry."""

from __future__ import annotations

import itertools
import logging

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from core.inference.sliding_window import (
    SlidingWindowError,
    SlidingWindowSettings,
    gaussian_importance_map,
    pad_to_patch,
    sliding_window_logits,
    window_starts,
)

CPU = torch.device("cpu")
FP32 = {"atol": 1e-5, "rtol": 1e-5}


@pytest.mark.parametrize(
    ("image", "tile", "step", "expected"),
    [
        ((110,), (64,), 0.5, ((0, 23, 46),)),  # METHOD.md 7.3's example
        ((64,), (64,), 0.5, ((0,),)),
        ((100,), (64,), 0.5, ((0, 18, 36),)),
        ((129,), (64,), 0.5, ((0, 22, 43, 65),)),  # 65/3 = 21.67 → rounded per position
        ((128,), (64,), 1.0, ((0, 64),)),
        ((80,), (32,), 0.25, ((0, 8, 16, 24, 32, 40, 48),)),
        ((40, 110, 129), (32, 64, 64), 0.5, ((0, 8), (0, 23, 46), (0, 22, 43, 65))),
        ((192, 160), (96, 96), 0.5, ((0, 48, 96), (0, 32, 64))),
    ],
    ids=["method-example", "exact-fit", "100-in-64", "uneven-rounding", "step-1", "step-quarter", "3d", "2d"],
)
def test_window_starts_follow_the_rule(image: tuple, tile: tuple, step: float, expected: tuple) -> None:
    assert window_starts(image, tile, step) == expected


@pytest.mark.parametrize(
    ("image", "tile", "step", "message"),
    [((64,), (64,), 0.0, "step size"), ((64,), (64,), 1.5, "step size"), ((32,), (64,), 0.5, "at least")],
    ids=["zero-step", "step-above-one", "image-smaller"],
)
def test_window_starts_refuse_bad_arguments(image: tuple, tile: tuple, step: float, message: str) -> None:
    with pytest.raises(SlidingWindowError, match=message):
        window_starts(image, tile, step)


def test_gaussian_peak_symmetry_profile_and_floor() -> None:
    tile = (64, 96, 96)
    weights = gaussian_importance_map(tile)
    assert weights.dtype == torch.float16 and tuple(weights.shape) == tile
    centre = tuple(size // 2 for size in tile)
    assert weights[centre] == 10 and weights.max() == 10
    # symmetric about size // 2 along every axis
    core = weights[1:, 1:, 1:].float()
    for axis in range(3):
        torch.testing.assert_close(core, core.flip(axis), atol=0, rtol=0)
    # the profile along an axis is exp(-k^2 / (2 sigma^2)), sigma = size / 8
    k = torch.arange(0, 20, dtype=torch.float64)
    expected = 10 * torch.exp(-(k**2) / (2 * (96 / 8) ** 2))
    torch.testing.assert_close(weights[32, 48, 48:68].double(), expected, atol=0, rtol=1e-3)
    # corners underflow in float16; they are raised to the smallest non-zero value, never 0
    raw = torch.from_numpy(
        np.asarray(10 * np.exp(-0.5 * ((32 / 8) ** 2 + 2 * (48 / 12) ** 2)), dtype=np.float16)
    )
    assert raw == 0
    floor = weights.min()
    assert floor > 0 and weights[0, 0, 0] == floor
    unfloored = torch.from_numpy(np.asarray(weights.numpy(), dtype=np.float64))
    assert (unfloored > floor).sum() > 0 and floor <= torch.finfo(torch.float16).tiny
    float32 = gaussian_importance_map(tile, dtype=torch.float32)
    assert float32.min() > 0 and float32[32, 48, 48] == 10


@pytest.mark.parametrize("tile", [(48, 160, 192), (20, 24, 24), (7, 33, 64), (256, 224), (5,)])
def test_gaussian_equals_the_blurred_impulse_volume_bit_for_bit(tile: tuple[int, ...]) -> None:
    """The separable construction gives nnU-Net's blurred impulse volume exactly (before the cast)."""
    impulse = np.zeros(tile)
    impulse[tuple(size // 2 for size in tile)] = 1
    blurred = gaussian_filter(impulse, [size / 8 for size in tile], 0, mode="constant", cval=0)
    blurred *= 10 / blurred.max()
    ours = gaussian_importance_map(tile, dtype=torch.float64)
    assert torch.equal(ours, torch.from_numpy(blurred))


def test_padding_is_centred_and_undone() -> None:
    data = torch.arange(2 * 5 * 7, dtype=torch.float32).reshape(2, 5, 7)
    padded, unpad = pad_to_patch(data, (8, 7))
    assert padded.shape == (2, 8, 7)
    assert torch.equal(padded[:, 1:6], data) and padded[:, 0].abs().sum() == 0 and padded[:, 6:].sum() == 0
    assert torch.equal(padded[(slice(None), *unpad)], data)


def conv_network(kernel: torch.Tensor, outputs: int = 3) -> torch.nn.Module:
    """A fixed 3D convolution (zero padding): its output is a fixed function of its input."""
    layer = torch.nn.Conv3d(1, outputs, kernel.shape[-1], padding=kernel.shape[-1] // 2, bias=True)
    with torch.no_grad():
        layer.weight.copy_(
            kernel.expand(outputs, 1, *kernel.shape) * torch.arange(1.0, outputs + 1).view(-1, 1, 1, 1, 1)
        )
        layer.bias.copy_(torch.linspace(-0.5, 0.5, outputs))
    return layer.eval()


@torch.inference_mode()
def test_one_window_equals_the_direct_prediction() -> None:
    generator = torch.Generator().manual_seed(0)
    network = conv_network(torch.randn(3, 3, 3, generator=generator))
    data = torch.randn(1, 12, 20, 16, generator=generator)
    settings = SlidingWindowSettings(patch_size=(12, 20, 16))
    result = sliding_window_logits(network, data, 3, settings, CPU)
    assert result.dtype == torch.float32 and result.shape == (3, 12, 20, 16)
    torch.testing.assert_close(result.float(), network(data[None])[0], **FP32)


@torch.inference_mode()
def test_an_image_smaller_than_the_patch_is_padded_and_unpadded() -> None:
    generator = torch.Generator().manual_seed(1)
    network = conv_network(torch.randn(3, 3, 3, generator=generator))
    data = torch.randn(1, 9, 20, 13, generator=generator)
    settings = SlidingWindowSettings(patch_size=(12, 20, 16))
    result = sliding_window_logits(network, data, 3, settings, CPU)
    padded, unpad = pad_to_patch(data, (12, 20, 16))
    expected = network(padded[None])[0][(slice(None), *unpad)]
    assert result.shape == (3, 9, 20, 13)
    torch.testing.assert_close(result.float(), expected, **FP32)


@torch.inference_mode()
@pytest.mark.parametrize("windows_per_batch", [1, 3])
def test_many_windows_of_a_pointwise_function_equal_the_direct_result(windows_per_batch: int) -> None:
    network = conv_network(torch.ones(1, 1, 1) * 0.7)
    data = torch.randn(1, 30, 41, 37, generator=torch.Generator().manual_seed(2))
    settings = SlidingWindowSettings(patch_size=(16, 24, 16), windows_per_batch=windows_per_batch)
    result = sliding_window_logits(network, data, 3, settings, CPU)
    torch.testing.assert_close(result.float(), network(data[None])[0], **FP32)


@torch.inference_mode()
def test_mirroring_an_equivariant_function_changes_nothing() -> None:
    generator = torch.Generator().manual_seed(3)
    half = torch.rand(2, 2, 2, generator=generator)
    kernel = torch.zeros(3, 3, 3)
    kernel[1:, 1:, 1:] = half
    kernel = kernel + kernel.flip(0)
    kernel = kernel + kernel.flip(1)
    kernel = kernel + kernel.flip(2)  # symmetric along every axis, so the convolution commutes with flips
    network = conv_network(kernel)
    data = torch.randn(1, 20, 30, 26, generator=generator)
    plain = SlidingWindowSettings(patch_size=(16, 16, 16))
    mirrored = SlidingWindowSettings(patch_size=(16, 16, 16), mirror_axes=(0, 1, 2))
    calls = []
    counted = lambda x: calls.append(1) or network(x)  # noqa: E731
    expected = sliding_window_logits(network, data, 3, plain, CPU)
    result = sliding_window_logits(counted, data, 3, mirrored, CPU)
    torch.testing.assert_close(result.float(), expected.float(), **FP32)
    assert len(calls) == 2 * 3 * 3 * 8  # 2 x 3 x 3 windows, 8 flips each


@torch.inference_mode()
def test_a_2d_patch_predicts_a_volume_slice_by_slice() -> None:
    layer = torch.nn.Conv2d(2, 3, 3, padding=1).eval()
    data = torch.randn(2, 5, 24, 24, generator=torch.Generator().manual_seed(4))
    settings = SlidingWindowSettings(patch_size=(24, 24), mirror_axes=(0, 1), windows_per_batch=4)
    result = sliding_window_logits(layer, data, 3, settings, CPU)
    per_slice = torch.stack([layer(data[:, i][None])[0] for i in range(5)], dim=1)
    flips = [(2,), (3,), (2, 3)]
    mirrored = torch.stack(
        [
            (layer(data[:, i][None]) + sum(layer(data[:, i][None].flip(f)).flip(f) for f in flips))[0] / 4
            for i in range(5)
        ],
        dim=1,
    )
    assert result.shape == per_slice.shape
    torch.testing.assert_close(result.float(), mirrored, **FP32)


class OutOfMemoryOnce:
    """A network that fails like a full device on its first call, then works."""

    def __init__(self, network: torch.nn.Module) -> None:
        self.network, self.calls = network, 0

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls == 1:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return self.network(batch)


@torch.inference_mode()
def test_out_of_memory_on_the_device_path_retries_on_the_host(caplog: pytest.LogCaptureFixture) -> None:
    network = conv_network(torch.ones(1, 1, 1))
    data = torch.randn(1, 20, 20, 20, generator=torch.Generator().manual_seed(5))
    settings = SlidingWindowSettings(patch_size=(16, 16, 16), windows_per_batch=4)
    flaky = OutOfMemoryOnce(network)
    with caplog.at_level(logging.WARNING):
        result = sliding_window_logits(flaky, data, 3, settings, CPU)
    assert "out of memory" in caplog.text
    assert flaky.calls == 1 + 8  # the failed call, then the 8 windows one by one
    torch.testing.assert_close(result.float(), network(data[None])[0], **FP32)
    host_only = SlidingWindowSettings(patch_size=(16, 16, 16), accumulate_on_device=False)
    with pytest.raises(torch.OutOfMemoryError):
        sliding_window_logits(OutOfMemoryOnce(network), data, 3, host_only, CPU)


def test_data_that_does_not_fit_the_patch_is_refused() -> None:
    with pytest.raises(SlidingWindowError, match="does not fit"):
        sliding_window_logits(lambda x: x, torch.zeros(1, 8, 8), 1, SlidingWindowSettings((4, 4, 4)), CPU)


def explicit_gaussian_average(
    network: torch.nn.Module, data: torch.Tensor, patch: tuple[int, ...]
) -> torch.Tensor:
    """The rule written out in float64: every window's logits times the map, summed per voxel, over
    the per-voxel sum of the maps."""
    gaussian = gaussian_importance_map(patch, dtype=torch.float64)
    logits = torch.zeros((3, *data.shape[1:]), dtype=torch.float64)
    weights = torch.zeros(data.shape[1:], dtype=torch.float64)
    for corner in itertools.product(*window_starts(tuple(data.shape[1:]), patch, 0.5)):
        window = tuple(slice(s, s + p) for s, p in zip(corner, patch, strict=True))
        logits[(slice(None), *window)] += network(data[(slice(None), *window)][None])[0].double() * gaussian
        weights[window] += gaussian
    return logits / weights


@torch.inference_mode()
def test_overlapping_windows_are_weighted_by_the_summed_gaussians() -> None:
    generator = torch.Generator().manual_seed(6)
    network = conv_network(torch.randn(3, 3, 3, generator=generator))  # windows see different borders
    data = torch.randn(1, 21, 37, 30, generator=generator)
    patch = (12, 16, 16)
    result = sliding_window_logits(network, data, 3, SlidingWindowSettings(patch_size=patch), CPU)
    expected = explicit_gaussian_average(network, data, patch)
    torch.testing.assert_close(result.double(), expected, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(result, network(data[None])[0], atol=1e-2)  # the borders do matter here
