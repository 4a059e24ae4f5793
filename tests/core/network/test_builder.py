"""Plans architectures that cannot be built are refused, naming every problem (no import by name)."""

from __future__ import annotations

import dataclasses

import pytest

from core.network import ArchitectureError, build_network_from_architecture, parse_layout
from core.plans import ArchitecturePlan
from tests.core.network.cases import TINY_CASES

BASE = TINY_CASES["plain_3d_anisotropic"].architecture
RESENC = TINY_CASES["resenc_3d"].architecture


def _with(architecture: ArchitecturePlan, **changes: object) -> ArchitecturePlan:
    return dataclasses.replace(architecture, arch_kwargs={**architecture.arch_kwargs, **changes})


def _without(architecture: ArchitecturePlan, key: str) -> ArchitecturePlan:
    kwargs = {k: v for k, v in architecture.arch_kwargs.items() if k != key}
    return dataclasses.replace(architecture, arch_kwargs=kwargs)


INVALID = {
    "unknown conv": (_with(BASE, conv_op="torch.nn.Conv4d"), ["conv_op", "'torch.nn.Conv4d'"]),
    "conv by arbitrary import path": (_with(BASE, conv_op="os.system"), ["conv_op", "'os.system'"]),
    "unknown norm": (_with(BASE, norm_op="my_package.FancyNorm3d"), ["norm_op", "'my_package.FancyNorm3d'"]),
    "group norm has another signature": (_with(BASE, norm_op="torch.nn.GroupNorm"), ["norm_op"]),
    "unknown nonlinearity": (_with(BASE, nonlin="torch.nn.Mish2"), ["nonlin", "'torch.nn.Mish2'"]),
    "unknown dropout": (_with(BASE, dropout_op="torch.nn.AlphaDropout3d"), ["dropout_op"]),
    "unknown network": (
        dataclasses.replace(
            BASE, network_class_name="dynamic_network_architectures.architectures.unet.UNetPlusPlus"
        ),
        ["network_class_name", "UNetPlusPlus"],
    ),
    "unsupported key": (_with(BASE, pool="max"), ["'pool'", "PlainConvUNet"]),
    "plain-only key on ResEnc": (_with(RESENC, nonlin_first=True), ["'nonlin_first'", "ResidualEncoderUNet"]),
    "missing encoder depths": (_without(BASE, "n_conv_per_stage"), ["'n_conv_per_stage' is missing"]),
    "wrong kernel count": (_with(BASE, kernel_sizes=[[3, 3, 3]] * 3), ["kernel_sizes", "4 entries"]),
    "2d kernel in 3d network": (_with(BASE, kernel_sizes=[[3, 3]] * 4), ["kernel_sizes", "3 values"]),
    "zero stride": (_with(BASE, strides=[[1, 1, 1], [0, 2, 2], [2, 2, 2], [2, 2, 2]]), ["strides"]),
    "decoder depth count": (_with(BASE, n_conv_per_stage_decoder=[2] * 4), ["n_conv_per_stage_decoder"]),
    "one stage": (_with(BASE, n_stages=1), ["at least 2 stages"]),
    "boolean as a count": (_with(BASE, n_stages=True), ["n_stages"]),
    "norm kwargs not an object": (_with(BASE, norm_op_kwargs=[1e-5]), ["norm_op_kwargs"]),
    "conv bias not a flag": (_with(BASE, conv_bias="yes"), ["conv_bias"]),
}


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_architecture_is_refused(name: str) -> None:
    architecture, fragments = INVALID[name]
    with pytest.raises(ArchitectureError) as raised:
        build_network_from_architecture(architecture, 1, 2)
    message = str(raised.value)
    for fragment in fragments:
        assert fragment in message


def test_every_problem_is_reported_at_once() -> None:
    architecture = _with(BASE, norm_op="x.Norm", nonlin="y.Act", strides=[[1, 1, 1]] * 2)
    with pytest.raises(ArchitectureError) as raised:
        parse_layout(architecture)
    assert len(raised.value.problems) == 3
    assert any("'x.Norm'" in p for p in raised.value.problems)
    assert any("'y.Act'" in p for p in raised.value.problems)


@pytest.mark.parametrize(
    "channels", [(0, 2), (1, 0), (1.5, 2)], ids=["no inputs", "no outputs", "float inputs"]
)
def test_channel_counts_must_be_positive_integers(channels: tuple[object, object]) -> None:
    with pytest.raises(ArchitectureError, match="channels"):
        build_network_from_architecture(BASE, *channels)  # type: ignore[arg-type]


def test_both_spellings_of_a_layer_and_bare_class_names_resolve() -> None:
    short = _with(BASE, conv_op="torch.nn.Conv3d", norm_op="torch.nn.InstanceNorm3d")
    long = _with(BASE, nonlin="torch.nn.modules.activation.LeakyReLU")
    bare = dataclasses.replace(BASE, network_class_name="PlainConvUNet")
    assert parse_layout(short).recipe == parse_layout(BASE).recipe == parse_layout(bare).recipe
    assert parse_layout(long).recipe == parse_layout(BASE).recipe


def test_integers_stand_for_every_stage_and_axis_as_in_nnunet() -> None:
    layout = parse_layout(_with(BASE, kernel_sizes=3, strides=[1, 2, 2, 2], n_conv_per_stage=2))
    assert layout.kernel_sizes == ((3, 3, 3),) * 4
    assert layout.strides == ((1, 1, 1),) + ((2, 2, 2),) * 3
    assert layout.encoder_depths == (2, 2, 2, 2)
