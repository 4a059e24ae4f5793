"""The nnU-Net v2 raw dataset format: `dataset.json`, `imagesTr/`, `labelsTr/`, `imagesTs/`.

A case is one file per channel, `CASE_0000<ending>`, `CASE_0001<ending>`, ..., and one label file
`CASE<ending>`. `dataset.json` names the channels (the name picks the normalization), the labels
(background 0, optional regions and ignore label), the number of training cases and the file ending.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from core.errors import ProblemsError
from core.files import read_json


class DatasetError(ProblemsError):
    """A dataset cannot be used; `problems` lists every reason found, one readable line each."""


LabelValue = int | tuple[int, ...]


@dataclass(frozen=True)
class DatasetSpec:
    """What `dataset.json` declares, checked and typed; `raw` keeps the file as read, to copy it on."""

    raw: dict
    channel_names: dict[str, str]
    labels: dict[str, LabelValue]
    num_training: int
    file_ending: str
    regions_class_order: tuple[int, ...] | None
    ignore_label: int | None

    @property
    def num_channels(self) -> int:
        return len(self.channel_names)

    @property
    def has_regions(self) -> bool:
        return any(isinstance(v, tuple) and len(v) > 1 for v in self.labels.values())

    @property
    def all_labels(self) -> list[int]:
        """Every integer label value, background included, ignore label excluded, sorted."""
        values: set[int] = set()
        for name, value in self.labels.items():
            if name == "ignore":
                continue
            values.update(value if isinstance(value, tuple) else (value,))
        return sorted(values)

    @property
    def allowed_label_values(self) -> set[int]:
        allowed = set(self.all_labels)
        if self.ignore_label is not None:
            allowed.add(self.ignore_label)
        return allowed

    @property
    def foreground_labels(self) -> list[int]:
        return [v for v in self.all_labels if v != 0]


def parse_dataset_json(data: object) -> DatasetSpec:
    """Check a parsed dataset.json against the format's rules, collecting every problem."""
    problems: list[str] = []
    if not isinstance(data, dict):
        raise DatasetError(["dataset.json: must be a JSON object"])
    for key in ("labels", "numTraining", "file_ending"):
        if key not in data:
            problems.append(f"dataset.json: required key '{key}' is missing")
    channel_names = data.get("channel_names", data.get("modality"))
    if channel_names is None:
        problems.append("dataset.json: required key 'channel_names' is missing")
        channel_names = {}
    channels = _parse_channel_names(channel_names, problems)
    labels = _parse_labels(data.get("labels", {}), problems)
    num_training = data.get("numTraining", 0)
    if not isinstance(num_training, int) or isinstance(num_training, bool) or num_training < 0:
        problems.append(f"dataset.json: numTraining must be a non-negative integer, got {num_training!r}")
        num_training = 0
    file_ending = data.get("file_ending", "")
    if not isinstance(file_ending, str) or not file_ending.startswith("."):
        problems.append(f"dataset.json: file_ending must look like '.nii.gz', got {file_ending!r}")
        file_ending = ""
    order = _parse_regions_class_order(data, labels, problems)
    ignore = labels.get("ignore")
    if problems:
        raise DatasetError(problems)
    return DatasetSpec(
        raw=data,
        channel_names=channels,
        labels=labels,
        num_training=num_training,
        file_ending=file_ending,
        regions_class_order=order,
        ignore_label=ignore if isinstance(ignore, int) else None,
    )


def _parse_channel_names(value: object, problems: list[str]) -> dict[str, str]:
    if not isinstance(value, dict) or not value:
        problems.append('dataset.json: channel_names must be a non-empty object like {"0": "CT"}')
        return {}
    expected = [str(i) for i in range(len(value))]
    if sorted(value, key=lambda k: int(k) if str(k).isdigit() else -1) != expected:
        problems.append(f"dataset.json: channel_names keys must be 0..{len(value) - 1}, got {sorted(value)}")
    return {str(k): str(v) for k, v in value.items()}


