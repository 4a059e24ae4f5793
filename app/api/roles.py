"""Who may call what: one guard per right, hung on routes as `dependencies=[...]`.

admin may do everything; trainer works on datasets, plans, trainings, models and jobs and reads
everything; predictor posts predictions and reads models and its own jobs; evaluator posts evaluations
and reads models, datasets and jobs; viewer only reads. Deleting is admin's alone.
"""

from __future__ import annotations

from fastapi import Depends

from app.api.deps import RoleGuard
from service.db.models import Role

EVERY_ROLE = tuple(Role)

READ_DATASETS = Depends(RoleGuard(Role.trainer, Role.evaluator, Role.viewer))
WRITE_DATASETS = Depends(RoleGuard(Role.trainer))
READ_PLANS = Depends(RoleGuard(Role.trainer, Role.viewer))
WRITE_PLANS = Depends(RoleGuard(Role.trainer))
START_TRAINING = Depends(RoleGuard(Role.trainer))
READ_MODELS = Depends(RoleGuard(*EVERY_ROLE))
IMPORT_MODELS = Depends(RoleGuard(Role.trainer))
READ_PREDICTIONS = Depends(RoleGuard(Role.trainer, Role.predictor, Role.viewer))
WRITE_PREDICTIONS = Depends(RoleGuard(Role.predictor))
READ_EVALUATIONS = Depends(RoleGuard(Role.trainer, Role.evaluator, Role.viewer))
WRITE_EVALUATIONS = Depends(RoleGuard(Role.evaluator))
READ_JOBS = Depends(RoleGuard(*EVERY_ROLE))
CANCEL_JOBS = Depends(RoleGuard(Role.trainer))
DELETE = Depends(RoleGuard())
