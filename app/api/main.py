"""Mounts one router per resource under /v1, each documented with the errors every route may answer
and the roles it lets through."""

from __future__ import annotations

from fastapi import FastAPI

from app.api.openapi import document_roles
from app.api.routes import datasets, evaluations, jobs, models, plans, predictions, trainings
from app.schemas.common import ErrorBody

ERROR_RESPONSES: dict[int | str, dict] = {
    401: {"model": ErrorBody, "description": "no key, or an unknown or revoked one"},
    403: {"model": ErrorBody, "description": "the key's role may not do this"},
    404: {"model": ErrorBody, "description": "a named resource does not exist"},
    422: {"model": ErrorBody, "description": "the request has problems; every one is listed"},
}

RESOURCE_ROUTERS = tuple(
    module.router for module in (datasets, plans, trainings, models, predictions, evaluations, jobs)
)
for router in RESOURCE_ROUTERS:
    document_roles(router)


def include_api(app: FastAPI) -> None:
    """Each resource router directly under /v1: one level of included routers less to match through."""
    for router in RESOURCE_ROUTERS:
        app.include_router(router, prefix="/v1", responses=ERROR_RESPONSES)
