"""The one exception type that reaches the user as a one-line message.

Anything raised as :class:`InputError` is a problem with what the user gave us (a file, a row
of a manifest, an option): the CLI prints ``error: <message>`` and exits with status 2, the
Slicer module shows the message in its status line. Every other exception is a bug and keeps
its traceback.
"""


class InputError(Exception):
    """A user-facing problem with an input: the message names the file/row and the problem."""


class Cancelled(Exception):
    """Raised from inside long work when the caller's cancel flag is set."""
