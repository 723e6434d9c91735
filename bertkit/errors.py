"""Errors that mean "the user's input was wrong", told apart from bugs.

Every check of what a user passes (a path, a flag, a file's contents, an argument) raises `UserError` or one of
its kinds below; the CLI prints those as one line (exit 2) and lets anything else, a bug, print its traceback.
Each kind is also the standard exception a caller expects (`UserError` is a `ValueError`, `MissingFileError` a
`FileNotFoundError`, ...), so `except ValueError:` in user code keeps working.

    raise UserError("--max-length must be at least 3, got 1")
    raise MissingFileError(f"no vocab.txt in {folder!r}; pass a tokenizer folder")
"""


class UserError(ValueError):
    """A problem with the user's input; printed as one clear line, without a traceback."""


class MissingFileError(UserError, FileNotFoundError):
    """A path the user gave does not exist (or lacks the file it needs)."""


class IsAFolderError(UserError, IsADirectoryError):
    """The user gave a folder where a file is needed."""


class NotAFolderError(UserError, NotADirectoryError):
    """The user gave a file where a folder is needed."""


class AlreadyExistsError(UserError, FileExistsError):
    """Something is already where the user asked to write."""


class MissingExtraError(UserError, ImportError):
    """An optional dependency the user's request needs is not installed (the message names the extra)."""
