"""The library's own error types: every bad input ends in one of these, with a readable message."""


class MnistLiveError(ValueError):
    """Base of every error the library raises on bad input or bad files."""


class DataError(MnistLiveError):
    """A dataset file or folder is missing, malformed or refused."""


class InputError(MnistLiveError):
    """A drawing, upload or setting that cannot be used."""


class ModelFileError(MnistLiveError):
    """A saved model or run that is corrupt, foreign or unsafe."""


class WorkspaceBusy(MnistLiveError):
    """The workspace already has a training running or waiting (one at a time, so nobody fills the queue)."""
