"""The store's tables (SQLAlchemy Core), the same on SQLite and PostgreSQL; migrations/ creates and changes them.

Times are Unix seconds (REAL), flags are 0/1 integers and configs are JSON text, as the SQLite store always kept
them, so that a file from before the move to SQLAlchemy upgrades in place without rewriting a row.
"""
from sqlalchemy import Column, Float, ForeignKey, Index, Integer, LargeBinary, MetaData, Table, Text

metadata = MetaData()


def _workspace(nullable: bool = False, **kw) -> Column:
    return Column("workspace_id", Text, ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=nullable, **kw)


def _class_id(**kw) -> Column:
    return Column("class_id", Text, ForeignKey("classes.id", ondelete="CASCADE"), nullable=False, **kw)


workspaces = Table(
    "workspaces", metadata,
    Column("id", Text, primary_key=True),
    Column("created_at", Float, nullable=False),
    Column("last_seen", Float, nullable=False),
    Column("settings", Text),  # the last Train settings (JSON)
    Column("model_run_id", Text),  # the model Draw and Explore use
    Column("run_counter", Integer, nullable=False, server_default="0"),  # numbers "Run 1", "Run 2", ...
    Column("language", Text),  # chosen in the sidebar, else the browser's (revision 0005)
)

runs = Table(
    "runs", metadata,
    Column("run_id", Text, primary_key=True),
    _workspace(),
    Column("meta", Text, nullable=False),  # everything but the arrays (JSON)
    Column("created_at", Float, nullable=False),
    Column("pinned", Integer, nullable=False, server_default="0"),
    Column("published", Integer, nullable=False, server_default="0"),
    Column("bytes", Integer, nullable=False, server_default="0"),  # its arrays and .keras file, for the disk cap
    Index("runs_by_workspace", "workspace_id", "created_at"),
)

drawings = Table(
    "drawings", metadata,
    Column("id", Integer, primary_key=True),
    _workspace(),
    Column("label", Integer, nullable=False),
    Column("pixels", LargeBinary, nullable=False),  # (28, 28) uint8
    Column("created_at", Float, nullable=False),
    Index("drawings_by_workspace", "workspace_id", "id"),
)

jobs = Table(
    "jobs", metadata,
    Column("job_id", Text, primary_key=True),
    _workspace(),
    Column("label", Text, nullable=False),
    Column("kind", Text, nullable=False),  # train, sweep or fine-tune
    Column("config", Text, nullable=False),
    Column("base_run_id", Text),
    Column("state", Text, nullable=False),  # queued, running or interrupted
    Column("message", Text, nullable=False, server_default=""),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("server", Text),  # the app server that runs it (revision 0002)
    Column("runs_at", Text),  # where another server finds it running if its own dies (a Ray actor's name; 0004)
    Index("jobs_by_workspace", "workspace_id", "created_at"),
)

notices = Table(
    "notices", metadata,
    Column("id", Integer, primary_key=True),
    _workspace(),
    Column("text", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)

imports = Table(  # legacy runs/ folders already imported, by absolute path
    "imports", metadata,
    Column("source", Text, primary_key=True),
    Column("imported_at", Float, nullable=False),
)

classes = Table(
    "classes", metadata,
    Column("id", Text, primary_key=True),
    Column("code", Text, nullable=False),
    Column("teacher_workspace", Text, ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
    Column("key_hash", Text, nullable=False),  # sha256 of the teacher's control key
    Column("created_at", Float, nullable=False),
    Column("ended_at", Float),
    Column("suggestion", Text),  # the teacher's suggested settings (JSON)
    Column("suggested_at", Float),
    Index("classes_by_code", "code"),
    Index("classes_by_teacher", "teacher_workspace", "created_at"),
)

teacher_keys = Table(
    "teacher_keys", metadata,
    Column("workspace_id", Text, ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True),
    Column("class_id", Text, ForeignKey("classes.id", ondelete="CASCADE"), primary_key=True),
    Column("key", Text, nullable=False),
)

members = Table(
    "members", metadata,
    Column("workspace_id", Text, ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True),
    _class_id(),
    Column("nickname", Text, nullable=False),
    Column("skeleton", Text, nullable=False),  # what the nickname looks like: look-alikes share one
    Column("joined_at", Float, nullable=False),
    Column("seen_at", Float, nullable=False),
    Index("members_by_skeleton", "class_id", "skeleton", unique=True),
)

board = Table(
    "board", metadata,
    Column("run_id", Text, primary_key=True),
    _class_id(),
    _workspace(),
    Column("nickname", Text, nullable=False),
    Column("config", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("epochs_run", Integer, nullable=False),
    Column("train_accuracy", Float, nullable=False),
    Column("test_accuracy", Float, nullable=False),
    Column("train_loss", Float, nullable=False),
    Column("test_loss", Float, nullable=False),
    Column("seconds", Float, nullable=False),
    Column("posted_at", Float, nullable=False),
    Column("hidden", Integer, nullable=False, server_default="0"),
    Index("board_by_class", "class_id", "posted_at"),
)

# ---------------------------------------------------------------- revision 0002: what several servers share

counters = Table(  # a number per thing that pages poll ("board:<class>"), bumped in the write's transaction
    "counters", metadata,
    Column("name", Text, primary_key=True),
    Column("value", Integer, nullable=False),
)

attempts = Table(  # failed joins, for the limits that must hold across servers
    "attempts", metadata,
    Column("id", Integer, primary_key=True),
    Column("who", Text, nullable=False),  # a session, or "*" for the whole deployment
    Column("at", Float, nullable=False),
    Index("attempts_by_who", "who", "at"),
)

servers = Table(  # app servers on this database; one not seen for a while has died
    "servers", metadata,
    Column("id", Text, primary_key=True),
    Column("started_at", Float, nullable=False),
    Column("seen_at", Float, nullable=False),
)

claims = Table(  # one training (or sweep) per workspace across servers: the primary key is the rule
    "claims", metadata,
    Column("workspace_id", Text, ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True),
    Column("server", Text, nullable=False),
    Column("since", Float, nullable=False),
    # The first training's id of the submission that holds it: an earlier one ending late frees only its own.
    Column("job_id", Text),
)

run_blobs = Table(  # a run's arrays and .keras file where there is no shared folder (PostgreSQL)
    "run_blobs", metadata,
    Column("run_id", Text, ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
    Column("npz", LargeBinary, nullable=False),
    Column("keras", LargeBinary, nullable=False),
)
