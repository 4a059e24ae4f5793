"""Trainings: one parent job that trains every requested configuration and fold (one child job each),
then selects the best configuration and registers a model version."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.schemas.models import MODEL_NAME_PATTERN

Fold = Annotated[int, Field(ge=0, le=4)]


class TrainingCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plan_id: str = Field(examples=["1a2b3c4d5e6f708192a3b4c5d6e7f809"])
    configurations: list[str] | Literal["auto"] = Field(
        "auto", description='"auto": every configuration the plans hold', examples=[["2d", "3d_fullres"]]
    )
    folds: list[Fold] | Literal["all"] = Field("all", description='"all": the five cross-validation folds')
    epochs: int = Field(1000, ge=1, le=100_000, examples=[1000])
    iterations_per_epoch: int = Field(250, ge=1, le=100_000, examples=[250])
    validation_iterations: int = Field(50, ge=1, le=10_000, description="pseudo-Dice batches per epoch")
    seed: int = Field(0, ge=0, le=2**31 - 1)
    model_name: str = Field(
        pattern=MODEL_NAME_PATTERN, description="registered with the next version", examples=["liver"]
    )
