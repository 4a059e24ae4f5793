"""What a runner gets: the claimed job, the settings, and the two callbacks core takes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from celery import Celery
from sqlalchemy.orm import Session

from core.errors import ProblemsError
from core.parallel import ProgressCallback
from service.db.session import session_scope
from service.paths import absolute, relative
from service.settings import Settings
from worker.progress import Claim


class JobInputError(ProblemsError):
    """The job's parameters or the rows they name do not allow the job to run."""

    def __init__(self, problems: list[str] | str, hint: str = "") -> None:
        super().__init__(problems)
        self.hint = hint


@dataclass(frozen=True)
class JobContext:
    settings: Settings
    celery: Celery
    claim: Claim
    progress: ProgressCallback
    should_stop: Callable[[], bool]

    @property
    def job_id(self) -> str:
        return self.claim.job_id

    @property
    def params(self) -> dict[str, Any]:
        return self.claim.params

    @contextmanager
    def session(self) -> Iterator[Session]:
        with session_scope(str(self.settings.database_url)) as session:
            yield session

    def path(self, stored: str) -> Path:
        return absolute(self.settings, stored)

    def stored(self, path: Path) -> str:
        return relative(self.settings, path)

    def param(self, name: str) -> Any:
        """A required parameter; a missing one is the caller's mistake, reported by name."""
        if name not in self.params:
            raise JobInputError(f"job parameter {name!r} is missing")
        return self.params[name]
