"""Every /v1 route, found by walking the OpenAPI document so that a new route cannot be forgotten,
answers 401 without a valid key and 403 for every role it does not list in `x-roles`; a revoked key
stops working at the latest when the API's memory of it expires."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from app.api.auth import KEY_CACHE_TTL_S, KeyCache
from app.main import create_app
from service.db.models import JobKind, Role
from service.db.session import session_scope
from service.jobs import create_job
from service.keys import authenticate, revoke_key

METHODS = ("get", "post", "put", "patch", "delete")


def v1_operations(client) -> list[tuple[str, str, list[str] | None]]:
    document = client.app.openapi()
    return [
        (method, path, operation.get("x-roles"))
        for path, item in document["paths"].items()
        if path.startswith("/v1/")
        for method, operation in item.items()
        if method in METHODS
    ]


def call(client, method: str, path: str, headers: dict[str, str]):
    return client.request(method, re.sub(r"\{[^}]+\}", "x", path), headers=headers)


def test_the_walk_covers_every_resource(client):
    paths = {path for _, path, _ in v1_operations(client)}
    for resource in ("datasets", "plans", "trainings", "models", "predictions", "evaluations", "jobs"):
        assert any(path.startswith(f"/v1/{resource}") for path in paths), resource
    assert len(paths) >= 20


def test_every_route_refuses_a_missing_or_invalid_key(client):
    for method, path, _ in v1_operations(client):
        for headers in ({}, {"Authorization": "Bearer nnsvc_0000_nope"}):
            response = call(client, method, path, headers)
            assert response.status_code == 401, (method, path, response.text)
            assert response.headers["WWW-Authenticate"] == "Bearer"


def test_every_route_refuses_the_roles_it_does_not_list(client, keys):
    for method, path, roles in v1_operations(client):
        assert roles, f"{method} {path} has no role guard"
        assert "admin" in roles
        if method != "get":
            assert "viewer" not in roles, f"viewer may {method} {path}"
        for role in Role:
            status = call(client, method, path, keys[role]).status_code
            if role.value in roles:
                assert status not in (401, 403), (role, method, path, status)
            else:
                assert status == 403, (role, method, path, status)


def test_a_predictor_reads_only_its_own_jobs(client, keys, settings):
    token = keys[Role.predictor]["Authorization"].removeprefix("Bearer ")
    with session_scope(str(settings.database_url)) as session:
        predictor = authenticate(session, token)
        foreign = create_job(session, JobKind.predict, {})
        own = create_job(session, JobKind.predict, {}, api_key_id=predictor.id)
    listed = client.get("/v1/jobs", headers=keys[Role.predictor]).json()
    assert [job["id"] for job in listed["data"]] == [own.id]
    assert client.get(f"/v1/jobs/{own.id}", headers=keys[Role.predictor]).status_code == 200
    assert client.get(f"/v1/jobs/{foreign.id}", headers=keys[Role.predictor]).status_code == 403
    assert client.get(f"/v1/jobs/{foreign.id}", headers=keys[Role.viewer]).status_code == 200


def test_a_revoked_key_stops_working_once_its_cache_entry_expires(settings, keys):
    now = [0.0]
    app = create_app(settings)
    app.state.key_cache = KeyCache(ttl_s=KEY_CACHE_TTL_S, clock=lambda: now[0])
    token = keys[Role.admin]["Authorization"].removeprefix("Bearer ")
    with TestClient(app) as client:
        assert client.get("/v1/jobs", headers=keys[Role.admin]).status_code == 200
        with session_scope(str(settings.database_url)) as session:
            revoke_key(session, authenticate(session, token).id)
        assert client.get("/v1/jobs", headers=keys[Role.admin]).status_code == 200  # remembered
        now[0] += KEY_CACHE_TTL_S
        assert client.get("/v1/jobs", headers=keys[Role.admin]).status_code == 401
