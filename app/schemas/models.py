"""The model registry: every trained or imported model has a name and a version that grows per name."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"
MODEL_REF_DESCRIPTION = "a model id, a name (its latest version), `name:latest` or `name:<version>`"


class ModelPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str = Field(examples=["7e6d5c4b3a2910f8e7d6c5b4a3928170"])
    name: str = Field(examples=["liver"])
    version: int = Field(examples=[3])
    dataset_id: str | None = None
    job_id: str | None = Field(None, description="the selection or import job that registered it")
    source: str = Field(examples=["trained"], description="trained | imported")
    configurations: list[Any] = Field(examples=[["2d", "3d_fullres"]])
    folds: list[Any] = Field(examples=[[0, 1, 2, 3, 4]])
    selection: dict[str, Any] | None = Field(
        None, description="selection.json: best configuration(s), postprocessing"
    )
    metrics: dict[str, Any] | None = Field(
        None, description="cross-validation foreground mean Dice per candidate", examples=[{"2d": 0.91}]
    )
    num_input_channels: int = Field(examples=[1])
    created_at: datetime


class ModelsPublic(BaseModel):
    data: list[ModelPublic]
    count: int


class ModelImportForm(BaseModel):
    """Text fields sent beside an nnU-Net v2 results folder archive."""

    model_name: str = Field(pattern=MODEL_NAME_PATTERN, examples=["liver"])
