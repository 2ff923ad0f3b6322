"""Progress and cancellation, shared by the CLI (a tqdm bar) and Slicer (a progress bar).

Long work takes a ``progress`` callable ``progress(fraction: float, message: str)`` with
``fraction`` in 0..1 for the whole task, and checks a cancel callable between steps. Both are
optional, so library calls stay plain functions.
"""
from __future__ import annotations

import contextlib
import sys
import time
from typing import Callable, Iterator, Optional

from DeepRadScoreLib.errors import Cancelled


ProgressCallback = Callable[[float, str], None]
CancelCheck = Callable[[], bool]
BAR_DELAY_S = 1.0


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


@contextlib.contextmanager
def terminal_bar(description: str = "", total: Optional[int] = None,
                 unit: str = "") -> Iterator[ProgressCallback]:
    """A tqdm bar on stderr driven by the ``progress(fraction, message)`` protocol.

    With ``total`` (e.g. the number of cases) the bar counts units and shows an ETA; without it,
    it shows per mille of the whole task. The bar stays hidden for the first second, so quick
    failures print no bar; when the command fails with the bar on screen, a newline keeps the
    ``error:`` line on a line of its own.
    """
    from tqdm import tqdm

    scale = total or 1000
    counter = "{n:.0f}/{total} " + unit + " " if total else ""
    bar = tqdm(total=scale, desc=description or None, file=sys.stderr, delay=BAR_DELAY_S,
               bar_format="{l_bar}{bar}| " + counter + "{elapsed}<{remaining} {postfix}")

    def progress(fraction: float, message: str) -> None:
        bar.n = round(fraction * scale, 3)
        bar.set_postfix_str(message[:70], refresh=False)
        # An explicit refresh() ignores tqdm's delay and does not record that the bar is on
        # screen; do both here, so close() ends a shown bar with a newline (the error line then
        # stands on its own) and prints nothing for a quick command.
        now = time.time()
        if now - bar.start_t >= BAR_DELAY_S:
            bar.refresh()
            bar.last_print_t = now

    try:
        yield progress
    finally:
        bar.close()
