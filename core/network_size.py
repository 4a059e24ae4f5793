"""The planner's VRAM proxy: how many activation values a U-Net's convolutions produce for one patch.

METHOD.md 3.5 step 3 and 6: nnU-Net v2 builds the torch network and calls
`compute_conv_feature_map_size(patch)` (dynamic-network-architectures 0.4.4). The number is a sum,
over every convolution, transposed convolution and segmentation head, of output channels times
output voxels; norms, nonlinearities and pooling are not counted. Computing it from the arch kwargs
gives the same integer without torch, in microseconds instead of a network build per shrink step.

Only outputs are counted, so the number of input channels does not enter. Sizes are halved with
floor division at each stride, as the reference does ("same" padding).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

PLAIN_CONV_UNET = "PlainConvUNet"
RESIDUAL_ENCODER_UNET = "ResidualEncoderUNet"


class UnsupportedArchitectureError(ValueError):
    """The proxy is only defined for PlainConvUNet and ResidualEncoderUNet."""


def _items(value: object) -> list[object]:
    if not isinstance(value, list | tuple):
        raise TypeError(f"expected a list, got {value!r}")
    return list(value)


def _ints(value: object) -> list[int]:
    items = _items(value)
    ints = [v for v in items if isinstance(v, int)]
    if len(ints) != len(items):
        raise TypeError(f"expected a list of integers, got {value!r}")
    return ints


def _stage_sizes(patch_size: Sequence[int], strides: Sequence[Sequence[int]]) -> list[list[int]]:
    """Spatial size of each encoder stage's output (stage 0 first)."""
    sizes = []
    size = list(patch_size)
    for stride in strides:
        size = [s // k for s, k in zip(size, stride, strict=True)]
        sizes.append(size)
    return sizes


def _plain_encoder(features: Sequence[int], convs: Sequence[int], sizes: list[list[int]]) -> int:
    # Each stage: `convs[s]` conv blocks, the first strided, all at the stage's output size.
    return sum(n * c * math.prod(size) for n, c, size in zip(convs, features, sizes, strict=True))


def _residual_encoder(
    features: Sequence[int],
    blocks: Sequence[int],
    patch_size: Sequence[int],
    sizes: list[list[int]],
) -> int:
    # The stem is one stride-1 conv to features[0] at full size.
    total = features[0] * math.prod(patch_size)
    in_channels, in_size = features[0], list(patch_size)
    for n_blocks, channels, size in zip(blocks, features, sizes, strict=True):
        voxels = math.prod(size)
        # A BasicBlockD has two convs; its 1x1 projection counts only when the first block changes
        # channels or size (the skip is then not the identity).
        total += 2 * n_blocks * channels * voxels
        if in_channels != channels or in_size != size:
            total += channels * voxels
        in_channels, in_size = channels, size
    return total


def _decoder(
    features: Sequence[int],
    decoder_convs: Sequence[int],
    sizes: list[list[int]],
    num_classes: int,
    deep_supervision: bool,
) -> int:
    """UNetDecoder: for each encoder level above the bottleneck, lowest resolution first."""
    total = 0
    n_levels = len(features) - 1
    for step in range(n_levels):
        level = n_levels - 1 - step  # encoder stage whose skip this decoder stage merges with
        voxels = math.prod(sizes[level])
        # Transposed conv plus the stage's conv blocks, all with the skip's channel count.
        total += (1 + decoder_convs[step]) * features[level] * voxels
        # The 1x1 segmentation head runs at every level with deep supervision, else only at the top.
        if deep_supervision or level == 0:
            total += num_classes * voxels
    return total


def conv_feature_map_size(
    network_class_name: str,
    arch_kwargs: Mapping[str, object],
    num_classes: int,
    patch_size: Sequence[int],
    deep_supervision: bool = False,
) -> int:
    """The proxy for a network given as in a plans file; equals dynamic-network-architectures' value.

    `network_class_name` may be dotted (only the last part is used). `num_classes` is what the planner
    passes as output channels: the length of dataset.json's label dict (METHOD.md 3.5 step 3). The
    planner builds its network with the class default, no deep supervision.
    """
    class_name = network_class_name.rsplit(".", 1)[-1]
    features = _ints(arch_kwargs["features_per_stage"])
    strides = [_ints(stride) for stride in _items(arch_kwargs["strides"])]
    decoder_convs = _ints(arch_kwargs["n_conv_per_stage_decoder"])
    sizes = _stage_sizes(patch_size, strides)
    if class_name == PLAIN_CONV_UNET:
        encoder = _plain_encoder(features, _ints(arch_kwargs["n_conv_per_stage"]), sizes)
    elif class_name == RESIDUAL_ENCODER_UNET:
        blocks = _ints(arch_kwargs["n_blocks_per_stage"])
        encoder = _residual_encoder(features, blocks, patch_size, sizes)
    else:
        raise UnsupportedArchitectureError(
            f"no VRAM proxy for {network_class_name!r}; supported: {PLAIN_CONV_UNET}, {RESIDUAL_ENCODER_UNET}"
        )
    return encoder + _decoder(features, decoder_convs, sizes, num_classes, deep_supervision)
