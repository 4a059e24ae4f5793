"""The method's initial weights (METHOD.md 6.1, 6.2): He-normal convs, zero biases, zeroed residual norms."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from core.network import build_network_from_architecture
from core.network.blocks import ResidualBlock
from core.network.initialization import HE_NEGATIVE_SLOPE
from tests.core.network.cases import make_architecture

CONVS = (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def _wide(class_name: str) -> nn.Module:
    """Enough weights per layer for tight statistics, still small: 3d, 3 stages, 32-64 features."""
    encoder_depths = [2, 2, 2] if class_name == "PlainConvUNet" else [1, 2, 2]
    architecture = make_architecture(
        class_name,
        3,
        [32, 48, 64],
        [[3, 3, 3]] * 3,
        [[1, 1, 1], [2, 2, 2], [2, 2, 2]],
        encoder_depths,
        [1, 1],
    )
    torch.manual_seed(0)
    return build_network_from_architecture(architecture, 1, 2)


@pytest.mark.parametrize("class_name", ["PlainConvUNet", "ResidualEncoderUNet"])
def test_convs_are_he_normal_with_zero_bias(class_name: str) -> None:
    network = _wide(class_name)
    gain = math.sqrt(2.0 / (1 + HE_NEGATIVE_SLOPE**2))
    checked = 0
    for module in network.modules():
        if not isinstance(module, CONVS):
            continue
        weight = module.weight.detach()
        # torch's fan-in: dim 1 times the kernel (for transposed convs that is the output channels).
        fan_in = weight.shape[1] * math.prod(weight.shape[2:])
        if weight.numel() >= 20_000:
            assert weight.std().item() == pytest.approx(gain / math.sqrt(fan_in), rel=0.03)
            assert abs(weight.mean().item()) < 0.05 * gain / math.sqrt(fan_in)
            checked += 1
        if module.bias is not None:
            assert torch.count_nonzero(module.bias) == 0
    assert checked >= 5


def test_plain_norms_keep_their_defaults() -> None:
    network = _wide("PlainConvUNet")
    norms = [m for m in network.modules() if isinstance(m, nn.InstanceNorm3d)]
    assert norms
    assert all(torch.all(m.weight == 1) and torch.all(m.bias == 0) for m in norms)


def test_residual_blocks_start_as_their_skip_path() -> None:
    network = _wide("ResidualEncoderUNet")
    blocks = [m for m in network.modules() if isinstance(m, ResidualBlock)]
    assert blocks
    for block in blocks:
        assert torch.count_nonzero(block.conv2.norm.weight) == 0
        assert torch.count_nonzero(block.conv2.norm.bias) == 0
        assert torch.all(block.conv1.norm.weight == 1)
    # A block without projection and stride then computes leaky_relu(x) exactly.
    identity_block = next(b for b in blocks if isinstance(b.skip, nn.Identity))
    x = torch.randn(1, identity_block.conv1.conv.in_channels, 6, 6, 6)
    with torch.no_grad():
        expected = nn.functional.leaky_relu(x, HE_NEGATIVE_SLOPE)
        torch.testing.assert_close(identity_block(x), expected)


def test_same_seed_same_weights() -> None:
    first, second = _wide("ResidualEncoderUNet"), _wide("ResidualEncoderUNet")
    for (key, a), b in zip(first.state_dict().items(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b), key
