"""Where each resource's files live under the data root. Rows store paths relative to the root, so
a data root moved to another mount (or shared by several machines) keeps working."""

from __future__ import annotations

from pathlib import Path

from service.settings import Settings


def dataset_dir(settings: Settings, dataset_id: str) -> Path:
    """Holds raw/ (nnU-Net raw layout) and preprocessed/<plan_id>/."""
    return settings.data_root / "datasets" / dataset_id


def raw_dir(settings: Settings, dataset_id: str) -> Path:
    return dataset_dir(settings, dataset_id) / "raw"


def plan_dir(settings: Settings, dataset_id: str, plan_id: str) -> Path:
    """A preprocessed folder: plans.json, dataset_fingerprint.json and one data folder per configuration."""
    return dataset_dir(settings, dataset_id) / "preprocessed" / plan_id


def model_dir(settings: Settings, model_id: str) -> Path:
    """A model folder in core's MODEL_DIR layout."""
    return settings.data_root / "models" / model_id


def training_dir(settings: Settings, train_job_id: str) -> Path:
    """Where a training's folds are written; it becomes a model folder when selection registers it."""
    return settings.data_root / "trainings" / train_job_id


def prediction_dir(settings: Settings, prediction_id: str) -> Path:
    """input/ (the posted channel files) and output/ (segmentation, probabilities)."""
    return settings.data_root / "predictions" / prediction_id


def evaluation_dir(settings: Settings, evaluation_id: str) -> Path:
    return settings.data_root / "evaluations" / evaluation_id


def job_dir(settings: Settings, job_id: str) -> Path:
    """log.txt (appended by the worker, read by cursor through the API) and artifacts/."""
    return settings.data_root / "jobs" / job_id


def staging_dir(settings: Settings) -> Path:
    """Uploads land here first and are renamed into place only when they pass every check."""
    return settings.data_root / "staging"


def relative(settings: Settings, path: Path) -> str:
    return str(Path(path).resolve().relative_to(settings.data_root))


def absolute(settings: Settings, stored: str) -> Path:
    return settings.data_root / stored
