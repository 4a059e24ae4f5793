"""examples/web_poller.py against the live server: polling with If-None-Match gets 304 while a job is
unchanged, and the poller follows running jobs until they finish."""

from __future__ import annotations

import json

import httpx

from service.db.models import Role
from tests.examples.conftest import LiveService, run_example


def poll(live_service: LiveService, *arguments: str) -> tuple[dict, str]:
    result = run_example(
        "web_poller.py", "--url", live_service.url, "--key", live_service.keys[Role.viewer], *arguments
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout.splitlines()[-1]), result.stdout


def test_an_unchanged_job_answers_304_after_the_first_poll(live_service: LiveService) -> None:
    counts, _ = poll(live_service, live_service.training_job_id, "--rounds", "4", "--interval", "0.05")
    assert (counts["polls"], counts["changed"], counts["not_modified"]) == (4, 1, 3)
    assert counts["by_status"] == {"200": 1, "304": 3}


def test_the_poller_follows_the_newest_job_until_it_finishes(live_service: LiveService) -> None:
    study = live_service.test_images[-1]
    with study.open("rb") as image:
        answer = httpx.post(
            f"{live_service.url}/v1/predictions",
            headers={"Authorization": f"Bearer {live_service.keys[Role.predictor]}"},
            data={"model": live_service.model, "case_id": "polled"},
            files=[("channels", (study.name, image))],
            timeout=60,
        )
    job_id = answer.raise_for_status().json()["job"]["id"]
    counts, out = poll(live_service, "--latest", "1", "--interval", "0.2")
    lines = [line for line in out.splitlines() if line.startswith(job_id[:8])]
    assert lines and "succeeded" in lines[-1], out
    assert counts["polls"] == counts["changed"] + counts["not_modified"]
