"""How many CPU cores this process may use right now, to size thread pools and worker counts.

``os.cpu_count()`` says what exists, not what is free: on a 2-core machine with another busy
process, two torch intra-op threads plus two radiomics workers on the one free core made scoring
15x and Grad-CAM 50x slower. :func:`free_cores` counts the cores of this process's
affinity set that other processes left idle over a window of ``/proc/stat``; where that file does
not exist (macOS, Windows) it falls back to the 1-minute load average, and where that is missing
too, to the affinity set. It never returns less than 1 nor more than the affinity set.

The window need not be idle time: :class:`CoreWindow` opens it, the caller does useful work
(``predict`` reads the case and computes the ring and the patch), and :meth:`CoreWindow.free_cores`
closes it right before the count is needed, sleeping only what is left of a minimum window. This
process's own CPU time over the window (all its threads) is not counted as busy.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import time

logger = logging.getLogger(__name__)

PROC_STAT = "/proc/stat"


def allowed_cores() -> set[int]:
    """The CPU numbers this process may run on (its affinity set; every CPU where unknown)."""
    if hasattr(os, "sched_getaffinity"):
        return set(os.sched_getaffinity(0))
    return set(range(os.cpu_count() or 1))


def _cpu_times(path: str = PROC_STAT) -> dict[int, tuple[int, int]]:
    """``{cpu: (busy, total)}`` jiffies of each CPU line of /proc/stat."""
    times = {}
    with open(path, encoding="ascii") as stat:
        for line in stat:
            name, _, rest = line.partition(" ")
            if not name.startswith("cpu") or name == "cpu":
                continue
            values = [int(v) for v in rest.split()]
            # user nice system idle iowait irq softirq steal [guest guest_nice]: guest time is
            # already inside user/nice; idle + iowait is time nobody wanted the core.
            total = sum(values[:8])
            times[int(name[3:])] = (total - values[3] - values[4], total)
    return times


class CoreWindow:
    """A window over /proc/stat, opened at construction and closed by :meth:`busy` or
    :meth:`free_cores`: meanwhile the caller works instead of sleeping.

    :param path: the /proc/stat to read (tests give another).
    :param cpus: the CPUs to count (default: the affinity set).
    """

    def __init__(self, path: str = PROC_STAT, cpus: set[int] | None = None):
        self.path = path
        self.cpus = allowed_cores() if cpus is None else set(cpus)
        self._own, self._started = time.process_time(), time.perf_counter()
        try:
            self._before = _cpu_times(path)
        except (OSError, ValueError):
            self._before = None

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self._started

    def busy(self, min_window_s: float = 0.1) -> float | None:
        """How many of the CPUs other processes kept busy, on average, since the window opened;
        ``None`` without /proc/stat. Sleeps only if the window is shorter than ``min_window_s``
        (/proc/stat counts in 10 ms ticks: a shorter window is mostly rounding)."""
        if self._before is None:
            return None
        if self.elapsed < min_window_s:
            time.sleep(min_window_s - self.elapsed)
        try:
            after = _cpu_times(self.path)
        except (OSError, ValueError):
            return None
        own, elapsed = time.process_time() - self._own, self.elapsed
        busy = busy_between(self._before, after, self.cpus)
        return max(0.0, busy - own / elapsed) if elapsed > 0 else busy

    def free_cores(self, min_window_s: float = 0.1) -> int:
        """Cores of the CPUs not busy with other work over the window, rounded: at least 1.

        :param min_window_s: the shortest window to count over (the rest is slept).
        :returns: an integer in ``1 .. len(cpus)``.
        """
        return _free(len(self.cpus), self.busy(min_window_s))


def busy_cores(window_s: float = 0.2, path: str = PROC_STAT, cpus: set[int] | None = None) -> float | None:
    """How many of ``cpus`` (default: the affinity set) other processes kept busy, on average,
    over the next ``window_s`` (slept); ``None`` without /proc/stat. This process's own CPU time
    over the window (its other threads: e.g. a bundle loading meanwhile) is not counted as busy."""
    return CoreWindow(path, cpus).busy(window_s)


def busy_between(before: dict[int, tuple[int, int]], after: dict[int, tuple[int, int]],
                 cpus: set[int]) -> float:
    """Busy cores among ``cpus`` between two :func:`_cpu_times` snapshots (0 .. len(cpus))."""
    busy = 0.0
    for cpu in cpus:
        if cpu in before and cpu in after:
            total = after[cpu][1] - before[cpu][1]
            if total > 0:
                busy += min(1.0, max(0.0, (after[cpu][0] - before[cpu][0]) / total))
    return busy


def free_cores(window_s: float = 0.2, path: str = PROC_STAT) -> int:
    """Cores of the affinity set not busy with other work now, rounded: at least 1.

    :param window_s: how long to watch /proc/stat (the caller sleeps that long; a caller with
        work to do opens a :class:`CoreWindow` instead).
    :param path: the /proc/stat to read (tests give another).
    :returns: an integer in ``1 .. len(allowed_cores())``.
    """
    return CoreWindow(path).free_cores(window_s)


def _free(allowed: int, busy: float | None) -> int:
    """``allowed`` minus ``busy`` cores, rounded, within ``1 .. allowed``."""
    if busy is None:
        try:
            # The load average counts the whole machine's runnable processes: a rough stand-in.
            busy = os.getloadavg()[0] * allowed / (os.cpu_count() or allowed)
        except (OSError, AttributeError):
            busy = 0.0
    # A core that is about half busy still counts as free (round, not floor): one thread more
    # than the idle share costs less than leaving a half-free core unused.
    free = int(allowed - busy + 0.5)
    logger.debug("cores: %d allowed, %.2f busy -> %d free", allowed, busy, free)
    return max(1, min(allowed, free))


@contextlib.contextmanager
def torch_threads(threads: int | None):
    """Run the block with ``threads`` torch intra-op threads (``None``: as they are), then put
    back the count there was: the setting is process-wide, and a caller (a test session, the
    Slicer worker) may rely on its own."""
    if threads is None or "torch" not in sys.modules:
        # A process that has not imported torch runs nothing through it (the ONNX Runtime path
        # sizes its own sessions): importing torch here would cost ~1.8 s for nothing.
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(max(1, int(threads)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def freeze_at_exit() -> None:
    """Make the interpreter's exit skip garbage-collecting the objects alive at exit.

    Once torch, torchvision and scikit-learn are imported, the collections of Python's shutdown
    walk ~450 000 objects and took 1.2-1.6 s of a 10 s ``predict``; ``gc.freeze()``
    as the last exit handler leaves them out. Nothing is lost: memory goes back to the system
    with the process, and files are closed (or renamed into place) before then.
    """
    import atexit
    import gc

    atexit.unregister(gc.freeze)  # once, however often a process predicts
    atexit.register(gc.freeze)


def cpu_flags(path: str = "/proc/cpuinfo") -> frozenset[str]:
    """The first processor's feature flags (``amx_bf16``, ``avx512_bf16``, ...); empty where
    /proc/cpuinfo is absent (macOS, Windows)."""
    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()
