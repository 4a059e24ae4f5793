"""Experiment planning (METHOD.md 3): from a dataset fingerprint to the plans of every configuration.

`plan_experiment` follows nnU-Net v2's `ExperimentPlanner.plan_experiment` rule by rule: target
spacing (median, or the 10th percentile along a thick-slice axis), transposition so that the
coarsest axis comes first, the median shape after resampling, then for each configuration a patch
shrunk until the VRAM proxy fits, the batch size that the remaining memory allows, and the
normalization and resampling settings. Arithmetic is done in numpy float64 in nnU-Net's order so
that rounding ties come out the same; the parity tests check this against nnU-Net itself.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from core import constants as c
from core.arch_kwargs import OPS_REQUIRING_IMPORT, method_arch_kwargs
from core.dataset import DatasetSpec
from core.errors import ProblemsError
from core.fingerprint import Fingerprint
from core.network_size import conv_feature_map_size
from core.planner_presets import DEFAULT_PLANS_NAME, PRESETS, PlannerPreset
from core.plans import ArchitecturePlan, ConfigurationPlan, Plans
from core.topology import Topology, compute_topology

logger = logging.getLogger(__name__)

PREPROCESSOR_NAME = "DefaultPreprocessor"
IMAGE_READER_WRITER = "SimpleITKIO"
LABEL_MANAGER = "LabelManager"
RESAMPLING_FN = "resample_data_or_seg_to_shape"
# Resampling kwargs written to every configuration (METHOD.md 3.8).
RESAMPLING_DATA_KWARGS = {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None}
RESAMPLING_SEG_KWARGS = {"is_seg": True, "order": 1, "order_z": 0, "force_separate_z": None}
RESAMPLING_PROBABILITIES_KWARGS = {"is_seg": False, "order": 1, "order_z": 0, "force_separate_z": None}
DEFAULT_DATASET_NAME = "Dataset000_Unnamed"


class PlanningError(ProblemsError):
    """The planner cannot run on these inputs; `problems` lists every reason, one line each."""


def fullres_target_spacing(
    spacings: Sequence[Sequence[float]], shapes: Sequence[Sequence[int]]
) -> np.ndarray:
    """Median spacing, except along a thick-slice axis with few slices (METHOD.md 3.2)."""
    spacing_table = np.vstack(spacings)
    target = np.percentile(spacing_table, 50, 0)
    target_size = np.percentile(np.vstack(shapes), 50, 0)
    worst = int(np.argmax(target))
    others = [axis for axis in range(len(target)) if axis != worst]
    max_other_spacing = max(target[axis] for axis in others)
    is_aniso_spacing = target[worst] > c.PLANNING_ANISO_THRESHOLD * max_other_spacing
    is_aniso_voxels = target_size[worst] * c.PLANNING_ANISO_THRESHOLD < min(
        target_size[axis] for axis in others
    )
    if is_aniso_spacing and is_aniso_voxels:
        # The median would interpolate the thin cases' slices away; a low percentile keeps them.
        value = np.percentile(spacing_table[:, worst], c.PLANNING_ANISO_TARGET_PERCENTILE)
        if value < max_other_spacing:
            value = max(max_other_spacing, value) + c.PLANNING_ANISO_SPACING_EPSILON
        target[worst] = value
    return target


def transpose_axes(target_spacing: Sequence[float]) -> tuple[list[int], list[int]]:
    """Forward puts the coarsest axis first, others in order; backward undoes it (METHOD.md 3.3)."""
    coarsest = int(np.argmax(target_spacing))
    forward = [coarsest] + [axis for axis in range(len(target_spacing)) if axis != coarsest]
    backward = [forward.index(axis) for axis in range(len(forward))]
    return forward, backward


def median_shape_after_resampling(
    spacings: Sequence[Sequence[float]], shapes: Sequence[Sequence[int]], target: np.ndarray
) -> np.ndarray:
    """Median over cases of each shape resampled to `target`, in reader axis order (METHOD.md 3.4)."""
    new_shapes = [
        [round(s / t * n) for s, t, n in zip(spacing, target, shape, strict=True)]
        for spacing, shape in zip(spacings, shapes, strict=True)
    ]
    return np.median(new_shapes, 0)


def normalization_for_channels(
    channel_names: dict[str, str], median_relative_size_after_cropping: float
) -> tuple[tuple[str, ...], tuple[bool, ...]]:
    """Scheme per channel from its name (METHOD.md 4.2) and whether it uses the mask (3.7)."""
    names = [channel_names[key] for key in sorted(channel_names, key=int)]
    schemes = tuple(
        c.PLANNING_NORMALIZATION_BY_CHANNEL_NAME.get(name.casefold(), c.PLANNING_DEFAULT_NORMALIZATION)
        for name in names
    )
    # Only when cropping removed much of the image (skull-stripped MRI) is the mask informative.
    is_cropped = median_relative_size_after_cropping < c.PLANNING_MASK_FOR_NORM_MAX_CROP_RATIO
    masks = tuple(is_cropped and s in c.PLANNING_MASKABLE_NORMALIZATIONS for s in schemes)
    return schemes, masks


@dataclass(frozen=True)
class PlanningContext:
    """What every configuration of one planning run shares."""

    preset: PlannerPreset
    gpu_memory_gb: float
    num_classes: int
    normalization_schemes: tuple[str, ...]
    use_mask_for_norm: tuple[bool, ...]


def architecture_for(topology: Topology, preset: PlannerPreset) -> ArchitecturePlan:
    """The network kwargs for a topology: features double per stage up to the cap (3.1, 3.9)."""
    dim = len(topology.patch_size)
    n_stages = topology.n_stages
    max_features = c.PLANNING_MAX_FEATURES_3D if dim == 3 else c.PLANNING_MAX_FEATURES_2D
    arch_kwargs = method_arch_kwargs(
        features_per_stage=[min(max_features, c.PLANNING_BASE_FEATURES * 2**i) for i in range(n_stages)],
        kernel_sizes=topology.kernel_sizes,
        strides=topology.strides,
        encoder_depths_key=preset.encoder_blocks_key,
        encoder_depths=preset.encoder_blocks_per_stage[:n_stages],
        decoder_depths=preset.decoder_convs_per_stage[: n_stages - 1],
    )
    return ArchitecturePlan(preset.network_class_name, arch_kwargs, OPS_REQUIRING_IMPORT)


def _initial_patch(spacing: np.ndarray, median_shape: np.ndarray) -> list[float]:
    """Patch with the spacing's aspect ratio and 256^3 (3D) / 2048^2 (2D) voxels, clipped (3.5.1)."""
    dim = len(spacing)
    edge = c.PLANNING_INITIAL_PATCH_EDGE_3D if dim == 3 else c.PLANNING_INITIAL_PATCH_EDGE_2D
    inverse = 1 / spacing
    scaled = inverse * (edge**dim / np.prod(inverse)) ** (1 / dim)
    return [min(round(p), m) for p, m in zip(scaled, median_shape[:dim], strict=True)]


