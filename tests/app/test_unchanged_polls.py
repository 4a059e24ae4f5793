"""The 304 shortcut for polls: it answers an unchanged job's poll without the routed app, and leaves
every other request (changed job, unknown key, foreign job, other paths) to the route's own answer."""

from __future__ import annotations

import asyncio

from fastapi.testclient import TestClient

from app.api.auth import Caller, KeyCache
from app.api.roles import READ_JOBS
from app.main import create_app, poll_session_factory
from app.operations.jobs import job_version
from app.unchanged_polls import UnchangedJobPolls
from service.db.models import JobKind, JobStatus, Role
from service.db.session import session_scope
from service.jobs import create_job
from service.keys import create_key
from tests.app.test_jobs import add_job, change_job


def poll(middleware: UnchangedJobPolls, path: str, headers: dict[str, str]) -> list[dict]:
    """The messages the middleware sends for one GET."""
    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "query_string": b"",
        "headers": [(name.lower().encode(), value.encode()) for name, value in headers.items()],
    }
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b""}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(middleware(scope, receive, send))
    return sent


def test_an_unchanged_poll_is_answered_without_the_routed_app(settings):
    with session_scope(str(settings.database_url)) as session:
        job_id = create_job(session, JobKind.plan, {}).id
        key, token = create_key(session, Role.viewer, "poller")
        caller = Caller(key.id, key.role)
    cache = KeyCache()
    cache.put(token, caller)
    routed: list[str] = []

    async def routed_app(scope, receive, send) -> None:
        routed.append(scope["path"])

    middleware = UnchangedJobPolls(
        routed_app,
        sessions=poll_session_factory(str(settings.database_url)),
        key_cache=cache,
        readers=READ_JOBS.dependency,
    )
    with session_scope(str(settings.database_url)) as session:
        etag = job_version(session, job_id).etag
    bearer = {"Authorization": f"Bearer {token}"}
    answered = poll(middleware, f"/v1/jobs/{job_id}", {**bearer, "If-None-Match": f'"stale", {etag}'})
    assert answered[0]["status"] == 304 and (b"etag", etag.encode()) in answered[0]["headers"]
    assert routed == []
    # Everything else reaches the routed app: no ETag, another ETag, an uncached key, another path.
    assert poll(middleware, f"/v1/jobs/{job_id}", bearer) == []
    assert poll(middleware, f"/v1/jobs/{job_id}", {**bearer, "If-None-Match": '"other"'}) == []
    stranger = {"Authorization": "Bearer nope", "If-None-Match": etag}
    assert poll(middleware, f"/v1/jobs/{job_id}", stranger) == []
    assert poll(middleware, f"/v1/jobs/{job_id}/log", {**bearer, "If-None-Match": etag}) == []
    change_job(settings, job_id, status=JobStatus.running)
    assert poll(middleware, f"/v1/jobs/{job_id}", {**bearer, "If-None-Match": etag}) == []
    assert len(routed) == 5


def test_a_predictor_gets_no_304_for_a_job_it_did_not_start(client, keys, settings):
    job_id = add_job(settings, JobKind.train)
    etag = client.get(f"/v1/jobs/{job_id}", headers=keys[Role.viewer]).headers["ETag"]
    predictor = keys[Role.predictor]
    client.get("/v1/models", headers=predictor)  # the predictor's key is now in the key cache
    foreign = client.get(f"/v1/jobs/{job_id}", headers={**predictor, "If-None-Match": etag})
    assert foreign.status_code == 403 and "only the jobs it started" in foreign.json()["detail"][0]["problem"]
    unknown = client.get(f"/v1/jobs/{job_id}", headers={"Authorization": "Bearer x", "If-None-Match": etag})
    assert unknown.status_code == 401


def test_shortcut_answers_are_counted_and_carry_cors_headers(settings, keys):
    allowed = settings.model_copy(update={"cors_origins": ["https://viewer.example"]})
    job_id = add_job(settings)
    headers = {**keys[Role.viewer], "Origin": "https://viewer.example"}
    with TestClient(create_app(allowed)) as client:
        etag = client.get(f"/v1/jobs/{job_id}", headers=headers).headers["ETag"]
        for _ in range(3):
            unchanged = client.get(f"/v1/jobs/{job_id}", headers={**headers, "If-None-Match": etag})
            assert unchanged.status_code == 304
            assert unchanged.headers["access-control-allow-origin"] == "https://viewer.example"
            assert "etag" in unchanged.headers["access-control-expose-headers"].lower()
        metrics = client.get("/metrics").text
    assert 'nnsvc_http_requests_total{method="GET",route="/v1/jobs/{job_id}",status="304"} 3' in metrics
