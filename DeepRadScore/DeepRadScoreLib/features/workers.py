"""Where the cohort's worker processes come from: a fork server that has imported what they need.

On Linux the pools use a fork server (:func:`process_context`): it has imported what the workers
of the chosen radiomics backend import (pyradiomics or the native modules, SciPy, the image
readers) once, so a pool starts in milliseconds and its workers share those pages (a page shared
by the fork server and N workers counts 1/(N+1) in each one's PSS) instead of each holding its
own copy. Each worker freezes the objects it inherits out of the garbage collector's reach and
hands the heap it freed back to the system after each case; the guards that keep workers and fork
server from outliving the command are :mod:`DeepRadScoreLib.processes`' (the pools' initializer).
"""
from __future__ import annotations

import multiprocessing
import sys


# What the fork server imports for the workers of each backend (None: a server for both). The
# modules are the ones a worker imports anyway: a module no worker needs would only add its pages.
_PRELOAD_COMMON = ("DeepRadScoreLib.processes", "DeepRadScoreLib.features.extraction",
                   "DeepRadScoreLib.io.images", "DeepRadScoreLib.regions", "scipy.ndimage", "scipy.spatial",
                   "threadpoolctl")
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
    # A module that does not import (e.g. pyradiomics where it is absent) is skipped there.
    context.set_forkserver_preload([*_PRELOAD_COMMON, *extra])
    return context


def preload_for(backend: str | None) -> str:
    """The backend whose modules a fork server should preload for ``backend``: ``auto``/``None``
    is the native backend, as ``features.backends.resolve`` decides (not imported here: that
    module imports the pyradiomics path, which imports this one)."""
    return backend if backend in _PRELOAD else "native"