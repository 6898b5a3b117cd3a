"""What several app servers on one database share: the counters pages poll, failed joins, runs' arrays in the
database (no shared folder), the servers themselves, and one training per workspace (claims).

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
    op.create_table("servers",
                    sa.Column("id", sa.Text, primary_key=True),
                    sa.Column("started_at", sa.Float, nullable=False),
                    sa.Column("seen_at", sa.Float, nullable=False))
    op.create_table("claims",
                    sa.Column("workspace_id", sa.Text, sa.ForeignKey("workspaces.id", ondelete="CASCADE"),
                              primary_key=True),
                    sa.Column("server", sa.Text, nullable=False),
                    sa.Column("since", sa.Float, nullable=False))
    with op.batch_alter_table("jobs") as jobs:
        jobs.add_column(sa.Column("server", sa.Text))
