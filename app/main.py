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
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from app.api.auth import KeyCache
from app.api.main import include_api
from app.api.roles import READ_JOBS
from app.api.routes import system
from app.docs_pages import install_docs_pages
from app.errors import install_error_handlers
from app.housekeeping import housekeeping_loop
from app.metrics import RequestMetrics, RequestStats
from app.unchanged_polls import UnchangedJobPolls
from service import paths
from service.db.session import make_engine, session_factory
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
    that runs without transactions: BEGIN, ROLLBACK and reset round trips were most of a poll's
    database cost (each statement still sees committed data). One per URL and process."""
    if url.startswith("sqlite"):
        return session_factory(url)
    return sessionmaker(make_engine(url, autocommit=True), expire_on_commit=False)


def poll_session_factory(url: str) -> sessionmaker[Session]:
    """Sessions for UnchangedJobPolls, on one connection of their own: its queries run on the event
    loop, one after another, and must never wait for a pooled connection that a suspended request
    holds (that wait would block the loop and so the request holding it). No pre-ping, which would
    double a poll's round trips: a dropped connection fails one poll, which then takes the routed path."""
    return sessionmaker(make_engine(url, pool_size=1, max_overflow=0, autocommit=True, pre_ping=False))


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(
        title="nnsvc", version="1", description=DESCRIPTION, lifespan=lifespan, docs_url=None, redoc_url=None
    )
    app.state.settings = settings
    app.state.sessions = session_factory(str(settings.database_url))
    app.state.read_sessions = read_session_factory(str(settings.database_url))
    app.state.key_cache = KeyCache()
    app.state.celery = make_celery(settings)
    app.state.request_stats = RequestStats()
    install_error_handlers(app)
    # Innermost: CORS headers and metrics apply to the shortcut's 304s as to every other answer.
    app.add_middleware(
        UnchangedJobPolls,
        sessions=poll_session_factory(str(settings.database_url)),
        key_cache=app.state.key_cache,
        readers=READ_JOBS.dependency,
    )
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
    install_docs_pages(app)
    return app
