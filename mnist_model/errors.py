"""The library's own error types: every bad input ends in one of these, with a readable message."""
from .i18n import said


class MnistLiveError(ValueError):
    """Base of every error the library raises on bad input or bad files. A message made with i18n.later() is said
    in the language of whoever reads it (an error raised at the server's start, or in another student's request)."""

    def __str__(self) -> str:
        return said(super().__str__())


class DataError(MnistLiveError):
    """A dataset file or folder is missing, malformed or refused."""


class InputError(MnistLiveError):
    """A drawing, upload or setting that cannot be used."""


class ModelFileError(MnistLiveError):
    """A saved model or run that is corrupt, foreign or unsafe."""


class WorkspaceBusy(MnistLiveError):
    """The workspace already has a training running or waiting (one at a time, so nobody fills the queue)."""
