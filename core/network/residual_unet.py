"""nnU-Net v2's ResEnc network, `ResidualEncoderUNet` (METHOD.md 6.2): a stem, residual stages, the
same decoder as the plain U-Net.

The stem is one stride-1 conv block to `stem_channels` (default: the first stage's features); each
stage's first residual block carries the stride.
"""

from __future__ import annotations

import torch
from torch import nn

from core.network.blocks import ConvStack, ResidualStack, stage_outputs
from core.network.unet import UNet, UNetLayout


class ResidualEncoder(nn.Module):
    """Stem, then `encoder_depths[s]` residual blocks per stage; returns every stage's output."""

    def __init__(self, layout: UNetLayout, in_channels: int) -> None:
        super().__init__()
        stem_channels = layout.features_per_stage[0] if layout.stem_channels is None else layout.stem_channels
        unit_stride = (1,) * layout.recipe.family.dim
        self.stem = ConvStack(
            layout.recipe, 1, in_channels, stem_channels, layout.kernel_sizes[0], unit_stride
        )
        in_channels = stem_channels
        stages = []
        for s in range(layout.n_stages):
            stages.append(
                ResidualStack(
                    layout.recipe,
                    layout.encoder_depths[s],
                    in_channels,
                    layout.features_per_stage[s],
                    layout.kernel_sizes[s],
                    layout.strides[s],
                )
            )
            in_channels = layout.features_per_stage[s]
        self.stages = nn.Sequential(*stages)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return stage_outputs(self.stages, self.stem(x))


def build_residual_encoder_unet(
    layout: UNetLayout, in_channels: int, num_classes: int, deep_supervision: bool
) -> UNet:
    return UNet(ResidualEncoder(layout, in_channels), layout, num_classes, deep_supervision)
