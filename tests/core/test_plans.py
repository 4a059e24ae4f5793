"""The plans file (METHOD.md 3.9): layout, inheritance, old layouts, validation, atomic saving."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from core.planning import plan_experiment
from core.plans import (
    Plans,
    PlansError,
    UnknownConfigurationError,
    load_plans,
    save_plans,
)
from tests.planning_cases import CASES, make_fingerprint, make_spec

# METHOD.md 3.9, in nnU-Net v2's insertion order.
TOP_LEVEL_KEYS = [
    "dataset_name", "plans_name", "original_median_spacing_after_transp",
    "original_median_shape_after_transp", "image_reader_writer", "transpose_forward",
    "transpose_backward", "configurations", "experiment_planner_used", "label_manager",
    "foreground_intensity_properties_per_channel",
]  # fmt: skip
CONFIGURATION_KEYS = [
    "data_identifier", "preprocessor_name", "batch_size", "patch_size",
    "median_image_size_in_voxels", "spacing", "normalization_schemes", "use_mask_for_norm",
    "resampling_fn_data", "resampling_fn_seg", "resampling_fn_data_kwargs",
    "resampling_fn_seg_kwargs", "resampling_fn_probabilities", "resampling_fn_probabilities_kwargs",
    "architecture", "batch_dice",
]  # fmt: skip


@pytest.fixture(scope="module")
def cascade_document() -> dict:
    """A planned document with 2d, 3d_lowres, 3d_fullres and 3d_cascade_fullres."""
    case = CASES["large_ct"]
    return plan_experiment(make_fingerprint(case), make_spec(case)).to_json()


def test_layout_and_key_order(cascade_document: dict) -> None:
    assert list(cascade_document) == TOP_LEVEL_KEYS
    configurations = cascade_document["configurations"]
    assert list(configurations) == ["2d", "3d_lowres", "3d_fullres", "3d_cascade_fullres"]
    assert list(configurations["2d"]) == CONFIGURATION_KEYS
    assert list(configurations["3d_lowres"]) == [*CONFIGURATION_KEYS, "next_stage"]
    # The cascade is written as nnU-Net writes it: only the inheritance and the link.
    assert configurations["3d_cascade_fullres"] == {
        "inherits_from": "3d_fullres",
        "previous_stage": "3d_lowres",
    }
    assert list(configurations["2d"]["architecture"]) == [
        "network_class_name",
        "arch_kwargs",
        "_kw_requires_import",
    ]
    json.dumps(cascade_document)  # plain JSON types only


def test_round_trip_and_typed_access(cascade_document: dict) -> None:
    plans = Plans.from_json(cascade_document)
    assert plans.to_json() == cascade_document
    fullres = plans.configuration("3d_fullres")
    assert isinstance(fullres.spacing, tuple) and all(isinstance(s, float) for s in fullres.spacing)
    assert isinstance(fullres.normalization_schemes, tuple)
    assert fullres.resampling_fn_data_kwargs["order"] == 3
    assert plans.configuration("3d_cascade_fullres").previous_stage == "3d_lowres"
    assert plans.configurations["3d_lowres"].next_stage == "3d_cascade_fullres"


def test_user_configuration_inherits_and_serialises_as_difference(cascade_document: dict) -> None:
    # 3.9 inheritance: deep-copied parent updated with the child's keys, recursively.
    document = copy.deepcopy(cascade_document)
    document["configurations"]["3d_fullres_bs16"] = {"inherits_from": "3d_fullres", "batch_size": 16}
    document["configurations"]["3d_fullres_bs16_p64"] = {
        "inherits_from": "3d_fullres_bs16",
        "patch_size": [64, 64, 64],
    }
    plans = Plans.from_json(document)
    parent = plans.configuration("3d_fullres")
    child = plans.configuration("3d_fullres_bs16_p64")
    assert (child.batch_size, child.patch_size) == (16, (64, 64, 64))
    assert child.spacing == parent.spacing and child.architecture == parent.architecture
    assert plans.to_json()["configurations"]["3d_fullres_bs16"] == {
        "inherits_from": "3d_fullres",
        "batch_size": 16,
    }


def test_inheritance_cycle_and_missing_parent_are_reported(cascade_document: dict) -> None:
    document = copy.deepcopy(cascade_document)
    document["configurations"]["a"] = {"inherits_from": "b"}
    document["configurations"]["b"] = {"inherits_from": "a"}
    document["configurations"]["orphan"] = {"inherits_from": "nowhere"}
    with pytest.raises(PlansError) as caught:
        Plans.from_json(document)
    problems = caught.value.problems
    assert any("circular" in p and "'a'" in p for p in problems)
    assert any("'nowhere'" in p for p in problems)


def test_every_problem_is_listed(cascade_document: dict) -> None:
    document = copy.deepcopy(cascade_document)
    document["transpose_forward"] = [0, 0, 1]
    fullres = document["configurations"]["3d_fullres"]
    fullres["batch_size"] = 0
    del fullres["patch_size"]
    fullres["use_mask_for_norm"] = [True, False, True]
    fullres["batchsize"] = 2
    with pytest.raises(PlansError) as caught:
        Plans.from_json(document)
    text = str(caught.value)
    for fragment in (
        "transpose_forward",
        "batch_size must be an integer >= 1",
        "'patch_size' is missing",
        "use_mask_for_norm",
        "unknown key 'batchsize'",
    ):
        assert fragment in text
    with pytest.raises(PlansError, match="JSON object"):
        Plans.from_json([1, 2])


def test_old_flat_layout_is_converted(cascade_document: dict) -> None:
    # 3.9: early v2 plans had flat keys instead of `architecture`.
    document = copy.deepcopy(cascade_document)
    fullres = document["configurations"]["3d_fullres"]
    kwargs = fullres.pop("architecture")["arch_kwargs"]
    fullres.update(
        {
            "UNet_class_name": "PlainConvUNet",
            "UNet_base_num_features": 32,
            "n_conv_per_stage_encoder": kwargs["n_conv_per_stage"],
            "n_conv_per_stage_decoder": kwargs["n_conv_per_stage_decoder"],
            "num_pool_per_axis": [4, 5, 5],
            "pool_op_kernel_sizes": kwargs["strides"],
            "conv_kernel_sizes": kwargs["kernel_sizes"],
            "unet_max_num_features": 320,
        }
    )
    document["foreground_intensity_properties_by_modality"] = document.pop(
        "foreground_intensity_properties_per_channel"
    )
    plans = Plans.from_json(document)
    assert plans.to_json() == cascade_document


def test_unknown_configuration_name(cascade_document: dict) -> None:
    with pytest.raises(UnknownConfigurationError, match="3d_fullres"):
        Plans.from_json(cascade_document).configuration("3d_midres")


def test_next_stage_as_one_element_list(cascade_document: dict) -> None:
    document = copy.deepcopy(cascade_document)
    document["configurations"]["3d_lowres"]["next_stage"] = ["3d_cascade_fullres"]
    assert Plans.from_json(document).configuration("3d_lowres").next_stage == "3d_cascade_fullres"


def test_save_is_atomic_and_load_checks(cascade_document: dict, tmp_path: Path) -> None:
    plans = Plans.from_json(cascade_document)
    path = tmp_path / "sub" / "nnUNetPlans.json"
    save_plans(plans, path)
    assert load_plans(path) == plans
    assert [p.name for p in path.parent.iterdir()] == ["nnUNetPlans.json"]  # no temp file left
    with pytest.raises(PlansError, match="not found"):
        load_plans(tmp_path / "missing.json")
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(PlansError, match="not valid JSON"):
        load_plans(tmp_path / "broken.json")
