"""Unversioned probes for orchestrators and monitoring: /healthz, /readyz and /metrics (no key needed)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from app.api.deps import CeleryDep, SessionDep, SettingsDep
from app.metrics import CONTENT_TYPE, render
from app.readiness import check_readiness

router = APIRouter(tags=["system"])


class Health(BaseModel):
    status: str = Field(examples=["ok"])


class ReadinessCheck(BaseModel):
    name: str = Field(examples=["workers"])
    is_ok: bool
    detail: str = Field(examples=["1 worker(s) seen: celery@host (cpu/gpu)"])


class Readiness(BaseModel):
    is_ready: bool
    checks: list[ReadinessCheck]


@router.get("/healthz")
def healthz() -> Health:
    """The process answers; nothing else is checked (see /readyz)."""
    return Health(status="ok")


@router.get("/readyz", responses={503: {"model": Readiness, "description": "a check failed"}})
async def readyz(settings: SettingsDep, celery: CeleryDep) -> Readiness:
    """Database reachable, schema at the migration head, broker reachable, a worker seen recently
    (a heartbeat under DATA_ROOT/workers or a running job's heartbeat). 503 names what failed."""
    checks = await run_in_threadpool(check_readiness, settings, celery)
    readiness = Readiness(
        is_ready=all(check.is_ok for check in checks),
        checks=[ReadinessCheck(name=c.name, is_ok=c.is_ok, detail=c.detail) for c in checks],
    )
    if not readiness.is_ready:
        return JSONResponse(readiness.model_dump(), status_code=503)  # type: ignore[return-value]
    return readiness


@router.get("/metrics", response_class=PlainTextResponse, responses={200: {"content": {CONTENT_TYPE: {}}}})
def metrics(request: Request, session: SessionDep) -> PlainTextResponse:
    """Prometheus text: jobs by kind and status, requests and latency by route."""
    return PlainTextResponse(render(request.app.state.request_stats, session), media_type=CONTENT_TYPE)
