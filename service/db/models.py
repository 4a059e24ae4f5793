"""The service's tables. A job row is the truth about every piece of long work: the API writes it,
the broker only carries its id, and a worker updates status, progress, result and error on it.

Resources (datasets, plans, models, predictions, evaluations) point at the job that made them;
their files live under the data root at the relative `path` each row stores.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Enum, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from service.db.base import Base, utc_now


def new_id() -> str:
    return uuid.uuid4().hex


class JobStatus(enum.StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in (JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled)


class JobKind(enum.StrEnum):
    plan = "plan"
    train = "train"  # a parent: one train_fold child per configuration and fold, then a select child
    train_fold = "train_fold"
    select = "select"
    predict = "predict"
    evaluate = "evaluate"
    import_model = "import_model"


class Role(enum.StrEnum):
    admin = "admin"
    trainer = "trainer"
    predictor = "predictor"
    evaluator = "evaluator"
    viewer = "viewer"


def _enum(kind: type[enum.Enum]) -> Enum:
    # Stored as plain strings (no database enum type): adding a member needs no migration.
    return Enum(kind, native_enum=False, length=32, validate_strings=True)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    prefix: Mapped[str] = mapped_column(String(16), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[Role] = mapped_column(_enum(Role))
    label: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class Dataset(Base):
    __tablename__ = "datasets"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    path: Mapped[str] = mapped_column(String(500))
    description: Mapped[str] = mapped_column(Text, default="")
    spec: Mapped[dict[str, Any]] = mapped_column(default=dict)  # dataset.json as stored
    fingerprint: Mapped[dict[str, Any] | None]
    size_bytes: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)

    cases: Mapped[list[DatasetCase]] = relationship(
        back_populates="dataset", cascade="all, delete-orphan", order_by="DatasetCase.name"
    )


class DatasetCase(Base):
    __tablename__ = "dataset_cases"
    __table_args__ = (UniqueConstraint("dataset_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    has_label: Mapped[bool] = mapped_column(default=True)
    is_test: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)

    dataset: Mapped[Dataset] = relationship(back_populates="cases")


class Plan(Base):
    __tablename__ = "plans"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    path: Mapped[str] = mapped_column(String(500))  # preprocessed folder, holds plans.json
    document: Mapped[dict[str, Any] | None]  # plans.json once planning finished
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    is_edited: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        # An Idempotency-Key is the client's: the same string from another API key is another request.
        UniqueConstraint("kind", "api_key_id", "idempotency_key"),
        Index("ix_jobs_status_created_at", "status", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    kind: Mapped[JobKind] = mapped_column(_enum(JobKind))
    status: Mapped[JobStatus] = mapped_column(_enum(JobStatus), default=JobStatus.queued, index=True)
    queue: Mapped[str] = mapped_column(String(16))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    progress: Mapped[dict[str, Any]] = mapped_column(default=dict)
    result: Mapped[dict[str, Any] | None]
    error: Mapped[dict[str, Any] | None]  # {"message": ..., "problems": [...], "hint": ...}
    attempts: Mapped[int] = mapped_column(default=0)
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    task_id: Mapped[str | None] = mapped_column(String(64))
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id", ondelete="SET NULL"))
    is_cancel_requested: Mapped[bool] = mapped_column(default=False)
    revision: Mapped[int] = mapped_column(default=0)  # bumped on every change: the ETag
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    enqueued_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    worker: Mapped[str | None] = mapped_column(String(200))

    children: Mapped[list[Job]] = relationship(
        back_populates="parent", cascade="all, delete-orphan", order_by="Job.created_at"
    )
    parent: Mapped[Job | None] = relationship(back_populates="children", remote_side=[id])


class Model(Base):
    __tablename__ = "models"
    __table_args__ = (UniqueConstraint("name", "version"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), index=True)
    version: Mapped[int]
    path: Mapped[str] = mapped_column(String(500))  # model folder (MODEL_DIR layout of core)
    dataset_id: Mapped[str | None] = mapped_column(ForeignKey("datasets.id", ondelete="SET NULL"))
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    source: Mapped[str] = mapped_column(String(32), default="trained")  # trained | imported
    configurations: Mapped[list[Any]] = mapped_column(default=list)
    folds: Mapped[list[Any]] = mapped_column(default=list)
    selection: Mapped[dict[str, Any] | None]  # selection.json
    metrics: Mapped[dict[str, Any] | None]  # cross-validation foreground mean Dice per candidate
    num_input_channels: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class Prediction(Base):
    __tablename__ = "predictions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    model_id: Mapped[str] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), unique=True)
    path: Mapped[str] = mapped_column(String(500))  # folder with input/ and output/
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utc_now, index=True)


class Evaluation(Base):
    __tablename__ = "evaluations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), unique=True)
    model_id: Mapped[str | None] = mapped_column(ForeignKey("models.id", ondelete="SET NULL"))
    dataset_id: Mapped[str | None] = mapped_column(ForeignKey("datasets.id", ondelete="SET NULL"))
    path: Mapped[str] = mapped_column(String(500))
    thresholds: Mapped[dict[str, Any]] = mapped_column(default=dict)  # label -> least Dice
    summary: Mapped[dict[str, Any] | None]  # summary.json, nnU-Net v2 layout
    passed: Mapped[bool | None]
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
