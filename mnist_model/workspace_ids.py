"""Workspace ids: unguessable, URL-safe, checked before any look-up."""
import secrets

WORKSPACE_ID_BYTES = 24  # 192 random bits, URL-safe base64: 32 characters
SERVER_WORKSPACE = "server"  # owner of runs imported from the legacy runs/ folder; never pruned


def new_workspace_id() -> str:
    """An unguessable workspace id: 192 random bits from `secrets`, 32 URL-safe characters, never starting with
    "-" (the admin command line would read one as an option)."""
    while True:
        workspace_id = secrets.token_urlsafe(WORKSPACE_ID_BYTES)
        if not workspace_id.startswith("-"):
            return workspace_id


def is_workspace_id(text) -> bool:
    """True for strings shaped like new_workspace_id()'s (checked before any look-up)."""
    return (isinstance(text, str) and len(text) == 32
            and all(c.isascii() and (c.isalnum() or c in "-_") for c in text))
