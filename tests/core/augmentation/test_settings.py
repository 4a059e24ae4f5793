"""The rotation/mirroring table and the loader's enlarged patch (METHOD.md 5.5)."""

from __future__ import annotations

import math

import pytest

from core.augmentation import configure_augmentation, initial_patch_size

# (patch, is_dummy_2d, rotation in degrees, initial patch) -- the initial patches were computed with
# nnU-Net v2 2.8.1's `get_patch_size` and `configure_rotation_dummyDA_mirroring_and_inital_patch_size`.
TABLE = [
    ((40, 160, 160), True, 180, (40, 188, 188)),
    ((128, 128, 128), False, 30, (205, 205, 205)),
    ((64, 192, 160), False, 30, (178, 289, 200)),
    ((20, 320, 256), True, 180, (20, 376, 376)),
    ((80, 96, 80), False, 30, (137, 144, 128)),
    ((24, 80, 72), True, 180, (24, 94, 94)),
    ((512, 512), False, 180, (602, 602)),
    ((256, 224), False, 180, (301, 301)),
    ((96, 320), False, 15, (206, 376)),
]


@pytest.mark.parametrize(
    ("patch", "is_dummy_2d", "degrees", "initial"), TABLE, ids=[str(t[0]) for t in TABLE]
)
def test_configuration_table(
    patch: tuple[int, ...], is_dummy_2d: bool, degrees: float, initial: tuple[int, ...]
) -> None:
    settings = configure_augmentation(patch, [0, 1])
    assert settings.is_dummy_2d is is_dummy_2d
    assert settings.rotation_max_rad == pytest.approx(math.radians(degrees))
    assert settings.mirror_axes == tuple(range(len(patch)))
    assert settings.initial_patch_size == initial
    assert initial_patch_size(patch, settings.rotation_max_rad, is_dummy_2d) == initial


def test_dummy_2d_resamples_in_plane_only() -> None:
    settings = configure_augmentation((40, 160, 160), [0, 1])
    assert settings.resampled_axes == (1, 2)
    assert settings.rotation_count == 1
    assert configure_augmentation((64, 64, 64), [0]).rotation_count == 3
    assert configure_augmentation((64, 64), [0]).rotation_count == 1


def test_masked_channels_and_sorted_labels() -> None:
    settings = configure_augmentation((32, 32), [2, 0, 1], use_mask_for_norm=(False, True, True))
    assert settings.masked_channels == (1, 2)
    assert settings.label_values == (0, 1, 2)


@pytest.mark.parametrize(
    ("patch", "labels", "message"),
    [
        ((32,), [0, 1], "patch_size"),
        ((32, 0, 32), [0, 1], "patch_size"),
        ((32, 32), [], "label_values"),
        ((32, 32), [0, -1], "label_values"),
        ((32, 32), [0, 1, 1], "label_values"),
    ],
    ids=["one-axis", "zero-edge", "no-labels", "negative-label", "repeated-label"],
)
def test_invalid_settings(patch: tuple[int, ...], labels: list[int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        configure_augmentation(patch, labels)
