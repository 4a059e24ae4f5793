"""The U-Net shell shared by both variants: a layout, the decoder, and the encoder + decoder module.

The two variants of METHOD.md 6 differ only in their encoder (plain conv stacks or a stem plus
residual blocks); the decoder is nnU-Net v2's `UNetDecoder` for both. Which of the decoder's outputs
are returned is switched at run time (`UNet.deep_supervision`), because the heads of every
resolution always exist: a checkpoint trained with deep supervision loads for inference without it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from core.network.blocks import ConvStack
from core.network.ops import LayerRecipe


@dataclass(frozen=True)
class UNetLayout:
    """A U-Net's shape, checked and resolved from plans arch_kwargs; stage 0 is full resolution.

    `encoder_depths` counts convs per stage (plain) or residual blocks per stage (ResEnc);
    `decoder_depths[i]` counts the convs of the i-th decoder stage, lowest resolution first.
    """

    features_per_stage: tuple[int, ...]
    kernel_sizes: tuple[tuple[int, ...], ...]
    strides: tuple[tuple[int, ...], ...]
    encoder_depths: tuple[int, ...]
    decoder_depths: tuple[int, ...]
    recipe: LayerRecipe
    stem_channels: int | None = None

    @property
    def n_stages(self) -> int:
        return len(self.features_per_stage)


class UNetDecoder(nn.Module):
    """Upsample by transposed conv, concatenate [upsampled, skip], conv stack, 1x1 head; per stage.

    Stages run lowest resolution first. The decoder holds the encoder as a submodule (`encoder`),
    so its weights appear a second time under `decoder.encoder.*`: nnU-Net v2's decoder does the
    same, and its checkpoints carry those keys, so ours must too for a strict load.
    """

    def __init__(
        self, encoder: nn.Module, layout: UNetLayout, num_classes: int, deep_supervision: bool
    ) -> None:
        super().__init__()
        self.deep_supervision = deep_supervision
        self.encoder = encoder
        family = layout.recipe.family
        features = layout.features_per_stage
        stages, transpconvs, seg_layers = [], [], []
        for step in range(1, layout.n_stages):
            below, skip = features[-step], features[-(step + 1)]
            stride = layout.strides[-step]
            transpconvs.append(
                family.transposed_conv(below, skip, stride, stride, bias=layout.recipe.conv_bias)
            )
            stages.append(
                ConvStack(
                    layout.recipe,
                    layout.decoder_depths[step - 1],
                    2 * skip,
                    skip,
                    layout.kernel_sizes[-(step + 1)],
                    (1,) * family.dim,
                )
            )
            seg_layers.append(family.conv(skip, num_classes, 1, 1, 0, bias=True))
        self.stages = nn.ModuleList(stages)
        self.transpconvs = nn.ModuleList(transpconvs)
        self.seg_layers = nn.ModuleList(seg_layers)

    def forward(self, skips: list[torch.Tensor]) -> torch.Tensor | list[torch.Tensor]:
        """`skips` in encoder order (bottleneck last) → logits, highest resolution first."""
        x = skips[-1]
        outputs: list[torch.Tensor] = []
        last = len(self.stages) - 1
        for step, (transpconv, stage, seg_layer) in enumerate(
            zip(self.transpconvs, self.stages, self.seg_layers, strict=True)
        ):
            x = stage(torch.cat((transpconv(x), skips[-(step + 2)]), 1))
            if self.deep_supervision or step == last:
                outputs.append(seg_layer(x))
        if not self.deep_supervision:
            return outputs[0]
        return outputs[::-1]


class UNet(nn.Module):
    """Encoder → decoder: full-resolution logits, or with deep supervision a list of logits.

    The list has `n_stages - 1` tensors, highest resolution first; tensor i has the spatial size of
    encoder stage i, the input size divided by the product of `layout.strides[: i + 1]`.
    """

    def __init__(
        self, encoder: nn.Module, layout: UNetLayout, num_classes: int, deep_supervision: bool
    ) -> None:
        super().__init__()
        self.layout = layout
        self.encoder = encoder
        self.decoder = UNetDecoder(encoder, layout, num_classes, deep_supervision)

    @property
    def deep_supervision(self) -> bool:
        return bool(self.decoder.deep_supervision)

    @deep_supervision.setter
    def deep_supervision(self, enabled: bool) -> None:
        # The trainer switches it off for validation and inference, as nnU-Net v2 does.
        self.decoder.deep_supervision = enabled

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        return self.decoder(self.encoder(x))
