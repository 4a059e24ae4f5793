"""Network topology (METHOD.md 3.5 step 2): hand-derived known answers plus invariants."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.constants import PLANNING_FEATUREMAP_MIN_EDGE_LENGTH
from core.topology import compute_topology, pad_to_multiple

# Each known answer is derived by hand in the comment beside it, stage by stage.
KNOWN_ANSWERS = {
    # CT-like 3 x 0.75 x 0.75 mm, patch 64 x 128 x 128:
    #  s1: axis 0 is 4x coarser (not < 2x the finest) -> pool y, x; kernel 1x3x3; spacing 3,1.5,1.5
    #  s2: axis 0 is exactly 2x (not < 2) -> pool y, x; kernel 1x3x3; spacing 3,3,3; size 64,32,32
    #  s3..s5: all axes equal and >= 8 -> pool all; kernel 3x3x3; size 32,16,16 -> 16,8,8 -> 8,4,4
    #  s6: only axis 0 has >= 8 voxels, but a lone axis needs >= 12 -> stop
    "ct_anisotropic": (
        (3.0, 0.75, 0.75),
        (64, 128, 128),
        [[1, 1, 1], [1, 2, 2], [1, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 2]],
        [[1, 3, 3], [1, 3, 3], [3, 3, 3], [3, 3, 3], [3, 3, 3], [3, 3, 3]],
        (64, 128, 128),
    ),
    # 2D, 0.5 mm, 256 x 256: halve 6 times (256 -> 4); the bottleneck gets the appended 3x3.
    "2d_isotropic": (
        (0.5, 0.5),
        (256, 256),
        [[1, 1]] + [[2, 2]] * 6,
        [[3, 3]] * 7,
        (256, 256),
    ),
    # Lone-axis rule: 48 x 8 at 1 mm. s1 pools both (24, 4); then only axis 0 is >= 8 and pools
    # while it is >= 12 (24 -> 12 -> 6); 6 < 8 stops. Pools per axis (3, 1) -> divisors (8, 2).
    "single_axis_continues": (
        (1.0, 1.0),
        (48, 8),
        [[1, 1], [2, 2], [2, 1], [2, 1]],
        [[3, 3]] * 4,
        (48, 8),
    ),
    # Padding: 3 pools on each axis of a 1 mm 70 x 50 x 33 patch (70->35->18->9, 50->25->13->7,
    # 33->17->9->5; then only axis 0 has 9 >= 8 but a lone axis needs 12) -> divisors 8:
    # 70 -> 72, 50 -> 56, 33 -> 40.
    "padded_up": (
        (1.0, 1.0, 1.0),
        (70, 50, 33),
        [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2]],
        [[3, 3, 3]] * 4,
        (72, 56, 40),
    ),
}


@pytest.mark.parametrize("name", KNOWN_ANSWERS)
def test_known_topologies(name: str) -> None:
    spacing, patch, strides, kernels, padded = KNOWN_ANSWERS[name]
    topology = compute_topology(spacing, patch)
    assert [list(s) for s in topology.strides] == strides
    assert [list(k) for k in topology.kernel_sizes] == kernels
    assert topology.patch_size == padded
    assert topology.n_stages == len(strides)
    # shape_must_be_divisible_by = 2 ** (number of stride-2 stages per axis)
    assert topology.shape_must_be_divisible_by == tuple(
        2 ** sum(s[axis] == 2 for s in strides) for axis in range(len(spacing))
    )


def test_kernel_switches_to_three_once_within_factor_two_and_stays() -> None:
    # 2.5 x 1 x 1 mm: axis 0 starts 2.5x coarser -> kernel 1; after one pool of y, x the spacings
    # are 2.5, 2, 2 (ratio 1.25 < 2) -> 3, and it stays 3 even when y, x become coarser again.
    topology = compute_topology((2.5, 1.0, 1.0), (64, 160, 160))
    assert list(topology.kernel_sizes[0]) == [1, 3, 3]
    assert all(k[0] == 3 for k in topology.kernel_sizes[1:])
    assert list(topology.strides[1]) == [1, 2, 2]


def test_fractional_patch_is_rounded_up() -> None:
    # A patch clipped to a median of an even number of cases can be x.5; padding rounds it up,
    # the same as ceil(size / divisor) * divisor.
    topology = compute_topology((1.0, 1.0, 1.0), (45.5, 64.0, 64.0))
    divisors = topology.shape_must_be_divisible_by
    assert topology.patch_size == tuple(
        int(math.ceil(p / d) * d) for p, d in zip((45.5, 64, 64), divisors, strict=True)
    )


def test_pad_to_multiple() -> None:
    assert pad_to_multiple([70, 130, 128], [8, 32, 32]) == (72, 160, 128)
    assert pad_to_multiple([64, 1], [64, 1]) == (64, 1)


@pytest.mark.parametrize("seed", range(5))
def test_invariants_on_random_inputs(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(40):
        dim = int(rng.integers(2, 4))
        spacing = rng.choice([0.4, 0.75, 1.0, 2.0, 3.5, 6.0], dim)
        patch = rng.integers(4, 300, dim)
        topology = compute_topology(spacing, patch)
        divisors = topology.shape_must_be_divisible_by
        for size, padded, divisor in zip(patch, topology.patch_size, divisors, strict=True):
            assert padded % divisor == 0
            assert size <= padded < size + divisor
            # every halving needed the axis to keep >= min edge length voxels
            assert math.ceil(size / divisor) >= PLANNING_FEATUREMAP_MIN_EDGE_LENGTH or divisor == 1
        assert list(topology.strides[0]) == [1] * dim
        assert list(topology.kernel_sizes[-1]) == [3] * dim
        assert len(topology.kernel_sizes) == topology.n_stages
