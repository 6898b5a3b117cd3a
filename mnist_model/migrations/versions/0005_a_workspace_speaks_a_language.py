"""A workspace remembers the language its person chose in the sidebar (none: the browser's).

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("workspaces") as workspaces:
        workspaces.add_column(sa.Column("language", sa.Text))
