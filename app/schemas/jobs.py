"""A job as clients see it: what runs, how far it got, what it produced or why it failed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from service.db.models import JobKind, JobStatus


class JobProgress(BaseModel):
    """Written by the worker at most about once a second; unknown keys are passed through."""

    model_config = ConfigDict(extra="allow")

    stage: str = Field("queued", examples=["train"])
    fraction: float = Field(0.0, ge=0, le=1, examples=[0.42])
    message: str = Field("", examples=["epoch 42/100"])
    epoch: int | None = Field(None, examples=[42])
    metrics: dict[str, Any] = Field(default_factory=dict, examples=[{"train_loss": -0.61, "ema_dice": 0.83}])
    eta_s: float | None = Field(None, examples=[1260.0])


class JobError(BaseModel):
    model_config = ConfigDict(extra="allow")

    message: str = Field(examples=["the dataset has 2 problems"])
    problems: list[str] = Field(default_factory=list)
    hint: str | None = Field(None, examples=["fix the files named and upload the dataset again"])


class JobSummary(BaseModel):
    """A job in a listing or as a child: enough to poll it."""

    model_config = ConfigDict(from_attributes=True)

    id: str = Field(examples=["4f9c2d7e0b1a4c3d8e5f6a7b8c9d0e1f"])
    kind: JobKind
    status: JobStatus
    queue: str = Field(examples=["gpu"])
    progress: JobProgress
    parent_id: str | None = None
    revision: int = Field(description="bumped on every change; the ETag is built from it")
    created_at: datetime
    finished_at: datetime | None = None


class JobPublic(JobSummary):
    """One job with its parameters, result or error, children and place in the queue."""

    params: dict[str, Any] = Field(examples=[{"prediction_id": "9a8b7c6d5e4f30211203f4e5d6c7b8a9"}])
    result: dict[str, Any] | None = Field(
        None,
        description="per kind; `artifacts` maps names to files served by GET /v1/jobs/{id}/artifacts/{name}",
        examples=[{"artifacts": {"segmentation": "predictions/9a8b.../output/case.nii.gz"}}],
    )
    error: JobError | None = None
    attempts: int = 0
    is_cancel_requested: bool = False
    queue_position: int | None = Field(None, description="1-based place among queued jobs of its queue")
    children: list[JobSummary] = Field(default_factory=list)
    enqueued_at: datetime | None = None
    started_at: datetime | None = None
    heartbeat_at: datetime | None = None
    worker: str | None = None


class JobsPublic(BaseModel):
    data: list[JobSummary]
    count: int = Field(description="jobs matching the filters, over all pages")


class JobLog(BaseModel):
    """A slice of the job's log; ask again from `next_cursor` for what was written since."""

    cursor: int = Field(examples=[0])
    next_cursor: int = Field(examples=[1834])
    text: str = Field(examples=["epoch 0: train_loss -0.12 val_loss -0.20 pseudo_dice [0.41]\n"])
    is_complete: bool = Field(description="the job has finished and nothing more will be written")
