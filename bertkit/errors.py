"""The error type for problems with the user's input that no standard exception names well; the CLI prints it
(like ValueError / FileNotFoundError) as one clear line, without a traceback."""


class UserError(Exception):
    """A problem with the user's input; printed as one clear line, without a traceback."""
