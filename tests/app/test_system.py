"""The application around the routes: probes, metrics, startup checks, housekeeping, CORS, the OpenAPI
document, and that serving never imports torch."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from app.housekeeping import remove_expired_predictions
from app.main import create_app
from service import paths
from service.db.base import utc_now
from service.db.models import Job, JobKind, JobStatus, Prediction, Role
from service.db.session import session_scope
from service.jobs import create_job
from service.migrations import SchemaOutOfDateError
from service.workers import record_worker
from tests.app.support import add_model


def test_health_and_readiness(client, settings):
    assert client.get("/healthz").json() == {"status": "ok"}
    waiting = client.get("/readyz")
    assert waiting.status_code == 503
    checks = {check["name"]: check for check in waiting.json()["checks"]}
    assert [name for name, check in checks.items() if not check["is_ok"]] == ["workers"]
    record_worker(settings, "celery@box", ("cpu", "gpu"))
    ready = client.get("/readyz")
    assert ready.status_code == 200 and "celery@box (cpu/gpu)" in ready.text


def test_readiness_names_an_unreachable_broker(settings):
    elsewhere = settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0"})
    with TestClient(create_app(elsewhere)) as client:
        checks = {check["name"]: check for check in client.get("/readyz").json()["checks"]}
    assert not checks["broker"]["is_ok"] and checks["database"]["is_ok"]


def test_metrics_count_requests_by_route_and_jobs_by_status(client, keys, settings):
    with session_scope(str(settings.database_url)) as session:
        create_job(session, JobKind.predict, {})
    client.get("/v1/jobs/abc", headers=keys[Role.viewer])
    client.get("/v1/jobs/def", headers=keys[Role.viewer])
    text = client.get("/metrics").text
    assert 'nnsvc_jobs{kind="predict",status="queued"} 1' in text
    assert 'nnsvc_http_requests_total{method="GET",route="/v1/jobs/{job_id}",status="404"} 2' in text
    assert 'nnsvc_http_request_duration_seconds_count{method="GET",route="/v1/jobs/{job_id}"} 2' in text


def test_the_server_refuses_a_database_without_the_current_schema(settings):
    (settings.data_root / "nnsvc.sqlite3").unlink()
    with pytest.raises(SchemaOutOfDateError, match="nnsvc migrate"), TestClient(create_app(settings)):
        pass


def test_old_predictions_are_removed_with_their_files(settings):
    model = add_model(settings)
    kept_for = settings.model_copy(update={"prediction_retention_days": 7.0})
    ids = []
    with session_scope(str(settings.database_url)) as session:
        for age_days, status in ((8, JobStatus.succeeded), (8, JobStatus.running), (1, JobStatus.succeeded)):
            job = create_job(session, JobKind.predict, {})
            job.status = status
            prediction = Prediction(
                model_id=model.id, job_id=job.id, path="", created_at=utc_now() - timedelta(days=age_days)
            )
            session.add(prediction)
            session.flush()
            prediction.path = paths.relative(settings, paths.prediction_dir(settings, prediction.id))
            paths.prediction_dir(settings, prediction.id).mkdir(parents=True)
            ids.append(prediction.id)
    assert remove_expired_predictions(kept_for) == 1
    with session_scope(str(settings.database_url)) as session:
        assert [session.get(Prediction, pid) is not None for pid in ids] == [False, True, True]
        assert session.query(Job).count() == 2
    assert [paths.prediction_dir(settings, pid).exists() for pid in ids] == [False, True, True]


def test_cors_allows_the_configured_origins_only(settings):
    allowed = settings.model_copy(update={"cors_origins": ["https://viewer.example"]})
    with TestClient(create_app(allowed)) as client:
        preflight = {"Access-Control-Request-Method": "GET"}
        good = client.options("/v1/jobs", headers={"Origin": "https://viewer.example", **preflight})
        bad = client.options("/v1/jobs", headers={"Origin": "https://evil.example", **preflight})
    assert good.headers["access-control-allow-origin"] == "https://viewer.example"
    assert "access-control-allow-origin" not in bad.headers


def test_the_openapi_document_describes_bodies_errors_and_examples(client):
    document = client.app.openapi()
    upload = document["paths"]["/v1/datasets/upload"]["post"]
    schema = upload["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert schema["properties"]["archive"]["format"] == "binary" and "archive" in schema["required"]
    assert "Roles: admin, trainer." in upload["description"]
    for code in ("401", "403", "422"):
        assert upload["responses"][code]["content"]["application/json"]["schema"]["$ref"].endswith(
            "ErrorBody"
        )
    components = document["components"]["schemas"]
    assert (
        components["ErrorBody"]["examples"] and components["JobProgress"]["properties"]["eta_s"]["examples"]
    )
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def test_serving_never_imports_torch():
    code = "import sys, app.main; app.main.create_app(); print('torch' in sys.modules)"
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert completed.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("page", "asset"), [("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")]
)
def test_docs_pages_load_their_scripts_from_this_server(client, page, asset):
    html = client.get(page)
    assert html.status_code == 200 and "/openapi.json" in html.text
    assert f"/docs-assets/{asset}" in html.text
    assert "cdn.jsdelivr" not in html.text and "fonts.googleapis" not in html.text
    script = client.get(f"/docs-assets/{asset}")
    assert script.status_code == 200 and len(script.content) > 500_000
