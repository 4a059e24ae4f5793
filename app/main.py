"""The FastAPI application factory.

`create_app(settings)` builds one app for the given settings (tests pass their own; `nnsvc api` and
`uvicorn --factory app.main:create_app` use the environment's). At startup the app refuses a database
whose schema is not at this code's migration head, makes the staging folder, and starts housekeeping
(removal of predictions past their retention). It never imports torch.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import lru_cache

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from app.api.auth import KeyCache
from app.api.main import include_api
from app.api.routes import system
from app.errors import install_error_handlers
from app.housekeeping import housekeeping_loop
from app.metrics import RequestMetrics, RequestStats
from service import paths
from service.db.session import session_factory
from service.migrations import ensure_schema_current
from service.queue import make_celery
from service.settings import Settings, get_settings

DESCRIPTION = """The nnU-Net method as a service: upload a dataset, plan, train, predict and evaluate.

Every request to /v1 needs `Authorization: Bearer <key>` (`nnsvc keys create --role ROLE`). Long work
answers 202 with a job: poll GET /v1/jobs/{id} (send its ETag back in If-None-Match to get 304 while
nothing changed) or follow GET /v1/jobs/{id}/events. Errors always read
`{"message": ..., "detail": [{"loc": [...], "problem": ..., "kind": ...}]}` and list every problem found.
"""


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    await run_in_threadpool(ensure_schema_current, str(settings.database_url))
    paths.staging_dir(settings).mkdir(parents=True, exist_ok=True)
    housekeeping = asyncio.create_task(housekeeping_loop(settings))
    try:
        yield
    finally:
        housekeeping.cancel()


@lru_cache(maxsize=8)
def read_session_factory(url: str) -> sessionmaker[Session]:
    """Sessions for GET requests, which only read. On PostgreSQL they come from an engine of their own
    that runs without transactions: no BEGIN, ROLLBACK or reset round trips, which were most of a
    poll's database cost (each statement still sees committed data). SQLite's driver opens no
    transaction for a SELECT anyway. One per URL and process, like service.db.session.get_engine."""
    if url.startswith("sqlite"):
        return session_factory(url)
    engine = create_engine(
        url,
        isolation_level="AUTOCOMMIT",
        pool_pre_ping=True,
        pool_reset_on_return=None,
        pool_size=10,
        max_overflow=20,
    )
    return sessionmaker(engine, expire_on_commit=False)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(title="nnsvc", version="1", description=DESCRIPTION, lifespan=lifespan)
    app.state.settings = settings
    app.state.sessions = session_factory(str(settings.database_url))
    app.state.read_sessions = read_session_factory(str(settings.database_url))
    app.state.key_cache = KeyCache()
    app.state.celery = make_celery(settings)
    app.state.request_stats = RequestStats()
    install_error_handlers(app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["ETag"],
        )
    app.add_middleware(RequestMetrics, stats=app.state.request_stats)
    include_api(app)
    app.include_router(system.router)
    return app
