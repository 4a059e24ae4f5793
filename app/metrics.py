"""Prometheus text exposition without a client library: request counts and latency histograms per
route template (recorded by a plain ASGI middleware, cheap enough for the polling path) and job counts
by kind and status (one GROUP BY per scrape). Counters live in the API process."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.db.models import Job

LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass
class _Histogram:
    counts: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BUCKETS_S))
    total: int = 0
    sum_s: float = 0.0

    def observe(self, seconds: float) -> None:
        for index, bound in enumerate(LATENCY_BUCKETS_S):
            if seconds <= bound:
                self.counts[index] += 1
        self.total += 1
        self.sum_s += seconds


@dataclass
class RequestStats:
    requests: defaultdict[tuple[str, str, str], int] = field(default_factory=lambda: defaultdict(int))
    latency: defaultdict[tuple[str, str], _Histogram] = field(default_factory=lambda: defaultdict(_Histogram))

    def record(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests[(method, route, str(status))] += 1
        self.latency[(method, route)].observe(seconds)


def route_template(scope: Scope) -> str:
    """`/v1/jobs/{job_id}` for `/v1/jobs/4f9c...`: the path with each path parameter's value named, so
    that one route is one series whatever ids it is called with."""
    if scope.get("route") is None:
        return "unmatched"
    names = {str(value): name for name, value in scope.get("path_params", {}).items()}
    return "/".join(f"{{{names[part]}}}" if part in names else part for part in scope["path"].split("/"))


class RequestMetrics:
    """Plain ASGI middleware (no BaseHTTPMiddleware task per request): counts and times every answer."""

    def __init__(self, app: ASGIApp, stats: RequestStats) -> None:
        self.app = app
        self.stats = stats

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            self.stats.record(scope["method"], route_template(scope), status, time.perf_counter() - started)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**values: str) -> str:
    return "{" + ",".join(f'{key}="{_escape(value)}"' for key, value in values.items()) + "}"


def render(stats: RequestStats, session: Session) -> str:
    lines: list[str] = [
        "# HELP nnsvc_jobs Jobs in the database by kind and status.",
        "# TYPE nnsvc_jobs gauge",
    ]
    for kind, status, count in session.execute(
        select(Job.kind, Job.status, func.count()).group_by(Job.kind, Job.status)
    ):
        lines.append(f"nnsvc_jobs{_labels(kind=kind.value, status=status.value)} {count}")
    lines += [
        "# HELP nnsvc_http_requests_total HTTP requests answered, by route template and status.",
        "# TYPE nnsvc_http_requests_total counter",
    ]
    for (method, route, status), count in sorted(stats.requests.items()):
        lines.append(f"nnsvc_http_requests_total{_labels(method=method, route=route, status=status)} {count}")
    lines += [
        "# HELP nnsvc_http_request_duration_seconds Time to answer, by route template.",
        "# TYPE nnsvc_http_request_duration_seconds histogram",
    ]
    for (method, route), histogram in sorted(stats.latency.items()):
        lines.extend(_histogram_lines(method, route, histogram))
    return "\n".join(lines) + "\n"


def _histogram_lines(method: str, route: str, histogram: _Histogram) -> Iterable[str]:
    name = "nnsvc_http_request_duration_seconds"
    for bound, count in zip(LATENCY_BUCKETS_S, histogram.counts, strict=True):
        yield f"{name}_bucket{_labels(method=method, route=route, le=f'{bound:g}')} {count}"
    yield f"{name}_bucket{_labels(method=method, route=route, le='+Inf')} {histogram.total}"
    yield f"{name}_sum{_labels(method=method, route=route)} {histogram.sum_s:.6f}"
    yield f"{name}_count{_labels(method=method, route=route)} {histogram.total}"
