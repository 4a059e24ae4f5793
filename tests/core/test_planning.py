"""Experiment planning, rule by rule (METHOD.md 3), on generated fingerprints (tests/planning_cases).

Each expected value is re-derived here from the rule named in the comment, with plain Python or
numpy, not by calling the planner's own helpers.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import replace

import numpy as np
import pytest

from core import constants as c
from core.network_size import conv_feature_map_size
from core.planner_presets import PRESETS
from core.planning import PlanningError, plan_experiment
from core.plans import ConfigurationPlan, Plans
from tests.planning_cases import CASES, make_fingerprint, make_spec


def plan(case: str, preset: str = "default", gpu_memory_gb: float | None = None) -> Plans:
    return plan_experiment(make_fingerprint(CASES[case]), make_spec(CASES[case]), gpu_memory_gb, preset)


def expected_target_spacing(case: str) -> list[float]:
    """3.2: per-axis median; a coarse axis with few slices takes its 10th percentile instead."""
    fingerprint = make_fingerprint(CASES[case])
    columns = list(zip(*fingerprint.spacings, strict=True))
    sizes = list(zip(*fingerprint.shapes_after_crop, strict=True))
    target = [statistics.median(column) for column in columns]
    median_size = [statistics.median(column) for column in sizes]
    worst = target.index(max(target))
    others = [a for a in range(3) if a != worst]
    if target[worst] > 3 * max(target[a] for a in others) and median_size[worst] * 3 < min(
        median_size[a] for a in others
    ):
        low = float(np.percentile(columns[worst], 10))
        target[worst] = low if low >= max(target[a] for a in others) else low + 1e-5
    return target


@pytest.mark.parametrize("case", ["mr_isotropic", "ct_anisotropic", "thick_slice_mr"])
def test_target_spacing_rule(case: str) -> None:
    plans = plan(case)
    target = expected_target_spacing(case)
    forward = plans.transpose_forward
    assert plans.configuration("3d_fullres").spacing == pytest.approx([target[a] for a in forward])


def test_thick_slices_use_the_tenth_percentile() -> None:
    # 3.2: thick_slice_mr has 8 mm slices (> 3 x 1.25) and ~18 slices (x3 < ~224): the rule applies,
    # so the target is below the median slice spacing.
    spacings = [s[0] for s in make_fingerprint(CASES["thick_slice_mr"]).spacings]
    z_spacing = plan("thick_slice_mr").configuration("3d_fullres").spacing[0]
    assert z_spacing == pytest.approx(float(np.percentile(spacings, 10)))
    assert z_spacing < statistics.median(spacings)


def test_transposition_puts_the_coarsest_axis_first() -> None:
    # 3.3: coarse_last_axis has 2.5 mm along axis 2 -> forward [2, 0, 1], backward its inverse.
    plans = plan("coarse_last_axis")
    assert plans.transpose_forward == [2, 0, 1]
    assert plans.transpose_backward == [1, 2, 0]
    assert plans.configuration("2d").spacing == pytest.approx(plans.configuration("3d_fullres").spacing[1:])


@pytest.mark.parametrize("case", ["mr_isotropic", "ct_anisotropic", "coarse_last_axis"])
def test_median_shape_after_resampling(case: str) -> None:
    # 3.4: median over cases of round(spacing / target * shape), transposed.
    fingerprint = make_fingerprint(CASES[case])
    target = expected_target_spacing(case)
    plans = plan(case)
    resampled = [
        [round(s / t * n) for s, t, n in zip(spacing, target, shape, strict=True)]
        for spacing, shape in zip(fingerprint.spacings, fingerprint.shapes_after_crop, strict=True)
    ]
    median = [statistics.median(column) for column in zip(*resampled, strict=True)]
    expected = [median[a] for a in plans.transpose_forward]
    assert plans.configuration("3d_fullres").median_image_size_in_voxels == pytest.approx(expected)
    assert plans.configuration("2d").median_image_size_in_voxels == pytest.approx(expected[1:])


def test_single_slice_images_get_only_2d() -> None:
    # 3.6: a transposed median shape with first axis 1 means 2D data: no 3D configurations.
    plans = plan("single_slice_2d")
    assert list(plans.configurations) == ["2d"]
    assert plans.configuration("2d").batch_dice is True


def test_large_images_get_lowres_and_cascade() -> None:
    # 3.6: large_ct's fullres patch covers < 25% of the median image.
    plans = plan("large_ct")
    assert list(plans.configurations) == ["2d", "3d_lowres", "3d_fullres", "3d_cascade_fullres"]
    fullres, lowres = plans.configuration("3d_fullres"), plans.configuration("3d_lowres")
    cascade = plans.configuration("3d_cascade_fullres")
    assert math.prod(fullres.patch_size) / math.prod(fullres.median_image_size_in_voxels) < 0.25
    # The loop stops once the lowres patch covers >= 25% of the lowres median image.
    assert math.prod(lowres.patch_size) / math.prod(lowres.median_image_size_in_voxels) >= 0.25
    # Kept only if lowres images have at most half the voxels of fullres ones (the rule uses the
    # unrounded lowres shape; the plans record the rounded one, hence the small tolerance).
    ratio = math.prod(fullres.median_image_size_in_voxels) / math.prod(lowres.median_image_size_in_voxels)
    assert ratio >= 2 * 0.95
    # Each axis grew by a whole number of 1.03 steps.
    for low, full in zip(lowres.spacing, fullres.spacing, strict=True):
        steps = math.log(low / full) / math.log(1.03)
        assert steps == pytest.approx(round(steps), abs=1e-6) and steps >= 1
    assert lowres.next_stage == "3d_cascade_fullres"
    assert cascade.previous_stage == "3d_lowres" and cascade.inherits_from == "3d_fullres"
    assert replace(cascade, previous_stage=None, inherits_from=None) == fullres
    # batch Dice: fullres True when a lowres stage exists, lowres False, 2d True.
    assert (fullres.batch_dice, lowres.batch_dice, plans.configuration("2d").batch_dice) == (
        True,
        False,
        True,
    )


def test_lowres_dropped_when_not_two_times_smaller() -> None:
    # 3.6 drop rule: the loop ran (patch < 25% of the median) but lowres images ended < 2x smaller.
    plans = plan("lowres_dropped")
    fullres = plans.configuration("3d_fullres")
    assert math.prod(fullres.patch_size) / math.prod(fullres.median_image_size_in_voxels) < 0.25
    assert list(plans.configurations) == ["2d", "3d_fullres"]
    assert fullres.batch_dice is False


def estimate(configuration: ConfigurationPlan, num_classes: int) -> int:
    architecture = configuration.architecture
    return conv_feature_map_size(
        architecture.network_class_name,
        architecture.arch_kwargs,
        num_classes,
        configuration.patch_size,
    )


@pytest.mark.parametrize(
    ("case", "preset", "gpu"),
    [
        ("mr_isotropic", "default", None),
        ("ct_anisotropic", "default", None),
        ("large_ct", "default", 4.0),
        ("ct_anisotropic", "ResEncM", None),
        ("large_ct", "ResEncL", None),
    ],
)
def test_patch_fits_memory_and_batch_size_rule(case: str, preset: str, gpu: float | None) -> None:
    plans = plan(case, preset, gpu)
    chosen = PRESETS[preset]
    num_classes = CASES[case].num_labels
    num_training = CASES[case].num_cases
    fullres_voxels = math.prod(plans.configuration("3d_fullres").median_image_size_in_voxels)
    for name in ("2d", "3d_fullres"):
        configuration = plans.configuration(name)
        dim = len(configuration.patch_size)
        reference_bs = 2 if dim == 3 else 12
        reference = (chosen.reference_value_3d if dim == 3 else chosen.reference_value_2d) * (
            (gpu or chosen.gpu_memory_target_gb) / chosen.reference_gb
        )
        value = estimate(configuration, num_classes)
        # 3.5 step 4: the shrink loop stopped, so the stop condition holds.
        scaled = value / reference_bs * 2 if preset == "default" else value
        assert scaled <= reference
        # 3.5 step 2: the patch is divisible by 2 ** (pools per axis).
        for axis, size in enumerate(configuration.patch_size):
            pools = sum(stride[axis] == 2 for stride in configuration.architecture.strides)
            assert size % 2**pools == 0
        # 3.5 step 5: memory-derived batch size, capped by the dataset fraction, at least 2.
        cap = round(
            fullres_voxels * num_training * chosen.max_dataset_covered
            / math.prod(configuration.patch_size)
        )  # fmt: skip
        expected = max(min(round(reference / value * reference_bs), cap), 2)
        assert configuration.batch_size == expected


def test_dataset_cap_applies_to_default_but_not_resenc() -> None:
    # 3.1: 4 small cases -> 5% of the voxels is far less than one patch: default gets the minimum 2;
    # ResEnc M removes the cap, so the memory-derived batch size stands.
    assert plan("tiny_dataset").configuration("3d_fullres").batch_size == c.PLANNING_MIN_BATCH_SIZE
    assert plan("tiny_dataset", "ResEncM").configuration("3d_fullres").batch_size > 2


def test_initial_patch_clipped_to_median_when_no_shrinking_needed() -> None:
    # 3.5 step 1: tiny_dataset's median image is far below 256^3, so the patch is the median shape
    # (clipped), rounded up to the pooling divisor.
    configuration = plan("tiny_dataset").configuration("3d_fullres")
    divisors = [2 ** sum(s[a] == 2 for s in configuration.architecture.strides) for a in range(3)]
    expected = [
        math.ceil(m / d) * d for m, d in zip(configuration.median_image_size_in_voxels, divisors, strict=True)
    ]
    assert list(configuration.patch_size) == expected


def test_more_gpu_memory_gives_larger_patches_and_batches() -> None:
    # 3.1: the reference value scales with target / reference GB.
    small, large = (plan("ct_anisotropic", gpu_memory_gb=gb) for gb in (4.0, 24.0))
    for name in ("2d", "3d_fullres"):
        a, b = small.configuration(name), large.configuration(name)
        assert math.prod(a.patch_size) <= math.prod(b.patch_size)
        assert math.prod(a.patch_size) * a.batch_size < math.prod(b.patch_size) * b.batch_size


def test_normalization_and_mask_rules() -> None:
    # 4.2: CT -> CTNormalization, anything unknown -> ZScore; 3.7: crop ratio 0.6 < 0.75 -> mask
    # only for ZScore channels.
    configuration = plan("brain_mr_cropped").configuration("3d_fullres")
    assert configuration.normalization_schemes == (
        "ZScoreNormalization",
        "ZScoreNormalization",
        "CTNormalization",
    )
    assert configuration.use_mask_for_norm == (True, True, False)
    # crop ratio 1.0 -> no mask anywhere
    assert plan("mr_isotropic").configuration("2d").use_mask_for_norm == (False, False)
    # names match case-insensitively
    assert plan("large_2d_field").configuration("2d").normalization_schemes == ("RGBTo01Normalization",)
    assert plan("mild_anisotropy").configuration("2d").normalization_schemes == ("NoNormalization",)


def test_resampling_settings() -> None:
    # 3.8: data order 3, seg order 1, probabilities order 1, all with order_z 0.
    configuration = plan("ct_anisotropic").configuration("3d_fullres")
    assert configuration.resampling_fn_data == "resample_data_or_seg_to_shape"
    assert configuration.resampling_fn_data_kwargs == {
        "is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None,
    }  # fmt: skip
    assert configuration.resampling_fn_seg_kwargs["order"] == 1
    assert configuration.resampling_fn_seg_kwargs["is_seg"] is True
    assert configuration.resampling_fn_probabilities_kwargs["order"] == 1


@pytest.mark.parametrize("preset", list(PRESETS))
def test_architecture_kwargs(preset: str) -> None:
    # 3.1 / 3.9: features 32 doubling to 320 (3D) / 512 (2D); blocks per stage per preset.
    plans = plan("ct_anisotropic", preset)
    for name, cap in (("2d", 512), ("3d_fullres", 320)):
        architecture = plans.configuration(name).architecture
        n = architecture.n_stages
        dim = len(plans.configuration(name).patch_size)
        assert list(architecture.features_per_stage) == [min(cap, 32 * 2**i) for i in range(n)]
        assert architecture.arch_kwargs["conv_op"] == f"torch.nn.modules.conv.Conv{dim}d"
        if preset == "default":
            assert architecture.network_class_name.endswith(".PlainConvUNet")
            assert architecture.arch_kwargs["n_conv_per_stage"] == [2] * n
            assert architecture.arch_kwargs["n_conv_per_stage_decoder"] == [2] * (n - 1)
        else:
            assert architecture.network_class_name.endswith(".ResidualEncoderUNet")
            blocks = [1, 3, 4, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6][:n]
            assert architecture.arch_kwargs["n_blocks_per_stage"] == blocks
            assert architecture.arch_kwargs["n_conv_per_stage_decoder"] == [1] * (n - 1)


@pytest.mark.parametrize(
    ("preset", "plans_name", "planner"),
    [
        ("default", "nnUNetPlans", "ExperimentPlanner"),
        ("ResEncM", "nnUNetResEncUNetMPlans", "nnUNetPlannerResEncM"),
        ("ResEncL", "nnUNetResEncUNetLPlans", "nnUNetPlannerResEncL"),
        ("ResEncXL", "nnUNetResEncUNetXLPlans", "nnUNetPlannerResEncXL"),
    ],
)
def test_names_and_data_identifiers(preset: str, plans_name: str, planner: str) -> None:
    # 3.6: identifiers are <plans>_<config>, except ResEnc 2d/3d_fullres share nnUNetPlans data.
    plans = plan("large_ct", preset)
    assert (plans.plans_name, plans.experiment_planner_used) == (plans_name, planner)
    shared = "nnUNetPlans" if preset != "default" else plans_name
    assert plans.configuration("2d").data_identifier == f"{shared}_2d"
    assert plans.configuration("3d_fullres").data_identifier == f"{shared}_3d_fullres"
    assert plans.configuration("3d_lowres").data_identifier == f"{plans_name}_3d_lowres"


def test_default_memory_targets() -> None:
    # 3.1: 8 GB (default, M), 24 GB (L), 40 GB (XL); a custom target keeps the plans name.
    assert [PRESETS[p].gpu_memory_target_gb for p in PRESETS] == [8, 8, 24, 40]
    assert plan("mr_isotropic") == plan("mr_isotropic", gpu_memory_gb=8.0)
    assert plan("mr_isotropic", gpu_memory_gb=11.0).plans_name == "nnUNetPlans"
    custom = plan_experiment(
        make_fingerprint(CASES["mr_isotropic"]),
        make_spec(CASES["mr_isotropic"]),
        gpu_memory_gb=11.0,
        plans_name="nnUNetPlans_11GB",
    )
    assert custom.configuration("3d_fullres").data_identifier == "nnUNetPlans_11GB_3d_fullres"


def test_plans_top_level() -> None:
    fingerprint = make_fingerprint(CASES["coarse_last_axis"])
    plans = plan("coarse_last_axis")
    medians = [statistics.median(col) for col in zip(*fingerprint.spacings, strict=True)]
    assert plans.original_median_spacing_after_transp == pytest.approx(
        [medians[a] for a in plans.transpose_forward]
    )
    assert plans.image_reader_writer == "SimpleITKIO"
    assert plans.label_manager == "LabelManager"
    assert plans.foreground_intensity_properties_per_channel["0"]["percentile_99_5"] == 300.0
    assert Plans.from_json(plans.to_json()) == plans


def test_target_spacing_override() -> None:
    # 3.2 step 5: an explicit target spacing replaces the rule.
    case = CASES["mr_isotropic"]
    plans = plan_experiment(make_fingerprint(case), make_spec(case), target_spacing=(2.0, 1.5, 1.5))
    assert plans.configuration("3d_fullres").spacing == (2.0, 1.5, 1.5)


def test_invalid_inputs_list_every_problem() -> None:
    case = CASES["mr_isotropic"]
    fingerprint = replace(make_fingerprint(case), spacings=[(0.0, 1.0, 1.0)], shapes_after_crop=[])
    with pytest.raises(PlanningError) as caught:
        plan_experiment(fingerprint, make_spec(case), gpu_memory_gb=-1, preset="ResEncXXL")
    problems = "\n".join(caught.value.problems)
    for expected in ("ResEncXXL", "gpu_memory_gb", "one spacing and one shape"):
        assert expected in problems


def test_impossible_memory_target_is_an_error() -> None:
    with pytest.raises(PlanningError, match="larger GPU memory target"):
        plan("mr_isotropic", gpu_memory_gb=1e-6)
