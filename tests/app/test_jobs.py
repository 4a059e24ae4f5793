"""Jobs over HTTP: ETag and 304 for cheap polling, listing with filters and pages, cancelling, the
event stream, the log read from a cursor, artifacts."""

from __future__ import annotations

import json
import threading
import time

import pytest

from app.api.routes import jobs as job_routes
from service import paths
from service.db.models import Job, JobKind, JobStatus, Role
from service.db.session import session_scope
from service.jobs import create_job


def add_job(settings, kind=JobKind.plan, **fields) -> str:
    with session_scope(str(settings.database_url)) as session:
        job = create_job(session, kind, {}, parent_id=fields.pop("parent_id", None))
        for name, value in fields.items():
            setattr(job, name, value)
        return job.id


def change_job(settings, job_id: str, **fields) -> None:
    with session_scope(str(settings.database_url)) as session:
        job = session.get(Job, job_id)
        for name, value in fields.items():
            setattr(job, name, value)


def test_etag_answers_304_until_the_job_or_a_child_changes(client, keys, settings):
    headers = keys[Role.viewer]
    parent = add_job(settings, JobKind.train, status=JobStatus.running)
    first = client.get(f"/v1/jobs/{parent}", headers=headers)
    etag = first.headers["ETag"]
    again = client.get(f"/v1/jobs/{parent}", headers={**headers, "If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["ETag"] == etag
    child = add_job(settings, JobKind.train_fold, parent_id=parent)
    with_child = client.get(f"/v1/jobs/{parent}", headers={**headers, "If-None-Match": etag})
    assert with_child.status_code == 200 and with_child.json()["children"][0]["id"] == child
    etag = with_child.headers["ETag"]
    change_job(settings, child, progress={"stage": "train", "fraction": 0.5, "epoch": 3})
    progressed = client.get(f"/v1/jobs/{parent}", headers={**headers, "If-None-Match": etag})
    assert progressed.status_code == 200
    assert progressed.json()["children"][0]["progress"]["epoch"] == 3
    etag = progressed.headers["ETag"]
    change_job(settings, parent, progress={"stage": "train", "fraction": 0.6})
    assert client.get(f"/v1/jobs/{parent}", headers={**headers, "If-None-Match": etag}).status_code == 200


def test_queue_position_moves_and_changes_the_etag(client, keys, settings):
    headers = keys[Role.viewer]
    first, second = add_job(settings), add_job(settings)
    answer = client.get(f"/v1/jobs/{second}", headers=headers)
    assert answer.json()["queue_position"] == 2
    change_job(settings, first, status=JobStatus.running)
    moved = client.get(f"/v1/jobs/{second}", headers={**headers, "If-None-Match": answer.headers["ETag"]})
    assert moved.status_code == 200 and moved.json()["queue_position"] == 1


def test_listing_filters_and_pages(client, keys, settings):
    parent = add_job(settings, JobKind.train)
    children = [add_job(settings, JobKind.train_fold, parent_id=parent) for _ in range(3)]
    add_job(settings, JobKind.predict, status=JobStatus.succeeded)
    headers = keys[Role.trainer]
    page = client.get("/v1/jobs", params={"parent_id": parent, "limit": 2}, headers=headers).json()
    assert page["count"] == 3 and len(page["data"]) == 2
    rest = client.get(
        "/v1/jobs", params={"parent_id": parent, "limit": 2, "offset": 2}, headers=headers
    ).json()
    assert {job["id"] for job in page["data"] + rest["data"]} == set(children)
    top = client.get("/v1/jobs", params={"parent_id": "none", "kind": "train"}, headers=headers).json()
    assert [job["id"] for job in top["data"]] == [parent]
    done = client.get("/v1/jobs", params={"status": "succeeded"}, headers=headers).json()
    assert done["count"] == 1 and done["data"][0]["kind"] == "predict"
    bad = client.get("/v1/jobs", params={"status": "sleeping", "limit": 0}, headers=headers)
    assert bad.status_code == 422 and len(bad.json()["detail"]) == 2


def test_cancel_a_queued_job_with_its_children(client, keys, settings):
    parent = add_job(settings, JobKind.train)
    child = add_job(settings, JobKind.train_fold, parent_id=parent, status=JobStatus.running)
    response = client.post(f"/v1/jobs/{parent}/cancel", headers=keys[Role.trainer])
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "cancelled" and body["is_cancel_requested"]
    assert body["children"][0]["status"] == "running"  # its worker stops it and marks it cancelled
    with session_scope(str(settings.database_url)) as session:
        assert session.get(Job, child).is_cancel_requested


def test_the_log_is_read_from_a_cursor(client, keys, settings):
    headers = keys[Role.viewer]
    job = add_job(settings, status=JobStatus.running)
    log = paths.job_dir(settings, job) / "log.txt"
    log.parent.mkdir(parents=True)
    log.write_text("epoch 0\nepoch 1\nepo")
    first = client.get(f"/v1/jobs/{job}/log", headers=headers).json()
    assert first["text"] == "epoch 0\nepoch 1\n" and not first["is_complete"]  # half a line waits
    with log.open("a") as stream:
        stream.write("ch 2\ndone")
    second = client.get(
        f"/v1/jobs/{job}/log", params={"cursor": first["next_cursor"]}, headers=headers
    ).json()
    assert second["text"] == "epoch 2\n"
    change_job(settings, job, status=JobStatus.succeeded)
    last = client.get(f"/v1/jobs/{job}/log", params={"cursor": second["next_cursor"]}, headers=headers).json()
    assert last["text"] == "done" and last["is_complete"] and last["next_cursor"] == log.stat().st_size
    past = client.get(f"/v1/jobs/{job}/log", params={"cursor": 10_000}, headers=headers)
    assert past.status_code == 422 and past.json()["detail"][0]["loc"] == ["query", "cursor"]


def test_artifacts_are_served_from_the_result_and_nowhere_else(client, keys, settings):
    job = add_job(settings, status=JobStatus.succeeded)
    picture = paths.job_dir(settings, job) / "progress.png"
    picture.parent.mkdir(parents=True)
    picture.write_bytes(b"\x89PNG fake")
    change_job(
        settings,
        job,
        result={
            "artifacts": {"progress.png": paths.relative(settings, picture), "secret": "../../etc/passwd"}
        },
    )
    headers = keys[Role.viewer]
    assert client.get(f"/v1/jobs/{job}/artifacts/progress.png", headers=headers).content == b"\x89PNG fake"
    assert client.get(f"/v1/jobs/{job}/artifacts/secret", headers=headers).status_code == 404
    missing = client.get(f"/v1/jobs/{job}/artifacts/summary.json", headers=headers)
    assert missing.status_code == 404 and "progress.png" in missing.json()["message"]


@pytest.fixture
def fast_events(monkeypatch):
    monkeypatch.setattr(job_routes, "EVENT_POLL_INTERVAL_S", 0.05)


def test_the_event_stream_sends_each_change_and_ends_at_a_final_status(
    client, keys, settings, fast_events, monkeypatch
):
    job = add_job(settings)
    first_read = threading.Event()
    snapshot = job_routes._snapshot

    def snapshot_then_signal(*args):
        result = snapshot(*args)
        first_read.set()
        return result

    monkeypatch.setattr(job_routes, "_snapshot", snapshot_then_signal)

    def worker() -> None:
        first_read.wait(timeout=30)  # the stream has read the job as it was before any change
        for fraction in (0.25, 0.5, 1.0):
            time.sleep(0.3)
            change_job(
                settings, job, status=JobStatus.running, progress={"stage": "train", "fraction": fraction}
            )
        time.sleep(0.3)
        change_job(settings, job, status=JobStatus.succeeded)

    thread = threading.Thread(target=worker)
    thread.start()
    response = client.get(f"/v1/jobs/{job}/events", headers=keys[Role.viewer])
    thread.join()
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [block for block in response.text.split("\n\n") if block]
    seen = [json.loads(block.split("data: ", 1)[1]) for block in events if "event: job" in block]
    fractions = [state["progress"]["fraction"] for state in seen]
    # One event per change seen by a poll: all five here, unless a busy machine stalled a poll.
    assert len(seen) >= 3 and fractions[0] == 0.0 and fractions == sorted(fractions)
    assert seen[-1]["status"] == "succeeded" and seen[-1]["progress"]["fraction"] == 1.0
    assert [state["revision"] for state in seen] == sorted({state["revision"] for state in seen})
    assert events[-1] == 'event: end\ndata: {"status": "succeeded"}'
    ids = [
        line.removeprefix("id: ")
        for block in events
        for line in block.splitlines()
        if line.startswith("id: ")
    ]
    resumed = client.get(f"/v1/jobs/{job}/events", headers={**keys[Role.viewer], "Last-Event-ID": ids[-1]})
    assert resumed.text == 'event: end\ndata: {"status": "succeeded"}\n\n'
