"""The plans file (METHOD.md 3.9): every decision the planner made, typed, in nnU-Net v2's layout.

`Plans.to_json` writes exactly nnU-Net v2's keys in its order, so a plans file from either tool
loads in the other. `Plans.from_json` reads our files and nnU-Net-written ones, resolves
`inherits_from` (the child's keys applied over a copy of its resolved parent) and converts the old
flat-key layout.
Every configuration in `Plans.configurations` is already resolved, so consumers never walk the
inheritance chain themselves; serialisation writes an inheriting configuration back as the keys in
which it differs from its parent. Validation collects every problem before raising, because this is
what checks user-edited plans in the API.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

from core._plans_validation import (
    CONFIGURATION_KEYS,
    PLANS_KEYS,
    check_configuration,
    check_plans_top_level,
    convert_flat_layout,
    resolve_inheritance,
)
from core.errors import ProblemsError
from core.files import read_json, write_json_atomically


class PlansError(ProblemsError):
    """A plans document cannot be used; `problems` lists every reason found, one line each."""


class UnknownConfigurationError(ProblemsError):
    """A configuration name that the plans do not define."""


def _to_json_value(value: object) -> object:
    """Tuples become lists and dicts are copied, so the returned document shares nothing with us."""
    if isinstance(value, tuple | list):
        return [_to_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _to_json_value(v) for k, v in value.items()}
    return value


def _to_tuple(value: object) -> object:
    if isinstance(value, list | tuple):
        return tuple(_to_tuple(v) for v in value)
    return value


@dataclass(frozen=True)
class ArchitecturePlan:
    """The network: a class name and its constructor kwargs, as dynamic_network_architectures takes.

    `arch_kwargs` keeps the JSON values (lists) as read; `kw_requires_import` names the kwargs whose
    string values are dotted import paths (`conv_op`, `norm_op`, `dropout_op`, `nonlin`).
    """

    network_class_name: str
    arch_kwargs: dict
    kw_requires_import: tuple[str, ...]

    @property
    def n_stages(self) -> int:
        return int(self.arch_kwargs["n_stages"])

    @property
    def strides(self) -> tuple[tuple[int, ...], ...]:
        return _to_tuple(self.arch_kwargs["strides"])

    @property
    def kernel_sizes(self) -> tuple[tuple[int, ...], ...]:
        return _to_tuple(self.arch_kwargs["kernel_sizes"])

    @property
    def features_per_stage(self) -> tuple[int, ...]:
        return _to_tuple(self.arch_kwargs["features_per_stage"])

    def to_json(self) -> dict:
        return {
            "network_class_name": self.network_class_name,
            "arch_kwargs": _to_json_value(self.arch_kwargs),
            "_kw_requires_import": list(self.kw_requires_import),
        }

    @classmethod
    def from_json(cls, data: dict) -> ArchitecturePlan:
        return cls(
            network_class_name=str(data["network_class_name"]),
            arch_kwargs=copy.deepcopy(data["arch_kwargs"]),
            kw_requires_import=tuple(data["_kw_requires_import"]),
        )


@dataclass(frozen=True)
class ConfigurationPlan:
    """A configuration (2d, 3d_fullres, ...), resolved; spatial values in transposed order."""

    data_identifier: str
    preprocessor_name: str
    batch_size: int
    patch_size: tuple[int, ...]
    median_image_size_in_voxels: tuple[float, ...]
    spacing: tuple[float, ...]
    normalization_schemes: tuple[str, ...]
    use_mask_for_norm: tuple[bool, ...]
    resampling_fn_data: str
    resampling_fn_seg: str
    resampling_fn_data_kwargs: dict
    resampling_fn_seg_kwargs: dict
    resampling_fn_probabilities: str
    resampling_fn_probabilities_kwargs: dict
    architecture: ArchitecturePlan
    batch_dice: bool
    next_stage: str | None = None
    previous_stage: str | None = None
    inherits_from: str | None = None

    def to_json(self) -> dict:
        """The full (resolved) document, in nnU-Net v2's key order; optional keys only when set."""
        document: dict = {}
        for key in CONFIGURATION_KEYS:
            value = getattr(self, key)
            if key == "architecture":
                document[key] = value.to_json()
            elif value is not None or key not in ("next_stage", "previous_stage", "inherits_from"):
                document[key] = _to_json_value(value)
        return document

    @classmethod
    def from_json(cls, data: dict) -> ConfigurationPlan:
        """Build from a resolved document that `Plans.from_json` has checked; this only converts."""
        return cls(
            data_identifier=str(data["data_identifier"]),
            preprocessor_name=str(data["preprocessor_name"]),
            batch_size=int(data["batch_size"]),
            patch_size=tuple(int(v) for v in data["patch_size"]),
            median_image_size_in_voxels=tuple(float(v) for v in data["median_image_size_in_voxels"]),
            spacing=tuple(float(v) for v in data["spacing"]),
            normalization_schemes=tuple(data["normalization_schemes"]),
            use_mask_for_norm=tuple(bool(v) for v in data["use_mask_for_norm"]),
            resampling_fn_data=str(data["resampling_fn_data"]),
            resampling_fn_seg=str(data["resampling_fn_seg"]),
            resampling_fn_data_kwargs=dict(data["resampling_fn_data_kwargs"]),
            resampling_fn_seg_kwargs=dict(data["resampling_fn_seg_kwargs"]),
            resampling_fn_probabilities=str(data["resampling_fn_probabilities"]),
            resampling_fn_probabilities_kwargs=dict(data["resampling_fn_probabilities_kwargs"]),
            architecture=ArchitecturePlan.from_json(data["architecture"]),
            batch_dice=bool(data["batch_dice"]),
            next_stage=_single_stage(data.get("next_stage")),
            previous_stage=_single_stage(data.get("previous_stage")),
            inherits_from=_single_stage(data.get("inherits_from")),
        )


