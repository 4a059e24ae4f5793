"""Typed dependencies every route shares: settings, a database session, the Celery client, the caller's
API key, role guards, and "load by id or 404" for each resource (written once here, never in a route).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, TypeVar

from celery import Celery
from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app.api.auth import Caller, KeyCache, look_up
from app.errors import Forbidden, NotFound, Unauthorized
from app.operations.jobs import JobVersion, job_version
from app.operations.models import resolve_model
from app.schemas.models import MODEL_REF_DESCRIPTION
from service.db.base import Base
from service.db.models import Dataset, Evaluation, Job, Model, Plan, Prediction, Role
from service.settings import Settings


async def get_app_settings(request: Request) -> Settings:
    """The settings the app was built with (`create_app(settings)`; the cached `get_settings()` by
    default). Not `Depends(get_settings)` with `dependency_overrides` in tests: once any override is
    set, FastAPI rebuilds the dependency graph on every request, which halved the polling rate."""
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(get_app_settings)]


async def get_session(request: Request) -> AsyncIterator[Session]:
    """A session per request, made and closed without a thread hop (neither touches the database until
    a query runs; closing returns the connection to the pool). GET requests only read: they get a
    session of `read_sessions` (see app.main.read_session_factory)."""
    factory = (
        request.app.state.read_sessions if request.method in ("GET", "HEAD") else request.app.state.sessions
    )
    session = factory()
    try:
        yield session
    finally:
        session.close()


# Closed when the route returns, before a streamed answer (events, files) is sent: no connection is
# held for the length of a download or an event stream.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


async def get_celery(request: Request) -> Celery:
    return request.app.state.celery


CeleryDep = Annotated[Celery, Depends(get_celery)]

bearer = HTTPBearer(
    auto_error=False,
    description="An API key from `nnsvc keys create --role ROLE`, sent as `Authorization: Bearer <key>`.",
)


async def get_caller(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Caller:
    if credentials is None:
        raise Unauthorized("send the API key as `Authorization: Bearer <key>`")
    cache: KeyCache = request.app.state.key_cache
    caller = cache.get(credentials.credentials)
    if caller is None:
        caller = await run_in_threadpool(look_up, request.app.state.sessions, credentials.credentials)
        if caller is None:
            raise Unauthorized("the API key is unknown or revoked")
        cache.put(credentials.credentials, caller)
    return caller


ApiKeyDep = Annotated[Caller, Depends(get_caller)]


class RoleGuard:
    """A route dependency letting through admin and the roles named; the OpenAPI document lists them."""

    def __init__(self, *roles: Role) -> None:
        self.roles = frozenset({Role.admin, *roles})

    async def __call__(self, key: ApiKeyDep) -> None:
        if key.role not in self.roles:
            allowed = ", ".join(sorted(self.roles))
            raise Forbidden(
                f"a {key.role} key may not do this; allowed roles: {allowed}", loc=["header", "Authorization"]
            )


Row = TypeVar("Row", bound=Base)


def load_or_404(session: Session, model: type[Row], object_id: str, loc: str) -> Row:
    found = session.get(model, object_id)
    if found is None:
        what = model.__tablename__.removesuffix("s").replace("_", " ")
        raise NotFound(f"no {what} has the id {object_id!r}", loc=["path", loc])
    return found


def load_dataset(dataset_id: str, session: SessionDep) -> Dataset:
    return load_or_404(session, Dataset, dataset_id, "dataset_id")


def load_plan(plan_id: str, session: SessionDep) -> Plan:
    return load_or_404(session, Plan, plan_id, "plan_id")


def load_prediction(prediction_id: str, session: SessionDep, key: ApiKeyDep) -> Prediction:
    prediction = load_or_404(session, Prediction, prediction_id, "prediction_id")
    check_job_access(session.get_one(Job, prediction.job_id).api_key_id, key)
    return prediction


def load_evaluation(evaluation_id: str, session: SessionDep) -> Evaluation:
    return load_or_404(session, Evaluation, evaluation_id, "evaluation_id")


def load_model(
    model_ref: Annotated[str, Path(description=MODEL_REF_DESCRIPTION, examples=["liver:latest"])],
    session: SessionDep,
) -> Model:
    return resolve_model(session, model_ref, ["path", "model_ref"])


def load_job(job_id: str, session: SessionDep, key: ApiKeyDep) -> Job:
    job = load_or_404(session, Job, job_id, "job_id")
    check_job_access(job.api_key_id, key)
    return job


def load_job_version(job_id: str, session: SessionDep, key: ApiKeyDep) -> JobVersion:
    """The cheap form of JobDep for conditional GETs: one query, no ORM row."""
    version = job_version(session, job_id)
    if version is None:
        raise NotFound(f"no job has the id {job_id!r}", loc=["path", "job_id"])
    check_job_access(version.api_key_id, key)
    return version


def may_read_job(api_key_id: int | None, key: Caller) -> bool:
    """A predictor reads only the jobs its own key started; every other role reads every job."""
    return key.role != Role.predictor or api_key_id == key.key_id


def check_job_access(api_key_id: int | None, key: Caller) -> None:
    if not may_read_job(api_key_id, key):
        raise Forbidden("a predictor key reads only the jobs it started", loc=["path", "job_id"])


DatasetDep = Annotated[Dataset, Depends(load_dataset)]
PlanDep = Annotated[Plan, Depends(load_plan)]
PredictionDep = Annotated[Prediction, Depends(load_prediction)]
EvaluationDep = Annotated[Evaluation, Depends(load_evaluation)]
ModelDep = Annotated[Model, Depends(load_model)]
JobDep = Annotated[Job, Depends(load_job)]
JobVersionDep = Annotated[JobVersion, Depends(load_job_version)]
