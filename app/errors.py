"""Every error reaches the client in one shape: `{"message": ..., "detail": [{"loc", "problem", "kind"}]}`.

Domain errors (`ApiError` here, `ProblemsError` from core), request validation and routing errors are all
mapped in this one module, so a client parses one body whatever went wrong, and every problem found is
listed at once. A user's mistake is always a 4xx; only a bug becomes a 500, logged with an id to quote.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.schemas.common import ErrorBody, Problem
from core.errors import ProblemsError

logger = logging.getLogger(__name__)

ProblemLike = Problem | str
MAX_SHOWN_INPUT_CHARS = 80


class ApiError(Exception):
    """A refusal with a status code and every problem behind it; `loc` and `kind` describe a single
    problem given as text."""

    status_code = 400

    def __init__(
        self,
        problems: ProblemLike | Iterable[ProblemLike],
        *,
        loc: list[str | int] | None = None,
        kind: str | None = None,
        message: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        items = [problems] if isinstance(problems, Problem | str) else list(problems)
        self.problems = [
            p if isinstance(p, Problem) else Problem(loc=loc, problem=p, kind=kind) for p in items
        ]
        self.message = message or summarize(self.problems)
        self.headers = dict(headers or {})
        super().__init__(self.message)


class Unauthorized(ApiError):
    status_code = 401

    def __init__(self, problem: str) -> None:
        super().__init__(problem, loc=["header", "Authorization"], headers={"WWW-Authenticate": "Bearer"})


class Forbidden(ApiError):
    status_code = 403


class NotFound(ApiError):
    status_code = 404


class Conflict(ApiError):
    status_code = 409


class PayloadTooLarge(ApiError):
    status_code = 413


class UnsupportedMediaType(ApiError):
    status_code = 415


class Unprocessable(ApiError):
    status_code = 422


def summarize(problems: Sequence[Problem]) -> str:
    if len(problems) == 1:
        return problems[0].problem
    return f"{len(problems)} problems"


def error_response(
    status_code: int,
    problems: Sequence[Problem],
    message: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = ErrorBody(message=message or summarize(problems), detail=list(problems))
    return JSONResponse(body.model_dump(mode="json", exclude_none=True), status_code, headers=headers)


def describe_validation_error(error: Mapping[str, object]) -> Problem:
    """Pydantic's error as a problem line that names the value it refused."""
    text = str(error.get("msg", "invalid value"))
    if "input" in error and error.get("type") != "missing":
        shown = repr(error["input"])
        if len(shown) > MAX_SHOWN_INPUT_CHARS:
            shown = shown[: MAX_SHOWN_INPUT_CHARS - 3] + "..."
        text = f"{text}, got {shown}"
    loc = [part if isinstance(part, int) else str(part) for part in error.get("loc", ())]  # type: ignore[union-attr]
    return Problem(loc=loc or None, problem=text, kind=str(error.get("type")) if error.get("type") else None)


async def _api_error(_request: Request, error: ApiError) -> JSONResponse:
    return error_response(error.status_code, error.problems, error.message, error.headers)


async def _problems_error(_request: Request, error: ProblemsError) -> JSONResponse:
    return error_response(422, [Problem(problem=line) for line in error.problems])


async def _validation_error(_request: Request, error: RequestValidationError) -> JSONResponse:
    problems = [describe_validation_error(item) for item in error.errors()]
    return error_response(422, problems or [Problem(problem="invalid request")])


async def _http_error(_request: Request, error: StarletteHTTPException) -> JSONResponse:
    return error_response(error.status_code, [Problem(problem=str(error.detail))], headers=error.headers)


async def _unexpected_error(request: Request, error: Exception) -> JSONResponse:
    incident = uuid.uuid4().hex[:12]
    logger.exception("unexpected error %s on %s %s", incident, request.method, request.url.path)
    problem = Problem(problem=f"internal error {incident}; it was logged, please report it with this id")
    return error_response(500, [problem])


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(ProblemsError, _problems_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