def plan_configuration(
    spacing: np.ndarray,
    median_shape: np.ndarray | tuple[int, ...],
    data_identifier: str,
    approximate_n_voxels_dataset: float,
    context: PlanningContext,
) -> ConfigurationPlan:
    """Patch, topology, batch size and settings for one configuration (METHOD.md 3.5).

    `batch_dice` is set to False here; `plan_experiment` decides it per configuration (3.6).
    """
    spacing = np.asarray(spacing, dtype=np.float64)
    dim = len(spacing)
    preset = context.preset
    median = [float(m) for m in median_shape[:dim]]
    topology = compute_topology(spacing, _initial_patch(spacing, np.asarray(median_shape)))
    architecture = architecture_for(topology, preset)
    estimate = conv_feature_map_size(
        preset.network_class_name, architecture.arch_kwargs, context.num_classes, topology.patch_size
    )
    reference_value = preset.reference_value_3d if dim == 3 else preset.reference_value_2d
    reference = reference_value * (context.gpu_memory_gb / preset.reference_gb)
    reference_bs = c.PLANNING_REFERENCE_BATCH_SIZE_3D if dim == 3 else c.PLANNING_REFERENCE_BATCH_SIZE_2D

    def is_too_big(value: int) -> bool:
        if preset.is_shrink_scaled_by_reference_batch:
            return value / reference_bs * 2 > reference
        return value > reference

    while is_too_big(estimate):
        patch = list(topology.patch_size)
        # Shrink the axis that is largest relative to the median image; ties go to the last axis.
        ratios = [p / m for p, m in zip(patch, median, strict=True)]
        axis = max(range(dim), key=lambda a: (ratios[a], a))
        # Subtracting the current divisor could skip valid sizes (256 -> 192 misses 224), so use
        # the divisor of the already reduced patch (METHOD.md 3.5 step 4).
        probe = list(patch)
        probe[axis] -= topology.shape_must_be_divisible_by[axis]
        patch[axis] -= compute_topology(spacing, probe).shape_must_be_divisible_by[axis]
        if patch[axis] < 1:
            raise PlanningError(
                [f"no patch fits {context.gpu_memory_gb} GB; choose a larger GPU memory target"]
            )
        topology = compute_topology(spacing, patch)
        architecture = architecture_for(topology, preset)
        estimate = conv_feature_map_size(
            preset.network_class_name,
            architecture.arch_kwargs,
            context.num_classes,
            topology.patch_size,
        )
    batch_size = round(reference / estimate * reference_bs)
    # Overfitting guard: one batch sees at most `max_dataset_covered` of the dataset's voxels.
    batch_cap = round(
        approximate_n_voxels_dataset
        * preset.max_dataset_covered
        / np.prod(topology.patch_size, dtype=np.float64)
    )
    return ConfigurationPlan(
        data_identifier=data_identifier,
        preprocessor_name=PREPROCESSOR_NAME,
        batch_size=int(max(min(batch_size, batch_cap), c.PLANNING_MIN_BATCH_SIZE)),
        patch_size=topology.patch_size,
        median_image_size_in_voxels=tuple(float(m) for m in median_shape),
        spacing=tuple(float(s) for s in spacing),
        normalization_schemes=context.normalization_schemes,
        use_mask_for_norm=context.use_mask_for_norm,
        resampling_fn_data=RESAMPLING_FN,
        resampling_fn_seg=RESAMPLING_FN,
        resampling_fn_data_kwargs=dict(RESAMPLING_DATA_KWARGS),
        resampling_fn_seg_kwargs=dict(RESAMPLING_SEG_KWARGS),
        resampling_fn_probabilities=RESAMPLING_FN,
        resampling_fn_probabilities_kwargs=dict(RESAMPLING_PROBABILITIES_KWARGS),
        architecture=architecture,
        batch_dice=False,
    )


