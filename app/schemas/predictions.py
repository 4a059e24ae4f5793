"""Predictions: one case posted as channel files, segmented by a model version."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.schemas.datasets import CASE_PATTERN
from app.schemas.jobs import JobPublic
from app.schemas.models import MODEL_REF_DESCRIPTION


class PredictionForm(BaseModel):
    """Text fields sent beside the channel files."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(description=MODEL_REF_DESCRIPTION, examples=["liver:latest"])
    case_id: str = Field("case", pattern=CASE_PATTERN, description="names the output files")
    configuration: str | None = Field(None, description="default: the model's selected best", examples=["2d"])
    folds: str | None = Field(
        None, pattern=r"^\d+(,\d+)*$", description="comma-separated folds; default: every trained fold"
    )
    use_mirroring: bool = Field(True, description="test-time augmentation by mirroring")
    save_probabilities: bool = Field(False, description="also keep the class probabilities (.npz)")
    step_size: float = Field(0.5, gt=0, le=1, description="sliding-window step as a fraction of the patch")

    @property
    def fold_list(self) -> list[int] | None:
        return None if self.folds is None else [int(fold) for fold in self.folds.split(",")]


class PredictionPublic(BaseModel):
    id: str = Field(examples=["9a8b7c6d5e4f30211203f4e5d6c7b8a9"])
    model_id: str
    model_name: str = Field(examples=["liver"])
    model_version: int = Field(examples=[3])
    job_id: str
    status: str = Field(examples=["succeeded"], description="the job's status")
    options: dict[str, Any] = Field(examples=[{"configuration": None, "use_mirroring": True}])
    created_at: datetime
    segmentation_url: str | None = Field(None, description="set once the segmentation can be downloaded")
    probabilities_url: str | None = None


class PredictionAccepted(BaseModel):
    prediction: PredictionPublic
    job: JobPublic
