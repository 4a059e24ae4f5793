"""Finding the trained models in what a person hands over, and choosing which of them to import.

A path may be one model folder (`<Trainer>__<Plans>__<configuration>/`), a dataset's results folder
(`DatasetXXX_Name/`), an `nnUNet_results` folder holding one dataset, or the unpacked export zip,
whose members start at the dataset folder. Model folders are looked for there and up to two levels
below. Our model folder keys configurations by name alone, so two models of one configuration (say
`3d_fullres` of two plans) cannot both come in; the caller picks one by trainer or plans.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

from core.interop.layout import PLANS_FILE, ModelId
from core.interop.model_check import FoundModel


def _as_model(folder: Path) -> FoundModel | None:
    model_id = ModelId.parse(folder.name)
    if model_id is None or not (folder / PLANS_FILE).is_file():
        return None
    return FoundModel(folder, model_id)


def _subfolders(folder: Path) -> Iterator[Path]:
    return (p for p in sorted(folder.iterdir()) if p.is_dir() and not p.name.startswith("."))


def find_model_folders(root: Path) -> list[FoundModel]:
    """Model folders at `root` or up to two levels below it, in path order."""
    model = _as_model(root)
    if model is not None:
        return [model]
    found = []
    for child in _subfolders(root):
        model = _as_model(child)
        if model is not None:
            found.append(model)
            continue
        found += [m for m in map(_as_model, _subfolders(child)) if m is not None]
    return found


def choose_models(
    models: list[FoundModel],
    trainer: str | None,
    plans: str | None,
    configurations: tuple[str, ...] | None,
) -> tuple[list[FoundModel], list[str]]:
    """The models matching the filters, one per configuration, all of one dataset; or the problems."""
    kept = [
        m
        for m in models
        if (trainer is None or m.model_id.trainer == trainer)
        and (plans is None or m.model_id.plans == plans)
        and (configurations is None or m.model_id.configuration in configurations)
    ]
    names = ", ".join(m.folder.name for m in models)
    if not kept:
        return [], [
            f"no trained model matches the trainer, plans and configurations asked for; found: {names}"
        ]
    problems = []
    datasets = sorted({m.folder.parent.name for m in kept})
    if len(datasets) > 1:
        problems.append(
            f"holds models of several datasets ({', '.join(datasets)}); import one dataset folder"
        )
    by_configuration: dict[str, list[str]] = defaultdict(list)
    for model in kept:
        by_configuration[model.model_id.configuration].append(model.folder.name)
    problems += [
        f"configuration {name} is trained by several models ({', '.join(folders)}); "
        "choose one by trainer and plans"
        for name, folders in by_configuration.items()
        if len(folders) > 1
    ]
    if configurations is not None:
        absent = sorted(set(configurations) - set(by_configuration))
        if absent:
            problems.append(f"no trained model of configuration(s) {', '.join(absent)}; found: {names}")
    return kept, problems
