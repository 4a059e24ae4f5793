"""Plans architectures for the network tests: tiny hand-made ones, and planner output for real datasets.

The tiny cases keep every network under a second to build and run; they cover 2d and 3d, the
anisotropic 1x3x3 kernels of thick-slice data, both network classes, and the rarer layer options
(batch norm with its buffers, dropout, nonlin-first, no conv bias). The planned cases come from
`plan_experiment` on hand-made fingerprints, so their sizes are what users get.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.arch_kwargs import OPS_REQUIRING_IMPORT, method_arch_kwargs
from core.dataset import parse_dataset_json
from core.fingerprint import Fingerprint, IntensityStats
from core.planner_presets import PLAIN_CONV_UNET_CLASS, RESIDUAL_ENCODER_UNET_CLASS
from core.planning import plan_experiment
from core.plans import ArchitecturePlan, ConfigurationPlan


def make_architecture(
    class_name: str,
    dim: int,
    features: list[int],
    kernel_sizes: list[list[int]],
    strides: list[list[int]],
    encoder_depths: list[int],
    decoder_depths: list[int],
    **overrides: object,
) -> ArchitecturePlan:
    """An architecture in the planner's layout (METHOD.md 3.9); `overrides` replace or add kwargs."""
    is_plain = class_name == "PlainConvUNet"
    depths_key = "n_conv_per_stage" if is_plain else "n_blocks_per_stage"
    arch_kwargs = {
        **method_arch_kwargs(features, kernel_sizes, strides, depths_key, encoder_depths, decoder_depths),
        **overrides,
    }
    network_class = PLAIN_CONV_UNET_CLASS if is_plain else RESIDUAL_ENCODER_UNET_CLASS
    return ArchitecturePlan(network_class, arch_kwargs, OPS_REQUIRING_IMPORT)


@dataclass(frozen=True)
class NetworkCase:
    """An architecture with the channels and the input (batch, channels, *spatial) to run it on."""

    architecture: ArchitecturePlan
    input_channels: int
    num_classes: int
    input_shape: tuple[int, ...]


def _iso(dim: int, value: int, n: int) -> list[list[int]]:
    return [[value] * dim for _ in range(n)]


def _down(dim: int, n: int) -> list[list[int]]:
    return [[1] * dim, *_iso(dim, 2, n - 1)]


TINY_CASES: dict[str, NetworkCase] = {
    "plain_2d": NetworkCase(
        make_architecture("PlainConvUNet", 2, [4, 8, 16, 32], _iso(2, 3, 4), _down(2, 4), [2] * 4, [2] * 3),
        2,
        3,
        (2, 2, 32, 24),
    ),
    "plain_3d_anisotropic": NetworkCase(
        make_architecture(
            "PlainConvUNet",
            3,
            [4, 8, 16, 16],
            [[1, 3, 3], [1, 3, 3], [3, 3, 3], [3, 3, 3]],
            [[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2]],
            [2] * 4,
            [2] * 3,
        ),
        1,
        2,
        (1, 1, 8, 32, 24),
    ),
    "plain_2d_batchnorm_dropout": NetworkCase(
        make_architecture(
            "PlainConvUNet",
            2,
            [4, 8, 8],
            _iso(2, 3, 3),
            _down(2, 3),
            [1, 3, 2],
            [1, 2],
            conv_bias=False,
            norm_op="torch.nn.BatchNorm2d",
            norm_op_kwargs={"eps": 1e-3, "momentum": 0.2},
            dropout_op="torch.nn.modules.dropout.Dropout2d",
            dropout_op_kwargs={"p": 0.2},
            nonlin="torch.nn.ReLU",
            nonlin_kwargs={},
            nonlin_first=True,
        ),
        1,
        2,
        (2, 1, 16, 16),
    ),
    "resenc_3d": NetworkCase(
        make_architecture(
            "ResidualEncoderUNet", 3, [4, 8, 16, 16], _iso(3, 3, 4), _down(3, 4), [1, 3, 4, 2], [1] * 3
        ),
        1,
        3,
        (1, 1, 16, 16, 24),
    ),
    "resenc_3d_anisotropic": NetworkCase(
        make_architecture(
            "ResidualEncoderUNet",
            3,
            [4, 8, 16],
            [[1, 3, 3], [3, 3, 3], [3, 3, 3]],
            [[1, 1, 1], [1, 2, 2], [2, 2, 2]],
            [1, 2, 2],
            [1, 1],
        ),
        2,
        2,
        (1, 2, 8, 16, 16),
    ),
    "resenc_2d": NetworkCase(
        make_architecture(
            "ResidualEncoderUNet", 2, [4, 8, 16], _iso(2, 3, 3), _down(2, 3), [1, 2, 2], [1, 1]
        ),
        1,
        2,
        (2, 1, 16, 16),
    ),
}


def _fingerprint(spacing: tuple[float, ...], shape: tuple[int, ...], num_cases: int) -> Fingerprint:
    stats = IntensityStats(
        mean=100.0, median=95.0, std=40.0, min=-50.0, max=400.0, percentile_00_5=-20.0, percentile_99_5=300.0
    )
    return Fingerprint(
        spacings=[spacing] * num_cases,
        shapes_after_crop=[shape] * num_cases,
        foreground_intensity_properties_per_channel={"0": stats},
        median_relative_size_after_cropping=1.0,
    )


def planned_configuration(preset: str, configuration: str) -> ConfigurationPlan:
    """A configuration planned for a CT-like set: 3.0 x 0.75 x 0.75 mm, 90 x 380 x 380 voxels, 3 labels."""
    spec = parse_dataset_json(
        {
            "channel_names": {"0": "CT"},
            "labels": {"background": 0, "liver": 1, "tumour": 2},
            "numTraining": 30,
            "file_ending": ".nii.gz",
        }
    )
    plans = plan_experiment(_fingerprint((3.0, 0.75, 0.75), (90, 380, 380), 30), spec, preset=preset)
    return plans.configuration(configuration)
