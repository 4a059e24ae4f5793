"""nnU-Net v2's default network, `PlainConvUNet` (METHOD.md 6.1): conv stacks down, the U-Net decoder up.

Downsampling is by the stride of each stage's first conv; there are no pooling layers.
"""

from __future__ import annotations

import torch
from torch import nn

from core.network.blocks import ConvStack, stage_outputs
from core.network.unet import UNet, UNetLayout


class PlainConvEncoder(nn.Module):
    """`encoder_depths[s]` conv blocks per stage; returns every stage's output (the skips)."""

    def __init__(self, layout: UNetLayout, in_channels: int) -> None:
        super().__init__()
        stages = []
        for s in range(layout.n_stages):
            stack = ConvStack(
                layout.recipe,
                layout.encoder_depths[s],
                in_channels,
                layout.features_per_stage[s],
                layout.kernel_sizes[s],
                layout.strides[s],
            )
            # A stage is a Sequential around the stack because the reference's is (state-dict keys
            # read `encoder.stages.S.0.convs...`).
            stages.append(nn.Sequential(stack))
            in_channels = layout.features_per_stage[s]
        self.stages = nn.Sequential(*stages)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return stage_outputs(self.stages, x)


def build_plain_conv_unet(
    layout: UNetLayout, in_channels: int, num_classes: int, deep_supervision: bool
) -> UNet:
    return UNet(PlainConvEncoder(layout, in_channels), layout, num_classes, deep_supervision)
