"""Plans: the method's configuration of a dataset (nnU-Net v2's plans.json), made by a plan job and
optionally edited by an expert before training."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.schemas.jobs import JobPublic

ConfigurationName = Literal["2d", "3d_fullres", "3d_lowres", "3d_cascade_fullres"]


class PlanCreate(BaseModel):
    """Fingerprint, plan and preprocess a dataset."""

    model_config = ConfigDict(extra="forbid")

    dataset_id: str = Field(examples=["0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f"])
    gpu_memory_gb: float | None = Field(
        None,
        gt=0,
        le=1024,
        description="GPU memory the networks are sized for; default: the server's setting",
    )
    configurations: list[ConfigurationName] | None = Field(
        None,
        description="preprocess only these; default: every configuration the plans hold",
        examples=[["2d"]],
    )
    preset: str = Field("default", description="default, ResEncM, ResEncL or ResEncXL", examples=["default"])


class PlanPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str = Field(examples=["1a2b3c4d5e6f708192a3b4c5d6e7f809"])
    dataset_id: str
    job_id: str | None = Field(None, description="the plan job; its status says when the plans are ready")
    options: dict[str, Any] = Field(
        examples=[{"gpu_memory_gb": 8.0, "preset": "default", "configurations": None}]
    )
    is_edited: bool
    document: dict[str, Any] | None = Field(None, description="plans.json (nnU-Net v2 layout) once planned")
    created_at: datetime


class PlansPublic(BaseModel):
    data: list[PlanPublic]
    count: int


class PlanAccepted(BaseModel):
    plan: PlanPublic
    job: JobPublic
