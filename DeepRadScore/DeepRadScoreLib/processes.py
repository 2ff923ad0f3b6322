"""What a process that runs only our work sets for itself, and the guards that keep the worker
processes from outliving the command that started them.

The fork server's processes form a knot when the main process is killed (SIGKILL, or SIGTERM
before the command's own handling): every worker keeps the fork server's "alive" pipe and the task
queue's write end open, so none of them ever sees its parent go, and the fork server, the resource
tracker and the idle workers (~150 MB each) stay forever. :func:`guard_worker`, the pools'
initializer, cuts the knot from inside each worker:

* **Each worker dies with its parent.** ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` (Linux, through
  ctypes): the kernel kills the worker when the fork server (its parent) ends, even in the middle
  of a long C call that holds the GIL.
* **Each worker watches the main process.** A daemon thread polls every ``POLL_SECONDS`` whether
  the main process still exists; when it does not, the worker ends the fork server (its parent),
  which takes every other worker with it, and then itself. A poll, not ``PR_SET_PDEATHSIG`` on the
  fork server: that signal follows the *thread* that started the fork server, and in Slicer that
  is a background thread that ends long before the process. Where there is no prctl (macOS,
  Windows: spawned workers, whose parent is the main process) the same watch ends the worker.

A fork server without workers holds no such pipe: it reads end-of-file on its "alive" pipe and
exits by itself, and so does the resource tracker once the workers are gone. Nothing runs when
this module is imported: the guards start in the workers, from the pool's initializer.
"""
from __future__ import annotations

import gc
import logging
import os
import signal
import sys
import threading
import time


POLL_SECONDS = 0.5
_PR_SET_PDEATHSIG = 1
_ERRORS_ONLY = False  # pyradiomics_errors_only was asked for before pyradiomics was imported


def guard_worker(main_pid: int) -> None:
    """Pool initializer: end this worker, and its fork server, when the main process ``main_pid``
    ends; end it when its parent ends."""
    parent = os.getppid()
    _die_with_parent()
    _start_watch(main_pid, parent if parent != main_pid else None)
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


def pyradiomics_errors_only() -> None:
    """Let pyradiomics print only errors on stderr, in *this* process (its public
    ``setVerbosity``).

    pyradiomics warns once per GLCM computed ("GLCM is symmetrical, therefore Sum Average = 2 *
    Joint Average ..."): a note on its own feature definitions, not on the data, but ~20 lines a
    case and thousands for a cohort. Only processes that run nothing but our work call this: the
    workers the engine starts, the ``deepradscore`` command's own process and the Slicer module's
    engine process. Library code in a shared process (Slicer's, where SlicerRadiomics logs too; a
    Dask worker) never does.

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


def _start_watch(main_pid: int, fork_server: int | None) -> None:
    """A daemon thread: once ``main_pid`` is gone, end ``fork_server`` (when there is one) and
    this process. Nothing to clean up: the main process that wanted the results is gone."""
    def watch() -> None:
        while _alive(main_pid):
            time.sleep(POLL_SECONDS)
        if fork_server is not None and os.getppid() == fork_server:
            try:
                os.kill(fork_server, signal.SIGKILL)
            except OSError:
                pass
        os._exit(1)

    threading.Thread(target=watch, name="deepradscore-worker-watch", daemon=True).start()
