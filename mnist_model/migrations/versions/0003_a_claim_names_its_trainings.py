"""A training claim names the submission that holds it (its first training's id), so that trainings ending late
free only their own claim, never the next one's.

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("claims") as claims:
        claims.add_column(sa.Column("job_id", sa.Text))
