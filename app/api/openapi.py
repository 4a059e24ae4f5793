"""Writes each /v1 route's allowed roles into the OpenAPI document (`x-roles`, and a line in the
description) from the RoleGuard hung on the route, so clients read who may call what, and the tests
walk the document to check every route refuses the other roles."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.routing import APIRoute

from app.api.deps import RoleGuard


def route_roles(route: APIRoute) -> list[str] | None:
    for dependency in route.dependant.dependencies:
        if isinstance(dependency.call, RoleGuard):
            return sorted(dependency.call.roles)
    return None


def document_roles(router: APIRouter) -> None:
    """Call on a resource router before it is included: included routes are built from these."""
    for route in router.routes:
        if not isinstance(route, APIRoute):
            continue
        roles = route_roles(route)
        if roles is None:
            continue
        route.openapi_extra = {**(route.openapi_extra or {}), "x-roles": roles}
        route.description = f"{route.description}\n\nRoles: {', '.join(roles)}.".strip()