def plan_lowres(
    fullres: ConfigurationPlan,
    median_shape: np.ndarray,
    num_training: int,
    data_identifier: str,
    context: PlanningContext,
) -> ConfigurationPlan | None:
    """3d_lowres: coarsen the spacing by 1.03 per step until the patch covers 25% (METHOD.md 3.6)."""
    fullres_spacing = np.asarray(fullres.spacing, dtype=np.float64)
    spacing = fullres_spacing.copy()
    median_voxels = np.prod(median_shape, dtype=np.float64)
    patch_voxels = np.prod(fullres.patch_size, dtype=np.float64)
    lowres = None
    while patch_voxels / median_voxels < c.PLANNING_LOWRES_CREATION_THRESHOLD:
        # Coarsen the fine axes first until they are within a factor 2 of the coarsest.
        is_fine = max(spacing) / spacing > c.PLANNING_LOWRES_ANISOTROPY_FACTOR
        if np.any(is_fine):
            spacing[is_fine] *= c.PLANNING_LOWRES_SPACING_INCREASE_FACTOR
        else:
            spacing *= c.PLANNING_LOWRES_SPACING_INCREASE_FACTOR
        shape = fullres_spacing / spacing * median_shape
        median_voxels = np.prod(shape, dtype=np.float64)
        lowres = plan_configuration(
            spacing,
            tuple(round(s) for s in shape),
            data_identifier,
            float(median_voxels * num_training),
            context,
        )
        patch_voxels = np.prod(lowres.patch_size, dtype=np.float64)
    if np.prod(median_shape, dtype=np.float64) / median_voxels < c.PLANNING_LOWRES_MIN_VOXEL_RATIO:
        logger.info("dropping 3d_lowres: its images are not 2x smaller than 3d_fullres's")
        return None
    return lowres


def _check_inputs(
    fingerprint: Fingerprint, spec: DatasetSpec, gpu_memory_gb: float | None, preset: str
) -> list[str]:
    problems = []
    if preset not in PRESETS:
        problems.append(f"unknown planner preset {preset!r}; choose one of {', '.join(PRESETS)}")
    if gpu_memory_gb is not None and not gpu_memory_gb > 0:
        problems.append(f"gpu_memory_gb must be positive, got {gpu_memory_gb}")
    if not fingerprint.spacings or len(fingerprint.spacings) != len(fingerprint.shapes_after_crop):
        problems.append("fingerprint: needs one spacing and one shape per case, and at least one case")
    for index, (spacing, shape) in enumerate(
        zip(fingerprint.spacings, fingerprint.shapes_after_crop, strict=False)
    ):
        if len(spacing) != 3 or len(shape) != 3 or min(spacing) <= 0 or min(shape) < 1:
            problems.append(
                f"fingerprint case {index}: spacing {spacing} and shape {shape} must be 3 positive "
                "values each"
            )
    if spec.num_training < 1:
        problems.append("dataset.json: numTraining must be at least 1 to plan")
    return problems