def _parse_labels(value: object, problems: list[str]) -> dict[str, LabelValue]:
    if not isinstance(value, dict) or not value:
        problems.append('dataset.json: labels must be a non-empty object like {"background": 0}')
        return {}
    labels: dict[str, LabelValue] = {}
    for name, raw in value.items():
        if isinstance(raw, bool):
            problems.append(f"dataset.json: label '{name}' must be an integer or a list of integers")
        elif isinstance(raw, int):
            labels[name] = raw
        elif (
            isinstance(raw, list | tuple)
            and raw
            and all(isinstance(v, int) and not isinstance(v, bool) for v in raw)
        ):
            labels[name] = raw[0] if len(raw) == 1 else tuple(raw)
        else:
            problems.append(f"dataset.json: label '{name}' must be an integer or a list of integers")
    if labels.get("background") != 0:
        problems.append("dataset.json: labels must map 'background' to 0")
    plain = sorted(
        {v for n, v in labels.items() if n != "ignore" and isinstance(v, int)}
        | {x for n, v in labels.items() if n != "ignore" and isinstance(v, tuple) for x in v}
    )
    if plain and plain != list(range(len(plain))):
        problems.append(f"dataset.json: label values must be consecutive from 0, got {plain}")
    ignore = labels.get("ignore")
    if ignore is not None:
        if not isinstance(ignore, int):
            problems.append("dataset.json: the ignore label must be a single integer")
        elif plain and ignore != max(plain) + 1:
            problems.append(
                f"dataset.json: the ignore label must be {max(plain) + 1} (the largest label + 1), "
                f"got {ignore}"
            )
    return labels


def _parse_regions_class_order(
    data: dict, labels: dict[str, LabelValue], problems: list[str]
) -> tuple[int, ...] | None:
    has_regions = any(isinstance(v, tuple) for v in labels.values())
    order = data.get("regions_class_order")
    if not has_regions:
        return None
    n_regions = sum(1 for n in labels if n not in ("background", "ignore"))
    if not isinstance(order, list) or len(order) != n_regions:
        problems.append(f"dataset.json: region labels need 'regions_class_order' with {n_regions} integers")
        return None
    return tuple(int(v) for v in order)


def load_dataset_json(path: Path) -> DatasetSpec:
    """Read and check a dataset.json file."""
    return parse_dataset_json(read_json(path, DatasetError, "dataset.json"))


@dataclass(frozen=True)
class TrainingCase:
    """One case's files: channel images in channel order and the label map (None when missing)."""

    identifier: str
    images: tuple[Path, ...]
    label: Path | None


def channel_file_pattern(file_ending: str) -> re.Pattern[str]:
    return re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})" + re.escape(file_ending) + "$")


def group_channel_files(folder: Path, file_ending: str) -> tuple[dict[str, dict[int, Path]], list[Path]]:
    """Group `CASE_XXXX<ending>` files by case; return the groups and the files that do not fit."""
    pattern = channel_file_pattern(file_ending)
    cases: dict[str, dict[int, Path]] = {}
    strays: list[Path] = []
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        if path.name.startswith("."):
            continue
        match = pattern.match(path.name)
        if match is None or not path.is_file():
            strays.append(path)
            continue
        cases.setdefault(match["case"], {})[int(match["channel"])] = path
    return cases, strays


def find_training_cases(raw_dir: Path, spec: DatasetSpec) -> list[TrainingCase]:
    """The training cases of a raw dataset folder, sorted by identifier, without checking them."""
    grouped, _ = group_channel_files(Path(raw_dir) / "imagesTr", spec.file_ending)
    cases = []
    for identifier in sorted(grouped):
        channels = grouped[identifier]
        images = tuple(channels[c] for c in sorted(channels))
        label = Path(raw_dir) / "labelsTr" / f"{identifier}{spec.file_ending}"
        cases.append(TrainingCase(identifier, images, label if label.is_file() else None))
    return cases


def load_dataset(raw_dir: Path) -> tuple[DatasetSpec, list[TrainingCase]]:
    """The dataset's declaration and its training cases (use `verify_dataset` to check them)."""
    spec = load_dataset_json(Path(raw_dir) / "dataset.json")
    return spec, find_training_cases(Path(raw_dir), spec)
