"""Evaluations: Dice and friends per label in nnU-Net v2's summary.json layout, plus a pass/fail verdict
against per-label thresholds, so that CI can gate on one boolean."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, Json

from app.schemas.jobs import JobPublic
from app.schemas.models import MODEL_REF_DESCRIPTION

Dice = Annotated[float, Field(ge=0, le=1)]
THRESHOLDS_DESCRIPTION = (
    'least mean Dice per label, keyed by label name, label value (`"1"`, not for regions) or '
    "`foreground_mean`; the evaluation passes when every one is met"
)


class EvaluationCreate(BaseModel):
    """Predict a dataset's labelled cases with a model and evaluate them."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(description=MODEL_REF_DESCRIPTION, examples=["liver:latest"])
    dataset_id: str = Field(examples=["0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f"])
    thresholds: dict[str, Dice] = Field(
        default_factory=dict, description=THRESHOLDS_DESCRIPTION, examples=[{"liver": 0.9, "tumour": 0.6}]
    )
    use_training_cases: bool = Field(
        False, description="evaluate on the labelled training cases instead of imagesTs/ with labelsTs/"
    )


class EvaluationArchiveForm(BaseModel):
    """Text fields sent beside two archives of segmentations with the same file names."""

    model_config = ConfigDict(extra="forbid")

    thresholds: Json[dict[str, Dice]] = Field(default_factory=dict, description=THRESHOLDS_DESCRIPTION)
    dataset_id: str | None = Field(None, description="take the labels from this dataset's dataset.json")
    labels: Json[dict[str, int | list[int]]] | None = Field(
        None,
        description='dataset.json labels, when no dataset_id is given: {"background": 0, "liver": 1}; '
        "with neither, the labels found in the references are evaluated",
    )
    file_ending: str = Field(".nii.gz", examples=[".nii.gz"])


class EvaluationPublic(BaseModel):
    id: str = Field(examples=["5d4c3b2a190817f6e5d4c3b2a1908172"])
    job_id: str
    status: str = Field(examples=["succeeded"], description="the job's status")
    model_id: str | None = None
    dataset_id: str | None = None
    thresholds: dict[str, float] = Field(examples=[{"liver": 0.9}])
    summary: dict[str, Any] | None = Field(None, description="summary.json (nnU-Net v2 layout) once finished")
    passed: bool | None = Field(None, description="every threshold met; null until finished")
    created_at: datetime


class EvaluationAccepted(BaseModel):
    evaluation: EvaluationPublic
    job: JobPublic