def plan_experiment(
    fingerprint: Fingerprint,
    spec: DatasetSpec,
    gpu_memory_gb: float | None = None,
    preset: str = "default",
    dataset_name: str = DEFAULT_DATASET_NAME,
    plans_name: str | None = None,
    target_spacing: Sequence[float] | None = None,
) -> Plans:
    """Plan 2d, 3d_fullres and, for large images, 3d_lowres + 3d_cascade_fullres (METHOD.md 3).

    `gpu_memory_gb` None uses the preset's target; like nnU-Net, a custom target keeps the preset's
    plans name unless `plans_name` is given. `target_spacing` (reader axis order) overrides the
    3d_fullres spacing rule (METHOD.md 3.2 step 5).
    """
    problems = _check_inputs(fingerprint, spec, gpu_memory_gb, preset)
    if problems:
        raise PlanningError(problems)
    chosen = PRESETS[preset]
    plans_name = plans_name or chosen.plans_name
    schemes, masks = normalization_for_channels(
        spec.channel_names, fingerprint.median_relative_size_after_cropping
    )
    context = PlanningContext(
        preset=chosen,
        gpu_memory_gb=chosen.gpu_memory_target_gb if gpu_memory_gb is None else gpu_memory_gb,
        # nnU-Net sizes the heads by the raw label dict, "ignore" included (METHOD.md 3.5 step 3).
        num_classes=len(spec.labels),
        normalization_schemes=schemes,
        use_mask_for_norm=masks,
    )

    def identifier(configuration: str) -> str:
        if chosen.shares_default_data_identifiers and configuration in ("2d", "3d_fullres"):
            return f"{DEFAULT_PLANS_NAME}_{configuration}"
        return f"{plans_name}_{configuration}"

    spacings, shapes = fingerprint.spacings, fingerprint.shapes_after_crop
    if target_spacing is None:
        fullres_spacing = fullres_target_spacing(spacings, shapes)
    else:
        fullres_spacing = np.asarray(target_spacing, dtype=np.float64)
    forward, backward = transpose_axes(fullres_spacing)
    spacing_t = fullres_spacing[forward]
    median_shape_t = median_shape_after_resampling(spacings, shapes, fullres_spacing)[forward]
    n_voxels = float(np.prod(median_shape_t, dtype=np.float64) * spec.num_training)

    configurations: dict[str, ConfigurationPlan] = {}
    plan_2d = plan_configuration(spacing_t[1:], median_shape_t[1:], identifier("2d"), n_voxels, context)
    configurations["2d"] = replace(plan_2d, batch_dice=True)
    # A 3D configuration only when the data is 3D: one slice along the first axis means 2D images.
    if median_shape_t[0] != 1:
        fullres = plan_configuration(spacing_t, median_shape_t, identifier("3d_fullres"), n_voxels, context)
        lowres = plan_lowres(fullres, median_shape_t, spec.num_training, identifier("3d_lowres"), context)
        # Batch Dice only for the fullres model that has a lowres stage (METHOD.md 3.6).
        if lowres is not None:
            configurations["3d_lowres"] = replace(lowres, next_stage="3d_cascade_fullres")
        configurations["3d_fullres"] = replace(fullres, batch_dice=lowres is not None)
        if lowres is not None:
            configurations["3d_cascade_fullres"] = replace(
                configurations["3d_fullres"], inherits_from="3d_fullres", previous_stage="3d_lowres"
            )
    return Plans(
        dataset_name=dataset_name,
        plans_name=plans_name,
        original_median_spacing_after_transp=tuple(float(s) for s in np.median(spacings, 0)[forward]),
        original_median_shape_after_transp=tuple(round(float(s)) for s in np.median(shapes, 0)[forward]),
        image_reader_writer=IMAGE_READER_WRITER,
        transpose_forward=forward,
        transpose_backward=backward,
        configurations=configurations,
        experiment_planner_used=chosen.planner_name,
        label_manager=LABEL_MANAGER,
        foreground_intensity_properties_per_channel={
            channel: stats.to_json()
            for channel, stats in fingerprint.foreground_intensity_properties_per_channel.items()
        },
    )
