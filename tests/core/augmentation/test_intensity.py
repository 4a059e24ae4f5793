"""Intensity transforms and filters against independent per-row references; unchosen rows stay untouched."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from core.augmentation._rows import ChannelDraw
from core.augmentation.filters import apply_blur, apply_low_resolution, kernel_sizes
from core.augmentation.intensity import apply_brightness, apply_contrast, apply_gamma, apply_noise

SHAPES = {"2d": (3, 2, 20, 24), "3d": (3, 2, 10, 12, 14)}
# sample 0 channel 1 and sample 2 channel 0 are chosen; the rest must come back bit for bit
ROWS = torch.tensor([[False, True], [False, False], [True, False]])


def batch(shape: tuple[int, ...]) -> torch.Tensor:
    generator = torch.Generator().manual_seed(3)
    return torch.rand(shape, generator=generator) * 4 - 1


def check_rows(
    shape: tuple[int, ...],
    values: torch.Tensor,
    transform: Callable[[torch.Tensor, ChannelDraw], torch.Tensor],
    reference: Callable[[np.ndarray, np.ndarray], np.ndarray],
    atol: float,
) -> None:
    image = batch(shape)
    out = transform(image.clone(), ChannelDraw(ROWS, values))
    for b, c in np.ndindex(ROWS.shape):
        if ROWS[b, c]:
            expected = reference(image[b, c].double().numpy(), values[b, c].numpy())
            np.testing.assert_allclose(out[b, c].numpy(), expected, atol=atol, rtol=1e-5)
        else:
            assert torch.equal(out[b, c], image[b, c])


@pytest.mark.parametrize("dims", SHAPES)
def test_brightness_multiplies(dims: str) -> None:
    factors = torch.tensor([[0.8, 1.2], [0.9, 1.1], [1.25, 0.75]], dtype=torch.float64)
    check_rows(SHAPES[dims], factors, apply_brightness, lambda x, f: x * f, atol=1e-6)


@pytest.mark.parametrize("dims", SHAPES)
def test_contrast_scales_around_the_mean_within_the_original_range(dims: str) -> None:
    factors = torch.tensor([[0.8, 1.25], [0.9, 1.1], [1.2, 0.75]], dtype=torch.float64)

    def reference(x: np.ndarray, f: np.ndarray) -> np.ndarray:
        return np.clip((x - x.mean()) * f + x.mean(), x.min(), x.max())

    check_rows(SHAPES[dims], factors, apply_contrast, reference, atol=1e-5)


@pytest.mark.parametrize("is_inverted", [False, True], ids=["plain", "inverted"])
@pytest.mark.parametrize("dims", SHAPES)
def test_gamma_bends_and_retains_mean_and_std(dims: str, is_inverted: bool) -> None:
    gammas = torch.tensor([[0.7, 1.5], [1.0, 1.0], [1.3, 0.8]], dtype=torch.float64)
    sign = -1.0 if is_inverted else 1.0

    def reference(x: np.ndarray, gamma: np.ndarray) -> np.ndarray:
        x = x * sign
        low, span = x.min(), x.max() - x.min()
        bent = ((x - low) / span) ** gamma * span + low
        return ((bent - bent.mean()) / bent.std(ddof=1) * x.std(ddof=1) + x.mean()) * sign

    def transform(image: torch.Tensor, draw: ChannelDraw) -> torch.Tensor:
        return apply_gamma(image, draw, is_inverted)

    check_rows(SHAPES[dims], gammas, transform, reference, atol=1e-4)


def test_noise_has_the_drawn_std_and_follows_its_seed() -> None:
    image = torch.zeros(2, 2, 40, 40, 40)
    draw = ChannelDraw(
        torch.tensor([[True, True], [False, False]]), torch.full((2, 2), 0.05, dtype=torch.float64)
    )
    out = apply_noise(image.clone(), draw, torch.Generator().manual_seed(7))
    again = apply_noise(image.clone(), draw, torch.Generator().manual_seed(7))
    assert torch.equal(out, again)
    assert float(out[0].std()) == pytest.approx(0.05, rel=0.02)
    assert not torch.equal(out[0, 0], out[0, 1])  # one std for the sample, a field per channel
    assert torch.equal(out[1], image[1])


@pytest.mark.parametrize(
    ("sigma", "size"), [(0.5, 3), (0.55, 3), (0.6, 5), (0.75, 5), (0.9, 5), (1.0, 7)], ids=str
)
def test_blur_kernel_sizes_match_batchgeneratorsv2(sigma: float, size: int) -> None:
    assert int(kernel_sizes(torch.tensor([sigma], dtype=torch.float64))[0]) == size


def blur_reference(x: np.ndarray, sigmas: np.ndarray) -> np.ndarray:
    """Per axis: batchgeneratorsv2's kernel (linspace of its own length), reflect padding, correlation."""
    for axis, sigma in enumerate(sigmas):
        size = int(kernel_sizes(torch.tensor([sigma]))[0])
        taps = np.linspace(-(size - 1) / 2, (size - 1) / 2, size)
        kernel = np.exp(-0.5 * (taps / sigma) ** 2)
        kernel /= kernel.sum()
        pad = [(0, 0)] * x.ndim
        pad[axis] = (size // 2, size // 2)
        padded = np.pad(x, pad, mode="reflect")
        x = sum(w * np.take(padded, range(t, t + x.shape[axis]), axis=axis) for t, w in enumerate(kernel))
    return x


@pytest.mark.parametrize("dims", SHAPES)
def test_blur_matches_a_separable_reference_with_a_sigma_per_row_and_axis(dims: str) -> None:
    shape = SHAPES[dims]
    generator = torch.Generator().manual_seed(5)
    sigmas = 0.5 + 0.5 * torch.rand((*shape[:2], len(shape) - 2), generator=generator, dtype=torch.float64)
    sigmas[0, 1, 0] = 1.0  # widest kernel next to the narrowest in one batch
    sigmas[2, 0, -1] = 0.5
    check_rows(shape, sigmas, apply_blur, blur_reference, atol=1e-5)


def low_resolution_reference(x: np.ndarray, zooms: np.ndarray) -> np.ndarray:
    """batchgeneratorsv2's SimulateLowResolutionTransform on one channel: two `interpolate` calls."""
    tensor = torch.from_numpy(x).float()[None, None]
    small = [round(s * float(z)) for s, z in zip(x.shape, zooms, strict=True)]
    down = F.interpolate(tensor, small, mode="nearest-exact")
    mode = {2: "bilinear", 3: "trilinear"}[x.ndim]
    return F.interpolate(down, x.shape, mode=mode)[0, 0].double().numpy()


@pytest.mark.parametrize("dims", SHAPES)
def test_low_resolution_matches_interpolate(dims: str) -> None:
    shape = SHAPES[dims]
    zooms = torch.tensor([0.5, 0.63, 0.77, 0.91, 0.999, 0.55])[: shape[0] * shape[1]].view(shape[0], shape[1])
    values = zooms.to(torch.float64)[..., None].repeat(1, 1, len(shape) - 2)
    values[0, 1, 0] = 1.0  # an ignored axis (dummy 2D leaves axis 0 alone)
    check_rows(shape, values, apply_low_resolution, low_resolution_reference, atol=1e-5)
