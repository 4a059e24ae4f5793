"""The U-Nets' structure, outputs and switches (METHOD.md 6); nnU-Net v2 itself is compared in parity."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from core.network import UNet, build_network, build_network_from_architecture
from core.network.blocks import ConvStack, ResidualStack
from tests.core.network.cases import TINY_CASES, NetworkCase, make_architecture, planned_configuration


def _build(case: NetworkCase, deep_supervision: bool = True) -> UNet:
    return build_network_from_architecture(
        case.architecture, case.input_channels, case.num_classes, deep_supervision
    )


def _first_convs(network: UNet) -> list[nn.Module]:
    """The first conv of each encoder stage: the one that carries the stage's stride."""
    convs = []
    for stage in network.encoder.stages:
        stack = stage[0] if isinstance(stage, nn.Sequential) else stage
        if isinstance(stack, ConvStack):
            convs.append(stack.convs[0].conv)
        else:
            assert isinstance(stack, ResidualStack)
            convs.append(stack.blocks[0].conv1.conv)
    return convs


def _expected_sizes(case: NetworkCase) -> list[tuple[int, ...]]:
    """Spatial size of each encoder stage's output: the input divided by the cumulative strides."""
    size, sizes = list(case.input_shape[2:]), []
    for stride in case.architecture.strides:
        size = [s // k for s, k in zip(size, stride, strict=True)]
        sizes.append(tuple(size))
    return sizes


@pytest.mark.parametrize("name", sorted(TINY_CASES))
def test_stages_strides_and_kernels_follow_the_plans(name: str) -> None:
    case = TINY_CASES[name]
    network = _build(case)
    architecture = case.architecture
    first_convs = _first_convs(network)
    assert len(first_convs) == architecture.n_stages
    assert [c.stride for c in first_convs] == list(architecture.strides)
    assert [c.kernel_size for c in first_convs] == list(architecture.kernel_sizes)
    assert [c.out_channels for c in first_convs] == list(architecture.features_per_stage)
    assert [c.padding for c in first_convs] == [
        tuple((k - 1) // 2 for k in ks) for ks in architecture.kernel_sizes
    ]
    # Decoder: lowest resolution first, upsampling by each stage's stride, the skip's kernel size.
    decoder = network.decoder
    assert (
        len(decoder.stages)
        == len(decoder.transpconvs)
        == len(decoder.seg_layers)
        == architecture.n_stages - 1
    )
    for step, transpconv in enumerate(decoder.transpconvs, start=1):
        assert transpconv.stride == transpconv.kernel_size == architecture.strides[-step]
        assert decoder.stages[step - 1].convs[0].conv.kernel_size == architecture.kernel_sizes[-(step + 1)]
    assert all(head.kernel_size == (1,) * len(case.input_shape[2:]) for head in decoder.seg_layers)


@pytest.mark.parametrize("name", sorted(TINY_CASES))
def test_deep_supervision_outputs_highest_resolution_first(name: str) -> None:
    case = TINY_CASES[name]
    network = _build(case)
    outputs = network(torch.randn(case.input_shape))
    assert isinstance(outputs, list)
    batch = case.input_shape[0]
    expected = [(batch, case.num_classes, *size) for size in _expected_sizes(case)[:-1]]
    assert [tuple(o.shape) for o in outputs] == expected


@pytest.mark.parametrize("name", sorted(TINY_CASES))
def test_without_deep_supervision_one_full_resolution_tensor(name: str) -> None:
    case = TINY_CASES[name]
    network = _build(case, deep_supervision=False)
    output = network(torch.randn(case.input_shape))
    assert isinstance(output, torch.Tensor)
    assert tuple(output.shape) == (case.input_shape[0], case.num_classes, *case.input_shape[2:])


def test_deep_supervision_switches_at_run_time_and_keeps_the_same_top_output() -> None:
    case = TINY_CASES["plain_3d_anisotropic"]
    network = _build(case).eval()
    data = torch.randn(case.input_shape)
    with torch.no_grad():
        outputs = network(data)
        network.deep_supervision = False
        single = network(data)
    assert network.decoder.deep_supervision is False
    assert torch.equal(outputs[0], single)


def test_heads_exist_without_deep_supervision_so_checkpoints_load_either_way() -> None:
    case = TINY_CASES["resenc_3d"]
    trained = _build(case, deep_supervision=True)
    for_inference = _build(case, deep_supervision=False)
    for_inference.load_state_dict(trained.state_dict(), strict=True)


def test_decoder_also_holds_the_encoder_as_nnunet_does() -> None:
    network = _build(TINY_CASES["plain_2d"])
    keys = network.state_dict().keys()
    encoder_keys = [k for k in keys if k.startswith("encoder.")]
    assert [k for k in keys if k.startswith("decoder.encoder.")] == [f"decoder.{k}" for k in encoder_keys]
    # Held twice, trained once: the optimizer must not see duplicates.
    assert len({id(p) for p in network.parameters()}) == len(list(network.parameters()))


def test_method_example_parameter_count() -> None:
    # METHOD.md 6.1: 3D, 6 stages (32 ... 320), 1 input channel, 3 outputs → 31,196,399 parameters.
    architecture = make_architecture(
        "PlainConvUNet",
        3,
        [32, 64, 128, 256, 320, 320],
        [[3, 3, 3]] * 6,
        [[1, 1, 1]] + [[2, 2, 2]] * 5,
        [2] * 6,
        [2] * 5,
    )
    network = build_network_from_architecture(architecture, 1, 3)
    assert sum(p.numel() for p in network.parameters()) == 31_196_399


@pytest.mark.parametrize(
    ("preset", "class_name"), [("default", "PlainConvEncoder"), ("ResEncM", "ResidualEncoder")]
)
def test_planned_anisotropic_configuration_builds(preset: str, class_name: str) -> None:
    configuration = planned_configuration(preset, "3d_fullres")
    network = build_network(configuration, 1, 3)
    assert type(network.encoder).__name__ == class_name
    kernels = [conv.kernel_size for conv in _first_convs(network)]
    assert kernels == list(configuration.architecture.kernel_sizes)
    assert kernels[0] == (1, 3, 3)


def test_planned_network_runs_at_full_resolution() -> None:
    configuration = planned_configuration("default", "3d_fullres")
    network = build_network(configuration, 1, 3)
    # Twice the total stride per axis: instance norm needs more than one voxel at the bottleneck.
    size = [2 * math.prod(axis) for axis in zip(*configuration.architecture.strides, strict=True)]
    with torch.no_grad():
        output = network.eval()(torch.randn(1, 1, *size))
    assert isinstance(output, list)
    assert tuple(output[0].shape[2:]) == tuple(size)
