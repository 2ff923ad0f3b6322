"""Worker processes that never outlive the command that started them.

On Linux the pools use a fork server (:func:`process_context`): it has imported what the workers
of the chosen radiomics backend import (pyradiomics or the native modules, SciPy, the image
readers) once, so a pool starts in milliseconds and its workers share those pages (a page shared
by the fork server and N workers counts 1/(N+1) in each one's PSS) instead of each holding its
own copy. Each worker freezes the objects it inherits out of the garbage collector's reach
(``gc.freeze``: a full collection would otherwise write to every inherited object and so copy
every shared page) and hands the heap it freed back to the system after each case
(:func:`release_memory`).

The fork server's processes form a knot when the main process is killed (SIGKILL, or SIGTERM
before this module's handling): every worker keeps the fork server's "alive" pipe and the task
queue's write end open, so none of them ever sees its parent go, and the fork server, the
resource tracker and the idle workers (~150 MB each) stay forever. Two guards cut the knot:

* **The fork server watches the main process.** It is idle in ``select`` almost all the time, so
  a daemon thread (started when the fork server preloads this module, and only there) polls every
  ``POLL_SECONDS`` whether the main process still exists and ends the fork server when it does not.
  A poll, not ``PR_SET_PDEATHSIG``: that signal follows the *thread* that started the fork server,
  and in Slicer that is a background thread that ends long before the process.
* **Each worker dies with its parent.** :func:`guard_worker`, the pools' initializer, sets
  ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` (Linux, through ctypes): the kernel kills the worker when
  the fork server (its parent) ends, even in the middle of a long C call that holds the GIL. Where
  there is no prctl (macOS, Windows: spawned workers, whose parent is the main process), a daemon
  thread polls for the main process instead.

When the workers are gone, the resource tracker reads end-of-file on its pipe and exits by itself.
"""
from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.5
_PR_SET_PDEATHSIG = 1

# What the fork server imports for the workers of each backend (None: a server for both). The
# modules are the ones a worker imports anyway: a module no worker needs would only add its pages.
_PRELOAD_COMMON = ("DeepRadScoreLib.features.extraction", "DeepRadScoreLib.io.images",
                   "DeepRadScoreLib.regions", "scipy.ndimage", "scipy.spatial", "threadpoolctl")
_PRELOAD = {
    "native": ("DeepRadScoreLib.features.native.backend",) + tuple(
        f"DeepRadScoreLib.features.native.{name}"
        for name in ("firstorder", "shape", "glcm", "glrlm", "glszm", "gldm", "ngtdm")) + ("pywt", "yaml"),
    "pyradiomics": ("DeepRadScoreLib.features.radiomics", "radiomics.featureextractor",
                    "DeepRadScoreLib.features.native.shape"),
}


def process_context(backend: str | None = None) -> multiprocessing.context.BaseContext:
    """Where worker processes come from: a fork server that has already imported what the
    workers of ``backend`` (``native``, ``pyradiomics``; ``None``: either) import, so a pool
    starts in milliseconds and children do not inherit the caller's threads (tqdm's, Dask's,
    torch's, Slicer's); spawn where there is no fork server.

    One fork server serves a process for its lifetime: the first pool's ``backend`` decides what
    it imported, and a worker of the other backend imports the rest itself (same numbers, a
    slower start).
    """
    if not sys.platform.startswith("linux"):
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    extra = _PRELOAD[backend] if backend in _PRELOAD else _PRELOAD["pyradiomics"] + _PRELOAD["native"]
    # This module first: importing it inside the fork server starts the fork server's guard.
    # (A module that does not import, e.g. pyradiomics where it is absent, is skipped there.)
    context.set_forkserver_preload([__name__, *_PRELOAD_COMMON, *extra])
    return context


def preload_for(backend: str | None) -> str:
    """The backend whose modules a fork server should preload for ``backend`` (``auto``/``None``:
    pyradiomics when it is installed), found without importing it. A wrong guess (a pyradiomics
    that is installed but does not import) only makes the workers import the rest themselves."""
    if backend in _PRELOAD:
        return backend
    import importlib.util

    return "pyradiomics" if importlib.util.find_spec("radiomics") is not None else "native"


def guard_worker(main_pid: int) -> None:
    """Pool initializer: end this worker when the main process ``main_pid`` or its parent ends."""
    parent = os.getppid()
    if not _die_with_parent():
        _start_watch(main_pid, "worker")
    if os.getppid() != parent or not _alive(main_pid):
        os._exit(1)  # the parent ended before the guard was in place
    # What the fork server imported stays shared only while nothing writes to it; the collector
    # writes to every object it examines, so the inherited ones are taken out of its reach.
    gc.freeze()
    # This process exists only to run our extraction, so what it prints is ours to decide.
    pyradiomics_errors_only()


def release_memory() -> None:
    """Hand the memory this process has freed back to the system (glibc's ``malloc_trim``).

    After a large case a worker keeps tens of MB of freed heap that its next, smaller cases do not
    need (glibc raises its threshold for returning large blocks as they are freed); the other
    worker may need that memory now. A no-op where there is no glibc.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


_ERRORS_ONLY = False  # pyradiomics_errors_only was asked for before pyradiomics was imported


def pyradiomics_errors_only() -> None:
    """Let pyradiomics print only errors on stderr, in *this* process (its public
    ``setVerbosity``).

    pyradiomics warns once per GLCM computed ("GLCM is symmetrical, therefore Sum Average = 2 *
    Joint Average ..."): a note on its own feature definitions, not on the data, but ~20 lines a
    case and thousands for a cohort. Only processes that run nothing but our work call this: the
    workers this module starts and the ``deepradscore`` command's own process. Library code in
    a shared process (Slicer's, where SlicerRadiomics logs too; a Dask worker) never does.

    Where pyradiomics is not imported yet it is not imported for this (a worker of the native
    backend never needs it, and it costs ~30 MB): :func:`pyradiomics_imported`, called where the
    engine imports it, applies the setting then.
    """
    global _ERRORS_ONLY
    _ERRORS_ONLY = True
    if "radiomics" in sys.modules:
        pyradiomics_imported()


def pyradiomics_imported() -> None:
    """Called by the engine right after it imports pyradiomics: applies a pending
    :func:`pyradiomics_errors_only` (and nothing else)."""
    if not _ERRORS_ONLY:
        return
    try:
        import radiomics
    except ImportError:  # pyradiomics absent: nothing to quieten
        return
    radiomics.setVerbosity(logging.ERROR)


def _die_with_parent() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _alive(pid: int) -> bool:
    """Does ``pid`` still run? A zombie (dead, not yet reaped by its own parent) does not."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
        return state not in (b"Z", b"X")
    except FileNotFoundError:
        return False
    except (OSError, IndexError):
        pass  # no /proc (macOS): ask the kernel
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _start_watch(pid: int, what: str) -> None:
    def watch() -> None:
        while _alive(pid):
            time.sleep(POLL_SECONDS)
        os._exit(1)  # no clean-up to do: the main process that wanted the results is gone

    threading.Thread(target=watch, name=f"deepradscore-{what}-watch", daemon=True).start()


def _in_fork_server() -> bool:
    """True while the fork server's ``main`` is importing its preload modules (this one)."""
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "main" and frame.f_globals.get("__name__") == "multiprocessing.forkserver":
            return True
        frame = frame.f_back
    return False


if _in_fork_server():
    _start_watch(os.getppid(), "forkserver")
