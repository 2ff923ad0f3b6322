"""How many CPU cores this process may use right now, to size thread pools and worker counts.

``os.cpu_count()`` says what exists, not what is free: on a 2-core machine with another busy
process, two torch intra-op threads plus two radiomics workers on the one free core made scoring
15x and Grad-CAM 50x slower (issue 13). :func:`free_cores` counts the cores of this process's
affinity set that were idle over a short window of ``/proc/stat``; where that file does not
exist (macOS, Windows) it falls back to the 1-minute load average, and where that is missing too,
to the affinity set. It never returns less than 1 nor more than the affinity set.
"""
from __future__ import annotations

import contextlib
import logging
import os
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


def busy_cores(window_s: float = 0.2, path: str = PROC_STAT, cpus: set[int] | None = None) -> float | None:
    """How many of ``cpus`` (default: the affinity set) other processes kept busy, on average,
    over ``window_s``; ``None`` without /proc/stat. This process's own CPU time over the window
    (its other threads: e.g. a bundle loading meanwhile) is not counted as busy."""
    cpus = allowed_cores() if cpus is None else cpus
    try:
        before, own_before, started = _cpu_times(path), time.process_time(), time.perf_counter()
        time.sleep(window_s)
        after, own = _cpu_times(path), time.process_time() - own_before
        elapsed = time.perf_counter() - started
    except (OSError, ValueError):
        return None
    busy = busy_between(before, after, cpus)
    return max(0.0, busy - own / elapsed) if elapsed > 0 else busy


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

    :param window_s: how long to watch /proc/stat (the caller sleeps that long).
    :param path: the /proc/stat to read (tests give another).
    :returns: an integer in ``1 .. len(allowed_cores())``.
    """
    allowed = len(allowed_cores())
    busy = busy_cores(window_s, path)
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
    if threads is None:
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
    walk ~450 000 objects and took 1.2-1.6 s of a 10 s ``predict`` (issue 13); ``gc.freeze()``
    as the last exit handler leaves them out. Nothing is lost: memory goes back to the system
    with the process, and files are closed (or renamed into place) before then.
    """
    import atexit
    import gc

    atexit.unregister(gc.freeze)  # once, however often a process predicts
    atexit.register(gc.freeze)
