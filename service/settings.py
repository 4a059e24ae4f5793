"""One settings object, read from `NNSVC_*` environment variables (or a `.env` file).

With nothing set, the service runs embedded under one data folder: SQLite for the database and
kombu's SQLAlchemy transport on a second SQLite file as the broker, so no server process is needed.
Production sets `NNSVC_DATABASE_URL` (PostgreSQL) and `NNSVC_BROKER_URL` (Redis).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of the service; the README's configuration table lists the same fields."""

    model_config = SettingsConfigDict(env_prefix="NNSVC_", env_file=".env", extra="ignore")

    data_root: Path = Field(Path("nnsvc-data"), description="folder for datasets, models, predictions, jobs")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default: SQLite file DATA_ROOT/nnsvc.sqlite3"
    )
    broker_url: str | None = Field(
        None, description="Celery broker URL; default: SQLite-backed broker DATA_ROOT/broker.sqlite3"
    )
    max_upload_mb: int = Field(2048, gt=0, description="largest accepted upload, in MiB")
    max_expansion_ratio: float = Field(
        20.0, gt=1, description="largest allowed unpacked/packed size ratio of an uploaded archive"
    )
    data_root_quota_gb: float | None = Field(
        None, gt=0, description="refuse uploads once the data root holds this much; unset = no quota"
    )
    gpu_memory_gb: float = Field(8.0, gt=0, description="GPU memory target that planning sizes networks for")
    cors_origins: list[str] = Field(default_factory=list, description="origins allowed to call the API")
    prediction_retention_days: float | None = Field(
        None, gt=0, description="delete predictions older than this; unset = keep"
    )
    job_time_limits_s: dict[str, int] = Field(
        default_factory=lambda: {
            "plan": 6 * 3600,
            "train_fold": 72 * 3600,
            "select": 6 * 3600,
            "predict": 3600,
            "evaluate": 6 * 3600,
            "import_model": 3600,
            "train": 600,
        },
        description="hard time limit per job kind, in seconds",
    )
    heartbeat_timeout_s: int = Field(
        300, gt=0, description="a running job whose worker was silent this long is taken up again"
    )
    max_attempts: int = Field(3, gt=0, description="times a job is started before it is failed")
    progress_interval_s: float = Field(
        1.0, ge=0, description="least time between two progress writes of one job"
    )
    worker_device: Literal["auto", "cpu", "cuda"] = Field("auto", description="device a worker runs on")

    @field_validator("data_root")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @model_validator(mode="after")
    def _embedded_defaults(self) -> Settings:
        if self.database_url is None:
            self.database_url = f"sqlite:///{self.data_root / 'nnsvc.sqlite3'}"
        if self.broker_url is None:
            self.broker_url = f"sqla+sqlite:///{self.data_root / 'broker.sqlite3'}"
        return self

    @property
    def is_embedded(self) -> bool:
        """True when no broker server is configured: one process tree serves both queues."""
        return str(self.broker_url).startswith("sqla+")

    @property
    def longest_time_limit_s(self) -> int:
        return max(self.job_time_limits_s.values())


@lru_cache
def get_settings() -> Settings:
    """The process's settings, read once; tests build `Settings(...)` directly instead."""
    return Settings()
