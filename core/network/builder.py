"""From a plans architecture (class name + arch_kwargs) to a checked `UNetLayout` and a network.

The arch_kwargs are those of nnU-Net v2's network constructors (METHOD.md 3.9, 6), read from JSON and
possibly edited by hand, so everything is checked before anything is built, and every problem found
is reported at once. Unknown keys are refused rather than ignored: a key we do not implement would
silently give a different network than nnU-Net v2 builds from the same plans.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

from core.errors import ProblemsError
from core.network.initialization import initialize_weights
from core.network.ops import CONV_OPS, DROPOUT_OPS, NONLINEARITIES, NORM_OPS, LayerRecipe
from core.network.plain_unet import build_plain_conv_unet
from core.network.residual_unet import build_residual_encoder_unet
from core.network.unet import UNet, UNetLayout
from core.plans import ArchitecturePlan

_T = TypeVar("_T")

PLAIN_CONV_UNET = "PlainConvUNet"
RESIDUAL_ENCODER_UNET = "ResidualEncoderUNet"

_Builder = Callable[[UNetLayout, int, int, bool], UNet]
# Class name → (builder, the kwarg that counts encoder convs or blocks per stage).
ARCHITECTURES: dict[str, tuple[_Builder, str]] = {
    PLAIN_CONV_UNET: (build_plain_conv_unet, "n_conv_per_stage"),
    RESIDUAL_ENCODER_UNET: (build_residual_encoder_unet, "n_blocks_per_stage"),
}
_REQUIRED_KEYS = (
    "n_stages",
    "features_per_stage",
    "conv_op",
    "kernel_sizes",
    "strides",
    "n_conv_per_stage_decoder",
)
# Optional keys and the reference constructors' defaults. `deep_supervision` is accepted because
# nnU-Net v2 lets the trainer's choice override it, as `build_network`'s argument does here.
_OPTIONAL_KEYS = (
    "conv_bias",
    "norm_op",
    "norm_op_kwargs",
    "dropout_op",
    "dropout_op_kwargs",
    "nonlin",
    "nonlin_kwargs",
    "deep_supervision",
)
_CLASS_OPTIONAL_KEYS = {PLAIN_CONV_UNET: ("nonlin_first",), RESIDUAL_ENCODER_UNET: ("stem_channels",)}


class ArchitectureError(ProblemsError):
    """A plans architecture cannot be built; `problems` lists every reason found, one line each."""


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive_int(value: object, name: str, problems: list[str]) -> int | None:
    if not _is_int(value) or value < 1:
        problems.append(f"arch_kwargs.{name}: expected a positive integer, got {value!r}")
        return None
    return int(value)


def _per_stage(value: object, name: str, count: int, problems: list[str]) -> list[object] | None:
    """A list with one entry per stage; a single integer stands for all of them, as in nnU-Net v2."""
    if _is_int(value):
        return [value] * count
    if not isinstance(value, list | tuple) or len(value) != count:
        problems.append(f"arch_kwargs.{name}: expected {count} entries, got {value!r}")
        return None
    return list(value)


def _positive_ints(value: object, name: str, count: int, problems: list[str]) -> tuple[int, ...] | None:
    entries = _per_stage(value, name, count, problems)
    if entries is None:
        return None
    if not all(_is_int(v) and v >= 1 for v in entries):
        problems.append(f"arch_kwargs.{name}: expected positive integers, got {value!r}")
        return None
    return tuple(int(v) for v in entries)


def _vectors(
    value: object, name: str, count: int, dim: int, problems: list[str]
) -> tuple[tuple[int, ...], ...] | None:
    """Per-stage spatial vectors (kernel sizes, strides); an integer entry stands for every axis."""
    entries = _per_stage(value, name, count, problems)
    if entries is None:
        return None
    vectors = []
    for entry in entries:
        vector = [entry] * dim if _is_int(entry) else entry
        if not isinstance(vector, list | tuple) or len(vector) != dim:
            problems.append(f"arch_kwargs.{name}: expected {dim} values per stage, got {entry!r}")
            return None
        if not all(_is_int(v) and v >= 1 for v in vector):
            problems.append(f"arch_kwargs.{name}: expected positive integers, got {entry!r}")
            return None
        vectors.append(tuple(int(v) for v in vector))
    return tuple(vectors)


def _layer(
    arch_kwargs: Mapping[str, object], key: str, registry: Mapping[str, _T], problems: list[str]
) -> _T | None:
    """Look up a layer class by name; None (or an absent key) means the layer is left out."""
    name = arch_kwargs.get(key)
    if name is None:
        return None
    if not isinstance(name, str) or name not in registry:
        known = ", ".join(sorted(registry))
        problems.append(f"arch_kwargs.{key}: unknown or unsupported class {name!r}; known: {known}")
        return None
    return registry[name]


def _layer_kwargs(arch_kwargs: Mapping[str, object], key: str, problems: list[str]) -> dict[str, object]:
    value = arch_kwargs.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        problems.append(f"arch_kwargs.{key}: expected an object of keyword arguments, got {value!r}")
        return {}
    return dict(value)


def _flag(arch_kwargs: Mapping[str, object], key: str, problems: list[str]) -> bool:
    value = arch_kwargs.get(key, False)
    if not isinstance(value, bool):
        problems.append(f"arch_kwargs.{key}: expected true or false, got {value!r}")
        return False
    return value


def _class_name(network_class_name: str) -> str:
    """The class part of a dotted name, as nnU-Net v2 falls back to when its import path moved."""
    return network_class_name.rsplit(".", 1)[-1]


def _recipe(kwargs: Mapping[str, object], problems: list[str]) -> LayerRecipe | None:
    """The layer recipe; every entry is checked, even when the conv class is already unknown."""
    family = _layer(kwargs, "conv_op", CONV_OPS, problems)
    if kwargs.get("conv_op") is None:
        problems.append("arch_kwargs.conv_op: a convolution class is required, got None")
    norm = _layer(kwargs, "norm_op", NORM_OPS, problems)
    norm_kwargs = _layer_kwargs(kwargs, "norm_op_kwargs", problems)
    dropout = _layer(kwargs, "dropout_op", DROPOUT_OPS, problems)
    dropout_kwargs = _layer_kwargs(kwargs, "dropout_op_kwargs", problems)
    nonlinearity = _layer(kwargs, "nonlin", NONLINEARITIES, problems)
    nonlinearity_kwargs = _layer_kwargs(kwargs, "nonlin_kwargs", problems)
    conv_bias = _flag(kwargs, "conv_bias", problems)
    is_nonlin_first = _flag(kwargs, "nonlin_first", problems)
    if family is None:
        return None
    return LayerRecipe(
        family,
        conv_bias,
        norm,
        norm_kwargs,
        dropout,
        dropout_kwargs,
        nonlinearity,
        nonlinearity_kwargs,
        is_nonlin_first,
    )


def parse_layout(architecture: ArchitecturePlan) -> UNetLayout:
    """Check a plans architecture and resolve it; raises `ArchitectureError` listing every problem."""
    class_name = _class_name(architecture.network_class_name)
    if class_name not in ARCHITECTURES:
        raise ArchitectureError(
            [
                f"network_class_name: unknown or unsupported network {architecture.network_class_name!r}; "
                f"known: {', '.join(ARCHITECTURES)}"
            ]
        )
    kwargs = architecture.arch_kwargs
    depth_key = ARCHITECTURES[class_name][1]
    allowed = {*_REQUIRED_KEYS, *_OPTIONAL_KEYS, *_CLASS_OPTIONAL_KEYS[class_name], depth_key}
    problems = [
        f"arch_kwargs: {key!r} is not supported for {class_name}" for key in kwargs if key not in allowed
    ]
    problems += [
        f"arch_kwargs: {key!r} is missing" for key in (*_REQUIRED_KEYS, depth_key) if key not in kwargs
    ]
    if problems:
        raise ArchitectureError(problems)

    recipe = _recipe(kwargs, problems)
    n_stages = _positive_int(kwargs["n_stages"], "n_stages", problems)
    if n_stages is not None and n_stages < 2:
        problems.append(f"arch_kwargs.n_stages: a U-Net needs at least 2 stages, got {n_stages}")
        n_stages = None
    if n_stages is None or recipe is None:
        raise ArchitectureError(problems)

    dim = recipe.family.dim
    stem_channels = kwargs.get("stem_channels")
    layout_parts = (
        _positive_ints(kwargs["features_per_stage"], "features_per_stage", n_stages, problems),
        _vectors(kwargs["kernel_sizes"], "kernel_sizes", n_stages, dim, problems),
        _vectors(kwargs["strides"], "strides", n_stages, dim, problems),
        _positive_ints(kwargs[depth_key], depth_key, n_stages, problems),
        _positive_ints(
            kwargs["n_conv_per_stage_decoder"], "n_conv_per_stage_decoder", n_stages - 1, problems
        ),
        None if stem_channels is None else _positive_int(stem_channels, "stem_channels", problems),
    )
    if problems:
        raise ArchitectureError(problems)
    features, kernel_sizes, strides, encoder_depths, decoder_depths, stem = layout_parts
    return UNetLayout(
        features_per_stage=features,
        kernel_sizes=kernel_sizes,
        strides=strides,
        encoder_depths=encoder_depths,
        decoder_depths=decoder_depths,
        recipe=recipe,
        stem_channels=stem,
    )


def build_network_from_architecture(
    architecture: ArchitecturePlan,
    num_input_channels: int,
    num_output_channels: int,
    deep_supervision: bool = True,
) -> UNet:
    """The network a plans architecture describes, with the method's initial weights."""
    problems: list[str] = []
    for name, value in (
        ("num_input_channels", num_input_channels),
        ("num_output_channels", num_output_channels),
    ):
        if not _is_int(value) or value < 1:
            problems.append(f"{name}: expected a positive integer, got {value!r}")
    if problems:
        raise ArchitectureError(problems)
    layout = parse_layout(architecture)
    build = ARCHITECTURES[_class_name(architecture.network_class_name)][0]
    network = build(layout, num_input_channels, num_output_channels, deep_supervision)
    initialize_weights(network)
    return network
