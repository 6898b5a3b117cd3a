"""The store as the hand-written SQLite migrations left it (user_version 2): workspaces, runs, drawings, jobs,
notices, imports and the class tables. A file from before Alembic is stamped with this revision, not rebuilt.

Revision ID: 0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _workspace_fk(name: str = "workspace_id", **kw) -> sa.Column:
    return sa.Column(name, sa.Text, sa.ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False, **kw)


def _class_fk(**kw) -> sa.Column:
    return sa.Column("class_id", sa.Text, sa.ForeignKey("classes.id", ondelete="CASCADE"), nullable=False, **kw)


def upgrade() -> None:
    op.create_table("workspaces",
                    sa.Column("id", sa.Text, primary_key=True),
                    sa.Column("created_at", sa.Float, nullable=False),
                    sa.Column("last_seen", sa.Float, nullable=False),
                    sa.Column("settings", sa.Text),
                    sa.Column("model_run_id", sa.Text),
                    sa.Column("run_counter", sa.Integer, nullable=False, server_default="0"))
    op.create_table("runs",
                    sa.Column("run_id", sa.Text, primary_key=True),
                    _workspace_fk(),
                    sa.Column("meta", sa.Text, nullable=False),
                    sa.Column("created_at", sa.Float, nullable=False),
                    sa.Column("pinned", sa.Integer, nullable=False, server_default="0"),
                    sa.Column("published", sa.Integer, nullable=False, server_default="0"),
                    sa.Column("bytes", sa.Integer, nullable=False, server_default="0"))
    op.create_index("runs_by_workspace", "runs", ["workspace_id", "created_at"])
    op.create_table("drawings",
                    sa.Column("id", sa.Integer, primary_key=True),
                    _workspace_fk(),
                    sa.Column("label", sa.Integer, nullable=False),
                    sa.Column("pixels", sa.LargeBinary, nullable=False),
                    sa.Column("created_at", sa.Float, nullable=False))
    op.create_index("drawings_by_workspace", "drawings", ["workspace_id", "id"])
    op.create_table("jobs",
                    sa.Column("job_id", sa.Text, primary_key=True),
                    _workspace_fk(),
                    sa.Column("label", sa.Text, nullable=False),
                    sa.Column("kind", sa.Text, nullable=False),
                    sa.Column("config", sa.Text, nullable=False),
                    sa.Column("base_run_id", sa.Text),
                    sa.Column("state", sa.Text, nullable=False),
                    sa.Column("message", sa.Text, nullable=False, server_default=""),
                    sa.Column("created_at", sa.Float, nullable=False),
                    sa.Column("updated_at", sa.Float, nullable=False))
    op.create_index("jobs_by_workspace", "jobs", ["workspace_id", "created_at"])
    op.create_table("notices",
                    sa.Column("id", sa.Integer, primary_key=True),
                    _workspace_fk(),
                    sa.Column("text", sa.Text, nullable=False),
                    sa.Column("created_at", sa.Float, nullable=False))
    op.create_table("imports",
                    sa.Column("source", sa.Text, primary_key=True),
                    sa.Column("imported_at", sa.Float, nullable=False))
    op.create_table("classes",
                    sa.Column("id", sa.Text, primary_key=True),
                    sa.Column("code", sa.Text, nullable=False),
                    _workspace_fk("teacher_workspace"),
                    sa.Column("key_hash", sa.Text, nullable=False),
                    sa.Column("created_at", sa.Float, nullable=False),
                    sa.Column("ended_at", sa.Float),
                    sa.Column("suggestion", sa.Text),
                    sa.Column("suggested_at", sa.Float))
    op.create_index("classes_by_code", "classes", ["code"])
    op.create_index("classes_by_teacher", "classes", ["teacher_workspace", "created_at"])
    op.create_table("teacher_keys",
                    sa.Column("workspace_id", sa.Text, sa.ForeignKey("workspaces.id", ondelete="CASCADE"),
                              primary_key=True),
                    sa.Column("class_id", sa.Text, sa.ForeignKey("classes.id", ondelete="CASCADE"), primary_key=True),
                    sa.Column("key", sa.Text, nullable=False))
    op.create_table("members",
                    sa.Column("workspace_id", sa.Text, sa.ForeignKey("workspaces.id", ondelete="CASCADE"),
                              primary_key=True),
                    _class_fk(),
                    sa.Column("nickname", sa.Text, nullable=False),
                    sa.Column("skeleton", sa.Text, nullable=False),
                    sa.Column("joined_at", sa.Float, nullable=False),
                    sa.Column("seen_at", sa.Float, nullable=False))
    op.create_index("members_by_skeleton", "members", ["class_id", "skeleton"], unique=True)
    op.create_table("board",
                    sa.Column("run_id", sa.Text, primary_key=True),
                    _class_fk(),
                    _workspace_fk(),
                    sa.Column("nickname", sa.Text, nullable=False),
                    sa.Column("config", sa.Text, nullable=False),
                    sa.Column("status", sa.Text, nullable=False),
                    sa.Column("epochs_run", sa.Integer, nullable=False),
                    sa.Column("train_accuracy", sa.Float, nullable=False),
                    sa.Column("test_accuracy", sa.Float, nullable=False),
                    sa.Column("train_loss", sa.Float, nullable=False),
                    sa.Column("test_loss", sa.Float, nullable=False),
                    sa.Column("seconds", sa.Float, nullable=False),
                    sa.Column("posted_at", sa.Float, nullable=False),
                    sa.Column("hidden", sa.Integer, nullable=False, server_default="0"))
    op.create_index("board_by_class", "board", ["class_id", "posted_at"])