def _single_stage(value: object) -> str | None:
    """nnU-Net allows `next_stage` as a one-element list; the checker refuses longer lists."""
    if isinstance(value, list):
        return str(value[0])
    return None if value is None else str(value)


@dataclass(frozen=True)
class Plans:
    """A whole plans file. `transpose_forward` maps reader axes to network axes (METHOD.md 3.3)."""

    dataset_name: str
    plans_name: str
    original_median_spacing_after_transp: tuple[float, ...]
    original_median_shape_after_transp: tuple[int, ...]
    image_reader_writer: str
    transpose_forward: list[int]
    transpose_backward: list[int]
    configurations: dict[str, ConfigurationPlan]
    experiment_planner_used: str
    label_manager: str
    foreground_intensity_properties_per_channel: dict[str, dict[str, float]]

    def configuration(self, name: str) -> ConfigurationPlan:
        """The resolved configuration `name`."""
        if name not in self.configurations:
            raise UnknownConfigurationError(
                f"configuration {name!r} is not in plans {self.plans_name!r}; "
                f"available: {', '.join(self.configurations)}"
            )
        return self.configurations[name]

    def to_json(self) -> dict:
        """nnU-Net v2's document; an inheriting configuration keeps what differs from its parent."""
        configurations: dict = {}
        for name, configuration in self.configurations.items():
            full = configuration.to_json()
            parent = configuration.inherits_from
            if parent is None or parent not in self.configurations:
                configurations[name] = full
                continue
            parent_document = self.configurations[parent].to_json()
            child: dict = {"inherits_from": parent}
            for key, value in full.items():
                if key != "inherits_from" and parent_document.get(key) != value:
                    child[key] = value
            configurations[name] = child
        document: dict = {}
        for key in PLANS_KEYS:
            value = configurations if key == "configurations" else getattr(self, key)
            document[key] = _to_json_value(value)
        return document

    @classmethod
    def from_json(cls, data: object) -> Plans:
        """Check and read a plans document; raises `PlansError` listing every problem found."""
        problems: list[str] = []
        if not isinstance(data, dict):
            raise PlansError(["plans: must be a JSON object"])
        data = dict(data)
        if "foreground_intensity_properties_per_channel" not in data:
            # Plans written before the rename carry the same statistics under the old key.
            legacy = data.pop("foreground_intensity_properties_by_modality", None)
            if legacy is not None:
                data["foreground_intensity_properties_per_channel"] = legacy
        check_plans_top_level(data, problems)
        raw_configurations = data.get("configurations")
        resolved: dict[str, ConfigurationPlan] = {}
        if isinstance(raw_configurations, dict):
            for name in raw_configurations:
                document = resolve_inheritance(raw_configurations, name, problems)
                if document is None:
                    continue
                document = convert_flat_layout(document, f"configuration {name!r}", problems)
                if check_configuration(document, f"configuration {name!r}", problems):
                    resolved[name] = ConfigurationPlan.from_json(document)
        if problems:
            raise PlansError(problems)
        return cls(
            dataset_name=str(data["dataset_name"]),
            plans_name=str(data["plans_name"]),
            original_median_spacing_after_transp=tuple(
                float(v) for v in data["original_median_spacing_after_transp"]
            ),
            original_median_shape_after_transp=tuple(
                round(v) for v in data["original_median_shape_after_transp"]
            ),
            image_reader_writer=str(data["image_reader_writer"]),
            transpose_forward=[int(v) for v in data["transpose_forward"]],
            transpose_backward=[int(v) for v in data["transpose_backward"]],
            configurations=resolved,
            experiment_planner_used=str(data["experiment_planner_used"]),
            label_manager=str(data["label_manager"]),
            foreground_intensity_properties_per_channel={
                str(channel): {str(k): float(v) for k, v in stats.items()}
                for channel, stats in data["foreground_intensity_properties_per_channel"].items()
            },
        )


def save_plans(plans: Plans, path: Path) -> None:
    """Write `plans` as JSON atomically: readers never see half a file."""
    write_json_atomically(path, plans.to_json())


def load_plans(path: Path) -> Plans:
    """Read and check a plans file; `PlansError` for a missing, unreadable or invalid file."""
    return Plans.from_json(read_json(path, PlansError, "plans file"))
