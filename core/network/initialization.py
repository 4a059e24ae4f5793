"""The method's initial weights (METHOD.md 6.1, 6.2): He init of convs, residual branches zeroed.

`InitWeights_He(1e-2)`: every conv and transposed conv gets `kaiming_normal_(a=0.01)` (fan-in, the
gain of a leaky ReLU with slope 0.01) and a zero bias; norms keep torch's defaults (weight 1, bias
0). For residual networks the norm before each addition is then zeroed, so that each block starts
as its skip path (the "zero-gamma" trick), which keeps early training of deep encoders stable.

Both walk the module tree with `nn.Module.apply`, as nnU-Net v2 does; modules held twice (see
`core.network.blocks`) are visited twice, so a seeded run draws the reference's numbers.
"""

from __future__ import annotations

from torch import nn

from core.network.blocks import ResidualBlock

HE_NEGATIVE_SLOPE = 1e-2
_HE_INITIALISED = (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def _he_init(module: nn.Module) -> None:
    if isinstance(module, _HE_INITIALISED):
        nn.init.kaiming_normal_(module.weight, a=HE_NEGATIVE_SLOPE)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def _zero_last_residual_norm(module: nn.Module) -> None:
    if isinstance(module, ResidualBlock):
        norm = module.last_norm
        # A norm without affine parameters has nothing to zero.
        for parameter in (getattr(norm, "weight", None), getattr(norm, "bias", None)):
            if isinstance(parameter, nn.Parameter):
                nn.init.zeros_(parameter)


def initialize_weights(network: nn.Module) -> None:
    """He-initialise every conv, then zero the last norm of every residual block (if any)."""
    network.apply(_he_init)
    network.apply(_zero_last_residual_norm)
