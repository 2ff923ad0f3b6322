"""Progress and cancellation, shared by the CLI (a tqdm bar) and Slicer (a progress bar).

Long work takes a ``progress`` callable ``progress(fraction: float, message: str)`` with
``fraction`` in 0..1 for the whole task, and checks a cancel callable between steps. Both are
optional, so library calls stay plain functions.
"""
from __future__ import annotations

from typing import Callable, Optional

from .errors import Cancelled

ProgressCallback = Callable[[float, str], None]
CancelCheck = Callable[[], bool]


def report(progress: Optional[ProgressCallback], fraction: float, message: str,
           cancel: Optional[CancelCheck] = None) -> None:
    """Report progress, then stop with :class:`Cancelled` if the caller asked to cancel."""
    if progress is not None:
        progress(min(max(fraction, 0.0), 1.0), message)
    if cancel is not None and cancel():
        raise Cancelled(message)


def scaled(progress: Optional[ProgressCallback], start: float, end: float) -> Optional[ProgressCallback]:
    """A callback that maps a sub-task's 0..1 onto ``start..end`` of the parent's progress."""
    if progress is None:
        return None
    return lambda fraction, message: progress(start + (end - start) * fraction, message)
