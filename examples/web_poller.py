"""Web-client poller: watch many jobs cheaply with ETag / If-None-Match, as a dashboard page would.

Every GET /v1/jobs/{id} answer carries an ETag that changes whenever the job, one of its children or
its place in the queue changes. Sending it back in If-None-Match gets an empty 304 while nothing
changed, which costs the server a few index lookups instead of building the job: a page can poll
dozens of jobs every couple of seconds. This script polls a set of jobs that way, prints a line when
one changes, and counts the answers that were 304.

Needs Python 3.10+ and httpx (`pip install httpx`) and any key (`nnsvc keys create --role viewer`):

    python examples/web_poller.py --url http://127.0.0.1:8000 --key "$NNSVC_API_KEY" --latest 10
    python examples/web_poller.py --key "$NNSVC_API_KEY" 4f9c2d7e... 9a8b7c6d... --rounds 30

Without --rounds it stops once every job has finished. The last line is a JSON object with the counts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field

import httpx

FINAL = ("succeeded", "failed", "cancelled")


@dataclass
class Watched:
    """What the page shows of one job, and the ETag of that state."""

    job_id: str
    etag: str | None = None
    status: str = "unknown"
    line: str = ""


@dataclass
class Counts:
    polls: int = 0
    changed: int = 0
    not_modified: int = 0
    by_status: dict[int, int] = field(default_factory=dict)


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("job_ids", nargs="*", metavar="JOB_ID", help="jobs to watch")
    parser.add_argument("--latest", type=int, help="watch the N newest top-level jobs (GET /v1/jobs)")
    parser.add_argument("--url", default=os.environ.get("NNSVC_URL", "http://127.0.0.1:8000"), help="server")
    parser.add_argument("--key", default=os.environ.get("NNSVC_API_KEY"), help="any role's key")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between rounds (default: 2)")
    parser.add_argument(
        "--rounds", type=int, help="poll this many rounds (default: until every job finished)"
    )
    arguments = parser.parse_args(argv)
    if not arguments.key:
        parser.error("give --key or set NNSVC_API_KEY")
    if not arguments.job_ids and not arguments.latest:
        parser.error("name JOB_IDs or give --latest N")
    return arguments


def describe(job: dict) -> str:
    progress = job["progress"]
    where = (
        f" (place {job['queue_position']} in the {job['queue']} queue)" if job.get("queue_position") else ""
    )
    running = sum(child["status"] == "running" for child in job.get("children", []))
    children = f", {len(job['children'])} children ({running} running)" if job.get("children") else ""
    state = f"{job['kind']:<10} {job['status']:<9} {progress['fraction']:>4.0%}"
    return f"{state} {progress['message']}{where}{children}"


def poll(client: httpx.Client, watched: Watched, counts: Counts) -> None:
    """One conditional GET; a 304 leaves what the page shows untouched."""
    headers = {"If-None-Match": watched.etag} if watched.etag else {}
    response = client.get(f"/v1/jobs/{watched.job_id}", headers=headers)
    counts.polls += 1
    counts.by_status[response.status_code] = counts.by_status.get(response.status_code, 0) + 1
    if response.status_code == 304:
        counts.not_modified += 1
        return
    response.raise_for_status()
    job = response.json()
    counts.changed += 1
    watched.etag, watched.status, watched.line = response.headers.get("ETag"), job["status"], describe(job)
    print(f"{watched.job_id[:8]} {watched.line}")


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    with httpx.Client(base_url=arguments.url, headers={"Authorization": f"Bearer {arguments.key}"}) as client:
        try:
            job_ids = list(arguments.job_ids)
            if arguments.latest:
                listing = client.get("/v1/jobs", params={"parent_id": "none", "limit": arguments.latest})
                job_ids += [job["id"] for job in listing.raise_for_status().json()["data"]]
            jobs, counts, rounds = [Watched(job_id) for job_id in job_ids], Counts(), 0
            while True:
                for watched in jobs:
                    poll(client, watched, counts)
                rounds += 1
                is_done = all(watched.status in FINAL for watched in jobs)
                if (arguments.rounds is None and is_done) or rounds == arguments.rounds:
                    break
                time.sleep(arguments.interval)
        except httpx.HTTPError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    print(f"{counts.polls} polls in {rounds} round(s): {counts.not_modified} answered 304 Not Modified")
    print(json.dumps({"rounds": rounds, **vars(counts)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
