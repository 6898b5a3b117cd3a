"""What several app servers on one database share: the counters pages poll, failed joins, runs' arrays in the
database (no shared folder).

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("counters",
                    sa.Column("name", sa.Text, primary_key=True),
                    sa.Column("value", sa.Integer, nullable=False))
    op.create_table("attempts",
                    sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("who", sa.Text, nullable=False),
                    sa.Column("at", sa.Float, nullable=False))
    op.create_index("attempts_by_who", "attempts", ["who", "at"])
    op.create_table("run_blobs",
                    sa.Column("run_id", sa.Text, sa.ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
                    sa.Column("npz", sa.LargeBinary, nullable=False),
                    sa.Column("keras", sa.LargeBinary, nullable=False))
