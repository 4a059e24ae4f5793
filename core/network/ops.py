"""The layer classes a plans file may name, found in explicit registries, and the layer recipe.

Plans name layers by dotted import path (`"torch.nn.modules.conv.Conv3d"`, `"torch.nn.LeakyReLU"`).
nnU-Net v2 imports whatever string it finds (`pydoc.locate`), so an edited plans file can run any
importable callable. We look names up in closed dictionaries instead: a plans file can only choose
among the layers listed here, and an unknown name is reported, never imported.

Each class is registered under both spellings that occur in plans files: the public alias
(`torch.nn.Conv3d`) and the defining module (`torch.nn.modules.conv.Conv3d`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from torch import nn

_T = TypeVar("_T")


@dataclass(frozen=True)
class ConvFamily:
    """A convolution class and the layers that must match its dimensionality."""

    dim: int
    conv: type[nn.Conv2d] | type[nn.Conv3d]
    transposed_conv: type[nn.ConvTranspose2d] | type[nn.ConvTranspose3d]
    avg_pool: type[nn.AvgPool2d] | type[nn.AvgPool3d]


_CONV_FAMILIES = (
    ConvFamily(2, nn.Conv2d, nn.ConvTranspose2d, nn.AvgPool2d),
    ConvFamily(3, nn.Conv3d, nn.ConvTranspose3d, nn.AvgPool3d),
)
# Norms are called as `norm(channels, **kwargs)`, so only classes with that signature qualify
# (GroupNorm and LayerNorm do not).
_NORMS: tuple[type[nn.Module], ...] = (
    nn.InstanceNorm2d,
    nn.InstanceNorm3d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
)
_DROPOUTS: tuple[type[nn.Module], ...] = (nn.Dropout, nn.Dropout2d, nn.Dropout3d)
_NONLINEARITIES: tuple[type[nn.Module], ...] = (
    nn.LeakyReLU,
    nn.ReLU,
    nn.PReLU,
    nn.ELU,
    nn.GELU,
    nn.SiLU,
)


def _spellings(cls: type) -> tuple[str, str]:
    return f"torch.nn.{cls.__name__}", f"{cls.__module__}.{cls.__name__}"


def _registry(items: Iterable[tuple[type, _T]]) -> dict[str, _T]:
    return {name: value for cls, value in items for name in _spellings(cls)}


CONV_OPS: dict[str, ConvFamily] = _registry((family.conv, family) for family in _CONV_FAMILIES)
NORM_OPS: dict[str, type[nn.Module]] = _registry((cls, cls) for cls in _NORMS)
DROPOUT_OPS: dict[str, type[nn.Module]] = _registry((cls, cls) for cls in _DROPOUTS)
NONLINEARITIES: dict[str, type[nn.Module]] = _registry((cls, cls) for cls in _NONLINEARITIES)


@dataclass(frozen=True)
class LayerRecipe:
    """How every conv block of one network is made: the resolved plans entries, shared by all blocks.

    `norm`, `dropout` and `nonlinearity` may be None (the layer is left out), as in nnU-Net v2.
    `is_nonlin_first` swaps norm and nonlinearity (conv → nonlin → norm), a PlainConvUNet option.
    """

    family: ConvFamily
    conv_bias: bool
    norm: type[nn.Module] | None
    norm_kwargs: Mapping[str, object] = field(default_factory=dict)
    dropout: type[nn.Module] | None = None
    dropout_kwargs: Mapping[str, object] = field(default_factory=dict)
    nonlinearity: type[nn.Module] | None = None
    nonlinearity_kwargs: Mapping[str, object] = field(default_factory=dict)
    is_nonlin_first: bool = False

    def make_norm(self, channels: int) -> nn.Module | None:
        return None if self.norm is None else self.norm(channels, **self.norm_kwargs)

    def make_dropout(self) -> nn.Module | None:
        return None if self.dropout is None else self.dropout(**self.dropout_kwargs)

    def make_nonlinearity(self) -> nn.Module | None:
        return None if self.nonlinearity is None else self.nonlinearity(**self.nonlinearity_kwargs)
