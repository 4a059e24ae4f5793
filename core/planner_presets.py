"""The planner presets (METHOD.md 3.1): nnU-Net v2's default planner and the ResEnc M/L/XL planners.

A preset is plain data, not a planner subclass: everything that distinguishes nnU-Net's planner
classes (network, blocks per stage, VRAM reference values, the shrink-loop condition, the dataset
cap, how data identifiers are named) is a field here, and `core.planning` reads the fields.
"""

from __future__ import annotations

from dataclasses import dataclass

PLAIN_CONV_UNET_CLASS = "dynamic_network_architectures.architectures.unet.PlainConvUNet"
RESIDUAL_ENCODER_UNET_CLASS = "dynamic_network_architectures.architectures.unet.ResidualEncoderUNet"
# 2d/3d_fullres data identifiers that ResEnc presets reuse, so their preprocessed data is shared.
DEFAULT_PLANS_NAME = "nnUNetPlans"


@dataclass(frozen=True)
class PlannerPreset:
    """One planner's constants. VRAM values are the unitless proxy of `core.network_size`."""

    planner_name: str
    plans_name: str
    network_class_name: str
    # Encoder kwarg that holds the per-stage count: convs (plain) or residual blocks (ResEnc).
    encoder_blocks_key: str
    encoder_blocks_per_stage: tuple[int, ...]
    decoder_convs_per_stage: tuple[int, ...]
    gpu_memory_target_gb: float
    reference_gb: float
    reference_value_3d: int
    reference_value_2d: int
    # Fraction of the dataset's voxels one batch may cover (the 5% cap; 1 removes it).
    max_dataset_covered: float
    # The default planner shrinks while `estimate / ref_bs * 2 > reference`; ResEnc while
    # `estimate > reference` (METHOD.md 3.1, shrink-loop condition).
    is_shrink_scaled_by_reference_batch: bool
    # ResEnc presets name 2d/3d_fullres data like the default plans so it is preprocessed once.
    shares_default_data_identifiers: bool


_RESENC_BLOCKS = (1, 3, 4, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6)
_RESENC_DECODER = (1,) * 12


def _resenc(size: str, gpu_gb: float, reference_3d: int, reference_2d: int) -> PlannerPreset:
    return PlannerPreset(
        planner_name=f"nnUNetPlannerResEnc{size}",
        plans_name=f"nnUNetResEncUNet{size}Plans",
        network_class_name=RESIDUAL_ENCODER_UNET_CLASS,
        encoder_blocks_key="n_blocks_per_stage",
        encoder_blocks_per_stage=_RESENC_BLOCKS,
        decoder_convs_per_stage=_RESENC_DECODER,
        gpu_memory_target_gb=gpu_gb,
        reference_gb=gpu_gb,
        reference_value_3d=reference_3d,
        reference_value_2d=reference_2d,
        max_dataset_covered=1.0,
        is_shrink_scaled_by_reference_batch=False,
        shares_default_data_identifiers=True,
    )


PRESETS: dict[str, PlannerPreset] = {
    "default": PlannerPreset(
        planner_name="ExperimentPlanner",
        plans_name=DEFAULT_PLANS_NAME,
        network_class_name=PLAIN_CONV_UNET_CLASS,
        encoder_blocks_key="n_conv_per_stage",
        encoder_blocks_per_stage=(2,) * 14,
        decoder_convs_per_stage=(2,) * 13,
        gpu_memory_target_gb=8,
        reference_gb=8,
        reference_value_3d=560_000_000,
        reference_value_2d=85_000_000,
        max_dataset_covered=0.05,
        is_shrink_scaled_by_reference_batch=True,
        shares_default_data_identifiers=False,
    ),
    "ResEncM": _resenc("M", 8, 680_000_000, 135_000_000),
    "ResEncL": _resenc("L", 24, 2_100_000_000, 380_000_000),
    "ResEncXL": _resenc("XL", 40, 3_600_000_000, 560_000_000),
}
