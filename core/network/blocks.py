"""Building blocks of both U-Nets (METHOD.md 6): conv → norm → nonlinearity, stacked or residual.

Attribute names are not ours to choose: they become state-dict keys, and nnU-Net v2 checkpoints
load only if ours equal dynamic-network-architectures 0.4.4's. So a conv block keeps its layers
twice, once by role (`conv`, `norm`, `nonlin`, `dropout`) and once in order (`all_modules`), exactly
as the reference does; both names point at the same modules, the state dict lists both.
Modules are also created in the reference's order, so that with the same seed both draw the same
default initial weights.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import torch
from torch import nn

from core.network.ops import LayerRecipe


class ConvNormAct(nn.Module):
    """Conv (k, stride, "same" padding) → dropout → norm → nonlinearity; absent layers are skipped."""

    def __init__(
        self,
        recipe: LayerRecipe,
        in_channels: int,
        out_channels: int,
        kernel_size: tuple[int, ...],
        stride: tuple[int, ...],
    ) -> None:
        super().__init__()
        self.conv = recipe.family.conv(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding=[(k - 1) // 2 for k in kernel_size],
            dilation=1,
            bias=recipe.conv_bias,
        )
        layers: list[nn.Module] = [self.conv]
        dropout = recipe.make_dropout()
        if dropout is not None:
            self.dropout = dropout
            layers.append(dropout)
        norm = recipe.make_norm(out_channels)
        if norm is not None:
            self.norm = norm
            layers.append(norm)
        nonlin = recipe.make_nonlinearity()
        if nonlin is not None:
            self.nonlin = nonlin
            layers.append(nonlin)
        if recipe.is_nonlin_first and norm is not None and nonlin is not None:
            layers[-2], layers[-1] = layers[-1], layers[-2]
        self.all_modules = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.all_modules(x)


class ConvStack(nn.Module):
    """`num_convs` conv blocks; only the first one carries the stride and the channel change."""

    def __init__(
        self,
        recipe: LayerRecipe,
        num_convs: int,
        in_channels: int,
        out_channels: int,
        kernel_size: tuple[int, ...],
        initial_stride: tuple[int, ...],
    ) -> None:
        super().__init__()
        self.convs = chained(
            ConvNormAct, recipe, num_convs, in_channels, out_channels, kernel_size, initial_stride
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convs(x)


class ResidualBlock(nn.Module):
    """ResNet-D basic block (`BasicBlockD`): two convs, the second without activation, plus a skip.

    The skip averages over the stride window before its 1x1 projection (the "D" variant), so no
    input voxel is dropped the way a strided 1x1 conv would drop them. The activation comes after
    the addition. Dropout, when configured, only follows the first conv.
    """

    def __init__(
        self,
        recipe: LayerRecipe,
        in_channels: int,
        out_channels: int,
        kernel_size: tuple[int, ...],
        stride: tuple[int, ...],
    ) -> None:
        super().__init__()
        plain = replace(recipe, dropout=None, nonlinearity=None)
        self.conv1 = ConvNormAct(recipe, in_channels, out_channels, kernel_size, stride)
        self.conv2 = ConvNormAct(plain, out_channels, out_channels, kernel_size, (1,) * len(stride))
        nonlin = recipe.make_nonlinearity()
        self.nonlin2 = nn.Identity() if nonlin is None else nonlin
        is_strided = any(s != 1 for s in stride)
        skip_layers: list[nn.Module] = []
        if is_strided:
            skip_layers.append(recipe.family.avg_pool(stride, stride))
        if in_channels != out_channels:
            # The projection never has a bias: the norm that follows would cancel it.
            projection = replace(plain, conv_bias=False)
            unit = (1,) * len(stride)
            skip_layers.append(ConvNormAct(projection, in_channels, out_channels, unit, unit))
        self.skip: nn.Module = nn.Sequential(*skip_layers) if skip_layers else nn.Identity()

    @property
    def last_norm(self) -> nn.Module | None:
        """The norm just before the addition; zeroing it makes the block start as the identity."""
        return getattr(self.conv2, "norm", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.skip(x)
        out = self.conv2(self.conv1(x))
        out += residual
        return self.nonlin2(out)


class ResidualStack(nn.Module):
    """`num_blocks` residual blocks; only the first one carries the stride and the channel change."""

    def __init__(
        self,
        recipe: LayerRecipe,
        num_blocks: int,
        in_channels: int,
        out_channels: int,
        kernel_size: tuple[int, ...],
        initial_stride: tuple[int, ...],
    ) -> None:
        super().__init__()
        self.blocks = chained(
            ResidualBlock, recipe, num_blocks, in_channels, out_channels, kernel_size, initial_stride
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


def chained(
    block: Callable[..., nn.Module],
    recipe: LayerRecipe,
    count: int,
    in_channels: int,
    out_channels: int,
    kernel_size: tuple[int, ...],
    initial_stride: tuple[int, ...],
) -> nn.Sequential:
    """`count` blocks in a row; only the first carries the stride and the change of channels."""
    unit_stride = (1,) * len(kernel_size)
    return nn.Sequential(
        block(recipe, in_channels, out_channels, kernel_size, initial_stride),
        *(block(recipe, out_channels, out_channels, kernel_size, unit_stride) for _ in range(1, count)),
    )


def stage_outputs(stages: nn.Sequential, x: torch.Tensor) -> list[torch.Tensor]:
    """Run encoder stages in turn and keep each stage's output: the decoder's skip connections."""
    skips = []
    for stage in stages:
        x = stage(x)
        skips.append(x)
    return skips
