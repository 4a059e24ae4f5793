"""The model registry's writes: a model folder becomes a `Model` row with the next version of its name.

Registration is idempotent by the job that made the model (`Model.job_id`): a repeated select or
import finds its own row instead of adding a second version. Two registrations of one name at the
same moment may pick the same version; the unique (name, version) constraint refuses the second,
which then takes the following number.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.dataset import load_dataset_json
from core.selection import Selection
from core.training.checkpoints import FINAL
from service.db.models import Model, new_id
from service.db.session import session_scope
from service.settings import Settings
from worker.progress import json_safe

REGISTRATION_TRIES = 5


@dataclass(frozen=True)
class ModelFolder:
    """What the registry records of a model folder (core's MODEL_DIR layout)."""

    configurations: list[str]
    folds: list[int | str]
    num_input_channels: int


def describe_model_folder(model_dir: Path) -> ModelFolder:
    """Configurations (folders with plans.json) and the folds with a final checkpoint in all of them."""
    configurations = sorted(p.parent.name for p in model_dir.glob("*/plans.json"))
    fold_sets = [
        {p.parent.name.removeprefix("fold_") for p in (model_dir / name).glob(f"fold_*/{FINAL}")}
        for name in configurations
    ]
    common = set.intersection(*fold_sets) if fold_sets else set()
    folds: list[int | str] = sorted(int(f) for f in common if f.isdigit())
    folds += sorted(f for f in common if not f.isdigit())
    channels = (
        load_dataset_json(model_dir / configurations[0] / "dataset.json").num_channels
        if configurations
        else 1
    )
    return ModelFolder(configurations, folds, channels)


def selection_metrics(selection: Selection | None) -> dict[str, Any] | None:
    """Cross-validation foreground mean Dice per candidate (configuration or pair), NaN as null."""
    if selection is None:
        return None
    return json_safe(dict(selection.all_results))


def model_of_job(session: Session, job_id: str) -> Model | None:
    return session.scalar(select(Model).where(Model.job_id == job_id))


def register_model(
    settings: Settings,
    *,
    name: str,
    path: str,
    job_id: str,
    dataset_id: str | None,
    source: str,
    model_dir: Path,
    selection: Selection | None,
    model_id: str | None = None,
) -> Model:
    """The model row of `job_id`, created with the next version of `name` if it does not exist yet."""
    folder = describe_model_folder(model_dir)
    document = None if selection is None else json_safe(selection.to_json())
    for _ in range(REGISTRATION_TRIES):
        try:
            with session_scope(str(settings.database_url)) as session:
                existing = model_of_job(session, job_id)
                if existing is not None:
                    return existing
                version = (session.scalar(select(func.max(Model.version)).where(Model.name == name)) or 0) + 1
                model = Model(
                    id=model_id or new_id(),
                    name=name,
                    version=version,
                    path=path,
                    dataset_id=dataset_id,
                    job_id=job_id,
                    source=source,
                    configurations=folder.configurations,
                    folds=folder.folds,
                    selection=document,
                    metrics=selection_metrics(selection),
                    num_input_channels=folder.num_input_channels,
                )
                session.add(model)
                session.flush()
                return model
        except IntegrityError:
            continue
    raise RuntimeError(f"could not register model {name!r}: its version number kept being taken")


def model_result(model: Model) -> dict[str, Any]:
    """The part of a job's result that names the model it registered."""
    return {
        "model_id": model.id,
        "model_name": model.name,
        "version": model.version,
        "configurations": model.configurations,
        "folds": model.folds,
        "artifacts": {},
    }
