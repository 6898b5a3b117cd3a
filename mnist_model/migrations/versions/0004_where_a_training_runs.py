"""A training remembers where it runs when that outlives its app server (a detached Ray actor's name), so that
another server can take it over.

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as jobs:
        jobs.add_column(sa.Column("runs_at", sa.Text))
