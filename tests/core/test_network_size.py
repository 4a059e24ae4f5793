"""The VRAM proxy (METHOD.md 3.5 step 3): hand-counted tiny networks and upstream's quoted values."""

from __future__ import annotations

import pytest

from core.network_size import UnsupportedArchitectureError, conv_feature_map_size

PLAIN = "dynamic_network_architectures.architectures.unet.PlainConvUNet"
RESENC = "dynamic_network_architectures.architectures.unet.ResidualEncoderUNet"


def tiny_kwargs(blocks_key: str, blocks: list[int], decoder: list[int]) -> dict:
    return {
        "n_stages": 2,
        "features_per_stage": [32, 64],
        "strides": [[1, 1], [2, 2]],
        blocks_key: blocks,
        "n_conv_per_stage_decoder": decoder,
    }


def test_plain_unet_hand_count() -> None:
    # 8x8 input, 3 classes. Encoder: stage 0 two convs 32 x 64 px, stage 1 two convs 64 x 16 px.
    # Decoder (one level): transposed conv + two convs at 32 x 64 px, then the 1x1 head 3 x 64 px.
    expected = 2 * 32 * 64 + 2 * 64 * 16 + (1 + 2) * 32 * 64 + 3 * 64
    kwargs = tiny_kwargs("n_conv_per_stage", [2, 2], [2])
    assert conv_feature_map_size(PLAIN, kwargs, 3, (8, 8)) == expected == 12480


def test_residual_encoder_unet_hand_count() -> None:
    # Stem conv 32 x 64. Stage 0: one BasicBlockD (two convs, identity skip) 2 x 32 x 64.
    # Stage 1: three blocks of two convs at 64 x 16, plus the first block's 1x1 projection 64 x 16.
    # Decoder: transposed conv + one conv at 32 x 64, head 3 x 64.
    expected = 32 * 64 + 2 * 32 * 64 + (3 * 2 + 1) * 64 * 16 + (1 + 1) * 32 * 64 + 3 * 64
    kwargs = tiny_kwargs("n_blocks_per_stage", [1, 3], [1])
    assert conv_feature_map_size(RESENC, kwargs, 3, (8, 8)) == expected == 17600


def test_deep_supervision_adds_a_head_per_lower_level() -> None:
    kwargs = {
        "features_per_stage": [32, 64, 128],
        "strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2]],
        "n_conv_per_stage": [2, 2, 2],
        "n_conv_per_stage_decoder": [2, 2],
    }
    without = conv_feature_map_size(PLAIN, kwargs, 4, (16, 16, 16))
    with_ds = conv_feature_map_size(PLAIN, kwargs, 4, (16, 16, 16), deep_supervision=True)
    # Extra heads: one at the 8^3 level (the 16^3 head is always there; the bottleneck has none).
    assert with_ds - without == 4 * 8**3


# Values that dynamic-network-architectures 0.4.4 and nnU-Net's ResEnc planner module quote for
# their own example networks (residual_encoder_unet_planners.py, `__main__`), deep supervision on.
UPSTREAM_EXAMPLES = {
    "resenc_3d_128": (
        {
            "features_per_stage": [32, 64, 128, 256, 320, 320],
            "strides": [[1, 1, 1]] + [[2, 2, 2]] * 5,
            "n_blocks_per_stage": [1, 3, 4, 6, 6, 6],
            "n_conv_per_stage_decoder": [1] * 5,
        },
        (128, 128, 128),
        558319104,
    ),
    "resenc_2d_512": (
        {
            "features_per_stage": [32, 64, 128, 256, 512, 512, 512],
            "strides": [[1, 1]] + [[2, 2]] * 6,
            "n_blocks_per_stage": [1, 3, 4, 6, 6, 6, 6],
            "n_conv_per_stage_decoder": [1] * 6,
        },
        (512, 512),
        129793792,
    ),
}


@pytest.mark.parametrize("name", UPSTREAM_EXAMPLES)
def test_upstream_quoted_values(name: str) -> None:
    kwargs, patch, expected = UPSTREAM_EXAMPLES[name]
    assert conv_feature_map_size(RESENC, kwargs, 3, patch, deep_supervision=True) == expected


def test_unknown_architecture_is_refused() -> None:
    kwargs = tiny_kwargs("n_conv_per_stage", [2, 2], [2])
    with pytest.raises(UnsupportedArchitectureError, match="PlainConvUNet"):
        conv_feature_map_size("my.package.TransformerUNet", kwargs, 3, (8, 8))
