"""Checks of one nnU-Net v2 model folder and its checkpoints, before anything is imported.

Each check collects every problem, prefixed with the model folder's name (and fold), so a refusal
names all that is wrong at once. The network check compares the checkpoint's state dict, name by name
and shape by shape, with the network our builder makes from the same plans, built on the meta device
and left uninitialised (no memory, no time): whatever passes loads strictly into our predictor.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from core.dataset import DatasetSpec, load_dataset_json
from core.errors import ProblemsError
from core.inference.export import OutputLayout
from core.interop.layout import DATASET_FILE, FOLD_PREFIX, PLANS_FILE, ModelId, fold_name
from core.interop.trainers import trainer_problem
from core.network import parse_layout
from core.network.builder import ARCHITECTURES
from core.plans import Plans, load_plans
from core.training.checkpoints import BEST, FINAL, LATEST

MAX_LISTED = 3


@dataclass(frozen=True)
class FoundModel:
    """A folder named `<Trainer>__<Plans>__<configuration>` that holds a plans.json."""

    folder: Path
    model_id: ModelId


@dataclass(frozen=True)
class CheckedModel:
    """A model folder whose files are usable; its checkpoints are checked one by one afterwards."""

    found: FoundModel
    plans: Plans
    spec: DatasetSpec
    fold_checkpoints: tuple[tuple[str, Path], ...]
    expected_shapes: dict[str, tuple[int, ...]]

    @property
    def configuration(self) -> str:
        return self.found.model_id.configuration


def _prefixed(where: str, error: ProblemsError) -> list[str]:
    return [f"{where}: {problem}" for problem in error.problems]


def _expected_shapes(plans: Plans, spec: DatasetSpec, configuration: str) -> dict[str, tuple[int, ...]]:
    """Weight names and shapes of the plans' network (left uninitialised: only the shapes matter)."""
    plan = plans.configuration(configuration)
    layout = parse_layout(plan.architecture)  # refuses unknown classes and kwargs, naming them
    build = ARCHITECTURES[plan.architecture.network_class_name.rsplit(".", 1)[-1]][0]
    extra = len(spec.foreground_labels) if plan.previous_stage is not None else 0
    outputs = OutputLayout.from_spec(spec).num_outputs
    with torch.device("meta"):
        network = build(layout, spec.num_channels + extra, outputs, False)
    return {name: tuple(tensor.shape) for name, tensor in network.state_dict().items()}


def _fold_checkpoints(folder: Path, checkpoint: str, folds: tuple[str, ...] | None) -> tuple[list, list[str]]:
    fold_dirs = sorted(p for p in folder.glob(f"{FOLD_PREFIX}*") if p.is_dir())
    if folds is not None:
        fold_dirs = [p for p in fold_dirs if fold_name(p.name) in folds]
    if not fold_dirs:
        wanted = "" if folds is None else f" among folds {', '.join(folds)}"
        return [], [f"{folder.name}: no fold_K folders{wanted}"]
    found, problems = [], []
    for fold_dir in fold_dirs:
        path = fold_dir / checkpoint
        if path.is_file():
            found.append((fold_name(fold_dir.name), path))
            continue
        others = [name for name in (FINAL, BEST, LATEST) if (fold_dir / name).is_file()]
        hint = f" (it has {', '.join(others)})" if others else ""
        if others == [LATEST]:
            hint = " (its training has not finished: only checkpoint_latest.pth)"
        problems.append(f"{folder.name}/{fold_dir.name}: {checkpoint} is missing{hint}")
    return found, problems


def check_model_folder(
    found: FoundModel, checkpoint: str, folds: tuple[str, ...] | None
) -> tuple[CheckedModel | None, list[str]]:
    """The checked model, or None with every problem found."""
    where, folder = found.folder.name, found.folder
    problems = []
    trainer = trainer_problem(found.model_id.trainer)
    if trainer:
        problems.append(f"{where}: {trainer}")
    plans = spec = shapes = None
    try:
        plans = load_plans(folder / PLANS_FILE)
    except ProblemsError as error:
        problems += _prefixed(where, error)
    try:
        spec = load_dataset_json(folder / DATASET_FILE)
    except ProblemsError as error:
        problems += _prefixed(where, error)
    if plans is not None and spec is not None:
        try:
            shapes = _expected_shapes(plans, spec, found.model_id.configuration)
        except ProblemsError as error:
            problems += _prefixed(where, error)
    fold_checkpoints, fold_problems = _fold_checkpoints(folder, checkpoint, folds)
    problems += fold_problems
    if problems:
        return None, problems
    return CheckedModel(found, plans, spec, tuple(fold_checkpoints), shapes), []


def _listed(names: list[str]) -> str:
    more = f" and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else ""
    return ", ".join(names[:MAX_LISTED]) + more


def _weights_problems(weights: object, expected: dict[str, tuple[int, ...]]) -> list[str]:
    if not isinstance(weights, dict) or not all(isinstance(v, torch.Tensor) for v in weights.values()):
        return ["network_weights is not a dictionary of tensors"]
    problems = []
    missing = [name for name in expected if name not in weights]
    unexpected = [name for name in weights if name not in expected]
    wrong = [
        f"{name} {tuple(weights[name].shape)} (plans: {shape})"
        for name, shape in expected.items()
        if name in weights and tuple(weights[name].shape) != shape
    ]
    if missing:
        problems.append(f"the plans' network has weights the checkpoint lacks: {_listed(missing)}")
    if unexpected:
        problems.append(f"the checkpoint has weights the plans' network lacks: {_listed(unexpected)}")
    if wrong:
        problems.append(f"weights of another shape than the plans' network: {_listed(wrong)}")
    return problems


def checkpoint_problems(document: dict, model: CheckedModel, where: str) -> list[str]:
    """What makes a loaded checkpoint unusable for `model`, each line prefixed with `where`."""
    problems = []
    trainer_name = document.get("trainer_name")
    if not isinstance(trainer_name, str):
        problems.append("no trainer_name")
    elif trainer_problem(trainer_name):
        problems.append(trainer_problem(trainer_name))
    init_args = document.get("init_args")
    configuration = init_args.get("configuration") if isinstance(init_args, dict) else None
    if configuration != model.configuration:
        problems.append(f"was trained for configuration {configuration!r}, not {model.configuration!r}")
    axes = document.get("inference_allowed_mirroring_axes")
    dim = len(model.plans.configuration(model.configuration).patch_size)
    if axes is not None and (
        not isinstance(axes, list | tuple) or not all(isinstance(a, int) and 0 <= a < dim for a in axes)
    ):
        problems.append(f"inference_allowed_mirroring_axes {axes!r} are not axes of a {dim}D patch")
    problems += _weights_problems(document.get("network_weights"), model.expected_shapes)
    return [f"{where}: {problem}" for problem in problems]
