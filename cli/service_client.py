"""The demo's HTTP client of the nnsvc API: JSON calls whose refusals become readable errors, jobs
followed over their event stream, and downloads.

Refusals keep the server's words: its message and every problem it listed become the error's
`problems`, so `nnsvc demo` prints them as any other command's mistakes. A failed job raises with the
job's own error and hint.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from core.errors import ProblemsError

JobView = dict[str, Any]
# The stream sends a keep-alive comment every 15 s; a read silent for this long means a dead connection.
STREAM_READ_TIMEOUT_S = 60.0
STREAM_RECONNECTS = 5


class ServiceError(ProblemsError):
    """The service refused a request, or could not be reached."""

    hint = "see the server log for what went wrong"


class JobFailedError(ProblemsError):
    """A job ended failed or cancelled; `hint` is the job's own advice."""

    def __init__(self, job: JobView) -> None:
        error = job.get("error") or {}
        headline = f"{job['kind']} job {job['id']} {job['status']}: {error.get('message', '')}".rstrip(": ")
        super().__init__([headline, *error.get("problems", [])])
        self.hint = error.get("hint") or "read the job's log: GET /v1/jobs/{id}/log"


@dataclass(frozen=True)
class ServerSentEvent:
    name: str
    data: str
    id: str | None


def parse_events(lines: Iterable[str]) -> Iterator[ServerSentEvent]:
    """Events from a text/event-stream body, one line at a time (comments are keep-alives)."""
    name, data, event_id = "message", [], None
    for line in lines:
        if not line:
            if data:
                yield ServerSentEvent(name, "\n".join(data), event_id)
            name, data = "message", []
        elif not line.startswith(":"):
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
            elif field == "id":
                event_id = value


def refusal(response: httpx.Response) -> ServiceError:
    """The server's error body as problems: its message, or one line per problem it listed."""
    where = f"{response.request.method} {response.request.url.path} answered {response.status_code}"
    try:
        body = response.json()
        problems = [item["problem"] for item in body.get("detail") or []] or [body["message"]]
    except (ValueError, KeyError, TypeError, AttributeError):
        problems = [response.text[:300] or response.reason_phrase]
    return ServiceError([f"{where}: {problem}" for problem in problems])


class ServiceClient:
    """Calls on one server with one API key; close it (or use `with`) to free the connections."""

    def __init__(self, url: str, key: str, timeout_s: float = 120.0) -> None:
        self.http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=timeout_s)

    def __enter__(self) -> ServiceClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.http.close()

    def call(self, method: str, path: str, **request: Any) -> Any:
        """The JSON answer of a request (None for an empty one); a 4xx or 5xx raises ServiceError."""
        try:
            response = self.http.request(method, path, **request)
        except httpx.TransportError as error:
            raise ServiceError(f"cannot reach the server at {self.http.base_url}: {error}") from error
        if response.is_error:
            raise refusal(response)
        return response.json() if response.content else None

    def follow(self, job_id: str, on_update: Callable[[JobView], None]) -> JobView:
        """Follow the job's event stream until it ends, calling `on_update` with each new state of
        the job (children included); reconnects from the last event when the stream drops. Returns
        the finished job; raises JobFailedError unless it succeeded."""
        last_event: str | None = None
        for _ in range(STREAM_RECONNECTS + 1):
            headers = {"Last-Event-ID": last_event} if last_event else {}
            timeout = httpx.Timeout(10.0, read=STREAM_READ_TIMEOUT_S)
            try:
                with self.http.stream(
                    "GET", f"/v1/jobs/{job_id}/events", headers=headers, timeout=timeout
                ) as response:
                    if response.is_error:
                        response.read()
                        raise refusal(response)
                    for event in parse_events(response.iter_lines()):
                        if event.name == "job":
                            last_event = event.id
                            on_update(json.loads(event.data))
                        elif event.name == "end":
                            return self.finished(job_id)
            except httpx.TransportError:
                time.sleep(1.0)
        raise ServiceError(f"the event stream of job {job_id} dropped {STREAM_RECONNECTS + 1} times")

    def finished(self, job_id: str) -> JobView:
        job: JobView = self.call("GET", f"/v1/jobs/{job_id}")
        if job["status"] != "succeeded":
            raise JobFailedError(job)
        return job

    def download(self, path: str, destination: Path) -> Path:
        """Stream a file to `destination`, which appears only once complete."""
        destination.parent.mkdir(parents=True, exist_ok=True)
        partial = destination.with_name(f".{destination.name}.partial")
        try:
            with self.http.stream("GET", path) as response:
                if response.is_error:
                    response.read()
                    raise refusal(response)
                with partial.open("wb") as out:
                    for chunk in response.iter_bytes():
                        out.write(chunk)
        except httpx.TransportError as error:
            raise ServiceError(f"download of {path} broke off: {error}") from error
        partial.replace(destination)
        return destination
