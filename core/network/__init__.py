"""The networks of METHOD.md 6, built from a plans configuration, state-dict compatible with nnU-Net v2.

`build_network(configuration, in, out)` gives nnU-Net v2's `PlainConvUNet` or `ResidualEncoderUNet`
for the plans' architecture, He-initialised, with parameter names and shapes equal to the reference's,
so `network.load_state_dict(nnunet_checkpoint["network_weights"])` works as it is (strict).

Deep supervision: on, `network(x)` returns `n_stages - 1` logits tensors, highest resolution first;
off, the full-resolution logits alone. Switch it with `network.deep_supervision = False`.
"""

from __future__ import annotations

from core.network.builder import (
    PLAIN_CONV_UNET,
    RESIDUAL_ENCODER_UNET,
    ArchitectureError,
    build_network_from_architecture,
    parse_layout,
)
from core.network.initialization import initialize_weights
from core.network.unet import UNet, UNetLayout
from core.plans import ConfigurationPlan

__all__ = [
    "PLAIN_CONV_UNET",
    "RESIDUAL_ENCODER_UNET",
    "ArchitectureError",
    "UNet",
    "UNetLayout",
    "build_network",
    "build_network_from_architecture",
    "initialize_weights",
    "parse_layout",
]


def build_network(
    configuration: ConfigurationPlan,
    num_input_channels: int,
    num_output_channels: int,
    deep_supervision: bool = True,
) -> UNet:
    """The configuration's network; `num_output_channels` is the number of classes (or regions)."""
    return build_network_from_architecture(
        configuration.architecture, num_input_channels, num_output_channels, deep_supervision
    )
