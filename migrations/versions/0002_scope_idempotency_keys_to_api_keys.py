"""Scope Idempotency-Key to the API key that sent it: two clients that happen to pick the same key
must each get their own prediction, never the other's."""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_constraint("uq_jobs_kind_idempotency_key", type_="unique")
        batch.create_unique_constraint(
            op.f("uq_jobs_kind_api_key_id_idempotency_key"), ["kind", "api_key_id", "idempotency_key"]
        )


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_constraint("uq_jobs_kind_api_key_id_idempotency_key", type_="unique")
        batch.create_unique_constraint(op.f("uq_jobs_kind_idempotency_key"), ["kind", "idempotency_key"])
