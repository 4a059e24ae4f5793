"""Plans: start planning and preprocessing of a dataset, read the plans, accept an edited document."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from sqlalchemy import func, select

from app.api.deps import ApiKeyDep, CeleryDep, PlanDep, SessionDep, SettingsDep
from app.api.roles import READ_PLANS, WRITE_PLANS
from app.operations.jobs import job_public
from app.operations.plans import edit_plans, start_plan
from app.schemas.plans import PlanAccepted, PlanCreate, PlanPublic, PlansPublic
from service.db.models import Plan

router = APIRouter(prefix="/plans", tags=["plans"])


@router.post("", status_code=202, dependencies=[WRITE_PLANS])
def post_plan(
    body: PlanCreate, session: SessionDep, settings: SettingsDep, celery: CeleryDep, key: ApiKeyDep
) -> PlanAccepted:
    """Queues fingerprinting, planning and preprocessing; the document appears when the job succeeds."""
    plan, job = start_plan(session, settings, celery, key.key_id, body)
    return PlanAccepted(plan=PlanPublic.model_validate(plan), job=job_public(session, job))


@router.get("", dependencies=[READ_PLANS])
def list_plans(
    session: SessionDep,
    dataset_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> PlansPublic:
    conditions = [] if dataset_id is None else [Plan.dataset_id == dataset_id]
    count = session.scalar(select(func.count()).select_from(Plan).where(*conditions)) or 0
    rows = session.scalars(
        select(Plan).where(*conditions).order_by(Plan.created_at.desc()).limit(limit).offset(offset)
    )
    return PlansPublic(data=[PlanPublic.model_validate(plan) for plan in rows], count=count)


@router.get("/{plan_id}", dependencies=[READ_PLANS])
def get_plan(plan: PlanDep) -> PlanPublic:
    """The plan with its plans.json document (null until the plan job succeeds)."""
    return PlanPublic.model_validate(plan)


@router.put("/{plan_id}/document", dependencies=[WRITE_PLANS])
def put_plan_document(
    plan: PlanDep,
    session: SessionDep,
    settings: SettingsDep,
    document: Annotated[
        dict[str, Any], Body(description="a whole plans.json; GET the plan, edit its document, PUT it here")
    ],
) -> PlanPublic:
    """Replaces the plans with an edited document after checking it as `nnsvc plan` checks a plans file;
    preprocessing choices cannot change (start a new plan job for that). 422 lists every problem."""
    return PlanPublic.model_validate(edit_plans(session, settings, plan, document))
