"""Checks and conversions for plans documents, kept apart from the typed records in `core.plans`.

Every check appends readable lines to a shared `problems` list instead of raising, so one pass
reports everything wrong with a user-edited file (METHOD.md 3.9 gives the layout being checked).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

from core.arch_kwargs import OPS_REQUIRING_IMPORT, method_arch_kwargs

# Top-level keys of a plans file, in the order nnU-Net v2 writes them (METHOD.md 3.9).
PLANS_KEYS = (
    "dataset_name",
    "plans_name",
    "original_median_spacing_after_transp",
    "original_median_shape_after_transp",
    "image_reader_writer",
    "transpose_forward",
    "transpose_backward",
    "configurations",
    "experiment_planner_used",
    "label_manager",
    "foreground_intensity_properties_per_channel",
)

# Keys of one configuration, in nnU-Net v2's order; the last three are optional (METHOD.md 3.6/3.9).
CONFIGURATION_KEYS = (
    "data_identifier",
    "preprocessor_name",
    "batch_size",
    "patch_size",
    "median_image_size_in_voxels",
    "spacing",
    "normalization_schemes",
    "use_mask_for_norm",
    "resampling_fn_data",
    "resampling_fn_seg",
    "resampling_fn_data_kwargs",
    "resampling_fn_seg_kwargs",
    "resampling_fn_probabilities",
    "resampling_fn_probabilities_kwargs",
    "architecture",
    "batch_dice",
    "next_stage",
    "previous_stage",
    "inherits_from",
)
OPTIONAL_CONFIGURATION_KEYS = ("next_stage", "previous_stage", "inherits_from")

# Flat keys of plans written by early nnU-Net v2 releases, replaced by `architecture` on load.
FLAT_LAYOUT_KEYS = (
    "UNet_class_name",
    "UNet_base_num_features",
    "n_conv_per_stage_encoder",
    "n_conv_per_stage_decoder",
    "num_pool_per_axis",
    "pool_op_kernel_sizes",
    "conv_kernel_sizes",
    "unet_max_num_features",
)
FLAT_LAYOUT_CLASSES = {
    "PlainConvUNet": (
        "dynamic_network_architectures.architectures.unet.PlainConvUNet",
        "n_conv_per_stage",
    ),
    "ResidualEncoderUNet": (
        "dynamic_network_architectures.architectures.residual_unet.ResidualEncoderUNet",
        "n_blocks_per_stage",
    ),
}


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_list_of(value: object, check: Callable[[object], bool], length: int | None = None) -> bool:
    return (
        isinstance(value, list | tuple)
        and all(check(v) for v in value)
        and (length is None or len(value) == length)
    )


def _require(
    data: dict,
    key: str,
    check: Callable[[object], bool],
    expected: str,
    where: str,
    problems: list[str],
) -> None:
    """Report `key` when present and malformed; missing keys are reported by the callers."""
    if key in data and not check(data[key]):
        problems.append(f"{where}: {key} must be {expected}, got {data[key]!r}")


def _check_keys(
    data: dict, known: tuple[str, ...], optional: tuple[str, ...], where: str, problems: list[str]
) -> None:
    for key in known:
        if key not in data and key not in optional:
            problems.append(f"{where}: required key '{key}' is missing")
    for key in data:
        if key not in known:
            problems.append(f"{where}: unknown key '{key}'")


def check_plans_top_level(data: dict, problems: list[str]) -> None:
    """Check every top-level key; configurations are checked one by one after resolution."""
    where = "plans"
    _check_keys(data, PLANS_KEYS, (), where, problems)
    for key in ("dataset_name", "plans_name", "image_reader_writer", "experiment_planner_used"):
        _require(
            data,
            key,
            lambda v: isinstance(v, str) and v != "",
            "a non-empty string",
            where,
            problems,
        )
    _require(data, "label_manager", lambda v: isinstance(v, str), "a string", where, problems)
    positive = lambda v: _is_number(v) and v > 0  # noqa: E731
    _require(
        data,
        "original_median_spacing_after_transp",
        lambda v: _is_list_of(v, positive),
        "a list of positive numbers",
        where,
        problems,
    )
    _require(
        data,
        "original_median_shape_after_transp",
        lambda v: _is_list_of(v, positive),
        "a list of positive numbers",
        where,
        problems,
    )
    forward, backward = data.get("transpose_forward"), data.get("transpose_backward")
    for key, value in (("transpose_forward", forward), ("transpose_backward", backward)):
        if key in data and not (_is_list_of(value, _is_int) and sorted(value) == [0, 1, 2]):
            problems.append(f"{where}: {key} must be a permutation of [0, 1, 2], got {value!r}")
    if (
        _is_list_of(forward, _is_int, 3)
        and _is_list_of(backward, _is_int, 3)
        and sorted(forward) == sorted(backward) == [0, 1, 2]
        and [forward[b] for b in backward] != [0, 1, 2]
    ):
        problems.append(
            f"{where}: transpose_backward {backward} is not the inverse of transpose_forward {forward}"
        )
    configurations = data.get("configurations")
    if "configurations" in data and not (isinstance(configurations, dict) and configurations):
        problems.append(f"{where}: configurations must be a non-empty object")
    elif isinstance(configurations, dict):
        for name, value in configurations.items():
            if not isinstance(value, dict):
                problems.append(f"configuration {name!r}: must be an object, got {value!r}")
    properties = data.get("foreground_intensity_properties_per_channel")
    if "foreground_intensity_properties_per_channel" in data and not (
        isinstance(properties, dict)
        and all(
            isinstance(stats, dict) and all(_is_number(v) for v in stats.values())
            for stats in properties.values()
        )
    ):
        problems.append(
            f"{where}: foreground_intensity_properties_per_channel must map each channel to an "
            "object of numbers"
        )


def resolve_inheritance(configurations: dict, name: str, problems: list[str]) -> dict | None:
    """The configuration with its ancestors applied under it; None (and a problem) if impossible.

    Each level is the deep-copied resolved parent updated with the child's own keys (PlansManager's
    rule), so a child overrides any key of any ancestor.
    """
    chain = [name]
    while True:
        current = configurations.get(chain[-1])
        if not isinstance(current, dict):
            return None  # already reported by check_plans_top_level
        parent = current.get("inherits_from")
        if parent is None:
            break
        if not isinstance(parent, str):
            problems.append(f"configuration {chain[-1]!r}: inherits_from must be a string")
            return None
        if parent in chain:
            cycle = " -> ".join([*chain, parent])
            problems.append(f"configuration {name!r}: circular inherits_from chain {cycle}")
            return None
        if parent not in configurations:
            problems.append(
                f"configuration {chain[-1]!r}: inherits_from names {parent!r}, which is not a "
                "configuration of these plans"
            )
            return None
        chain.append(parent)
    resolved: dict = {}
    for level in reversed(chain):
        resolved.update(copy.deepcopy(configurations[level]))
    return resolved


def convert_flat_layout(document: dict, where: str, problems: list[str]) -> dict:
    """Rebuild `architecture` from the flat keys of early v2 plans, as ConfigurationManager does."""
    if "architecture" in document or "UNet_class_name" not in document:
        return document
    missing = [key for key in FLAT_LAYOUT_KEYS if key not in document and key != "num_pool_per_axis"]
    class_name = document["UNet_class_name"]
    if class_name not in FLAT_LAYOUT_CLASSES:
        problems.append(f"{where}: old-layout UNet_class_name {class_name!r} cannot be converted")
        return document
    if missing or not _is_list_of(document.get("patch_size"), _is_int):
        problems.append(f"{where}: old-layout plans lack {', '.join(missing) or 'patch_size'}")
        return document
    network_class_name, blocks_key = FLAT_LAYOUT_CLASSES[class_name]
    n_stages = len(document["n_conv_per_stage_encoder"])
    base, cap = document["UNet_base_num_features"], document["unet_max_num_features"]
    converted = {k: v for k, v in document.items() if k not in FLAT_LAYOUT_KEYS}
    converted["architecture"] = {
        "network_class_name": network_class_name,
        "arch_kwargs": method_arch_kwargs(
            features_per_stage=[min(base * 2**i, cap) for i in range(n_stages)],
            kernel_sizes=copy.deepcopy(document["conv_kernel_sizes"]),
            strides=copy.deepcopy(document["pool_op_kernel_sizes"]),
            encoder_depths_key=blocks_key,
            encoder_depths=document["n_conv_per_stage_encoder"],
            decoder_depths=document["n_conv_per_stage_decoder"],
        ),
        "_kw_requires_import": list(OPS_REQUIRING_IMPORT),
    }
    return converted


def check_configuration(document: dict, where: str, problems: list[str]) -> bool:
    """Check one resolved configuration; True when it added no problem."""
    before = len(problems)
    _check_keys(document, CONFIGURATION_KEYS, OPTIONAL_CONFIGURATION_KEYS, where, problems)
    text = lambda v: isinstance(v, str) and v != ""  # noqa: E731
    for key in (
        "data_identifier",
        "preprocessor_name",
        "resampling_fn_data",
        "resampling_fn_seg",
        "resampling_fn_probabilities",
        "previous_stage",
        "inherits_from",
    ):
        _require(document, key, text, "a non-empty string", where, problems)
    _require(
        document,
        "next_stage",
        lambda v: text(v) or _is_list_of(v, text, 1),
        "a configuration name",
        where,
        problems,
    )
    for key in (
        "resampling_fn_data_kwargs",
        "resampling_fn_seg_kwargs",
        "resampling_fn_probabilities_kwargs",
    ):
        _require(document, key, lambda v: isinstance(v, dict), "an object", where, problems)
    _require(document, "batch_size", lambda v: _is_int(v) and v >= 1, "an integer >= 1", where, problems)
    _require(document, "batch_dice", lambda v: isinstance(v, bool), "true or false", where, problems)
    patch = document.get("patch_size")
    if "patch_size" in document and not (
        _is_list_of(patch, lambda v: _is_int(v) and v >= 1) and len(patch) in (2, 3)
    ):
        problems.append(f"{where}: patch_size must be 2 or 3 positive integers, got {patch!r}")
        patch = None
    dim = len(patch) if patch is not None else None
    positive = lambda v: _is_number(v) and v > 0  # noqa: E731
    for key in ("spacing", "median_image_size_in_voxels"):
        _require(
            document,
            key,
            lambda v: _is_list_of(v, positive, dim),
            f"{dim or 'N'} positive numbers (one per patch axis)",
            where,
            problems,
        )
    schemes = document.get("normalization_schemes")
    _require(
        document,
        "normalization_schemes",
        lambda v: _is_list_of(v, text) and len(v) > 0,
        "a non-empty list of class names",
        where,
        problems,
    )
    n_channels = len(schemes) if _is_list_of(schemes, text) else None
    _require(
        document,
        "use_mask_for_norm",
        lambda v: _is_list_of(v, lambda b: isinstance(b, bool), n_channels),
        f"{n_channels or 'N'} booleans (one per channel)",
        where,
        problems,
    )
    if "architecture" in document:
        _check_architecture(document["architecture"], dim, f"{where}: architecture", problems)
    return len(problems) == before


def _check_architecture(architecture: object, dim: int | None, where: str, problems: list[str]) -> None:
    if not isinstance(architecture, dict):
        problems.append(f"{where}: must be an object")
        return
    _check_keys(
        architecture,
        ("network_class_name", "arch_kwargs", "_kw_requires_import"),
        (),
        where,
        problems,
    )
    _require(
        architecture,
        "network_class_name",
        lambda v: isinstance(v, str),
        "a string",
        where,
        problems,
    )
    _require(
        architecture,
        "_kw_requires_import",
        lambda v: _is_list_of(v, lambda s: isinstance(s, str)),
        "a list of kwarg names",
        where,
        problems,
    )
    kwargs = architecture.get("arch_kwargs")
    if not isinstance(kwargs, dict):
        if "arch_kwargs" in architecture:
            problems.append(f"{where}: arch_kwargs must be an object")
        return
    n_stages = kwargs.get("n_stages")
    if not (_is_int(n_stages) and n_stages >= 1):
        problems.append(f"{where}: arch_kwargs.n_stages must be an integer >= 1, got {n_stages!r}")
        return
    for key in ("strides", "kernel_sizes"):
        value = kwargs.get(key)
        per_stage = lambda s: _is_list_of(s, lambda v: _is_int(v) and v >= 1, dim)  # noqa: E731
        if not _is_list_of(value, per_stage, n_stages):
            problems.append(
                f"{where}: arch_kwargs.{key} must list {n_stages} stages of {dim or 'N'} positive "
                f"integers, got {value!r}"
            )
