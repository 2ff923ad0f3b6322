"""Which radiomics backend computes the 851 features per ROI: pyradiomics itself, or our native one.

Both give the same numbers (the native backend equals pyradiomics to relative 1e-6, tested side by
side), so a feature table or bundle made by one is used with the other; which one made it is
recorded (``ExtractionSettings.backend``) for people, never compared.

* ``pyradiomics``: :mod:`DeepRadScoreLib.features.radiomics` (the field's reference; needs the
  package, which has no wheels for Python >= 3.10 and no macOS build in Slicer).
* ``native``: :mod:`DeepRadScoreLib.features.native` (numpy, scipy, SimpleITK, PyWavelets; no
  compiler). A setting it does not reproduce is refused with one line naming it.
* ``auto`` (the default): native, which is faster and lighter; pyradiomics stays a choice and is
  the reference the tests compare native with.

Both take the radiomics parameters as ``params``: a
:class:`~DeepRadScoreLib.features.params.RadiomicsParameters` (parsed once, cached by the SHA-256
of its text), a parsed mapping, a file path, or ``None`` for the bundled 851-feature file.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Optional

from DeepRadScoreLib.errors import InputError
from DeepRadScoreLib.features.params import ParamsLike
from DeepRadScoreLib.progress import CancelCheck, ProgressCallback


BACKENDS = ("auto", "pyradiomics", "native")
DEFAULT_BACKEND = "auto"


# What a worker process of this same interpreter found (:func:`adopt`): {"pyradiomics": version}.
_ADOPTED: dict[str, Optional[str]] = {}


def pyradiomics_version() -> Optional[str]:
    """pyradiomics' version when its feature extractor imports here, else ``None``."""
    if "pyradiomics" in _ADOPTED:
        return _ADOPTED["pyradiomics"]
    return _imported_version()


@lru_cache(maxsize=1)
def _imported_version() -> Optional[str]:
    try:
        import radiomics
        from radiomics import featureextractor  # noqa: F401  (the part we use; its C extension)
    except Exception:  # ImportError, or a broken build failing inside its import
        return None
    from DeepRadScoreLib.processes import pyradiomics_imported

    pyradiomics_imported()
    return str(radiomics.__version__)


def resolve(backend: str | None = None) -> str:
    """``pyradiomics`` or ``native`` for ``backend`` (``auto``/``None``: native).

    :raises InputError: an unknown name, or ``pyradiomics`` asked for where it does not import.
    """
    backend = DEFAULT_BACKEND if backend is None else str(backend)
    if backend not in BACKENDS:
        raise InputError(f"--radiomics-backend: unknown backend '{backend}' (choose one of "
                         f"{', '.join(BACKENDS)})")
    if backend == "auto":
        return "native"
    if backend == "pyradiomics" and pyradiomics_version() is None:
        raise InputError("--radiomics-backend pyradiomics: pyradiomics is not installed here (or "
                         "does not import); use --radiomics-backend native, which gives the same "
                         "numbers")
    return backend


def describe(backend: str | None = None) -> str:
    """``pyradiomics 3.0.1a1`` or ``native (DeepRadScore 0.x)``: what made the features."""
    resolved = resolve(backend)
    if resolved == "pyradiomics":
        return f"pyradiomics {pyradiomics_version()}"
    from DeepRadScoreLib import __version__

    return f"native (DeepRadScore {__version__})"


@dataclass(frozen=True)
class BackendFacts:
    """What a cohort's main process needs to know about the backend: the resolved name, its
    :func:`describe` text, pyradiomics' version ("" where it does not import) and the column names.

    A cohort run with local processes asks its first worker (:func:`backend_facts` there) and
    :func:`adopt` s the answer, so that its own process never imports pyradiomics, SimpleITK or
    SciPy (~35 MB of a process that only reads the manifest, hashes files and writes the table).
    The worker runs the same interpreter on the same paths, so its answer is this process's.
    """

    backend: str
    description: str
    pyradiomics_version: str
    names: tuple[str, ...]


def backend_facts(params: ParamsLike = None, backend: str | None = None) -> BackendFacts:
    """:class:`BackendFacts` of ``backend`` for the parameter file, found in this process.

    :raises InputError: an unknown backend, pyradiomics asked for where it does not import, an
        invalid parameter file.
    """
    resolved = resolve(backend)
    return BackendFacts(resolved, describe(resolved), pyradiomics_version() or "",
                        tuple(feature_names(params, resolved)))


def adopt(facts: BackendFacts) -> None:
    """Take pyradiomics' version from ``facts`` (found by a worker process of this interpreter),
    so that :func:`resolve`, :func:`describe` and :func:`pyradiomics_version` need not import it."""
    _ADOPTED["pyradiomics"] = facts.pyradiomics_version or None


def feature_names(params: ParamsLike = None, backend: str | None = None) -> list[str]:
    """The case's 1702 (for the bundled parameters) column names, ``tumor_*`` then
    ``peritumoral_*``; the same list for both backends."""
    if resolve(backend) == "pyradiomics":
        from DeepRadScoreLib.features.radiomics import feature_names as names
    else:
        from DeepRadScoreLib.features.native.backend import feature_names as names
    return names(params)


def extract_case_features(image, mask, ring, params: ParamsLike = None, *,
                          backend: str | None = None, jobs: int = 1,
                          progress: Optional[ProgressCallback] = None,
                          cancel: Optional[CancelCheck] = None) -> dict[str, float]:
    """The tumour's and the ring's features with the chosen backend.

    :param image: the CT; ``mask``, ``ring``: 0/1 masks on its grid (SimpleITK images).
    :param params: the pyradiomics parameters: a ``RadiomicsParameters``, a parsed mapping or a
        file path (default: the bundled 851-feature file).
    :param backend: ``auto``, ``pyradiomics`` or ``native`` (see the module doc).
    :param jobs: processes for the pyradiomics path's tasks (the native one runs in this thread).
    :returns: ``{tumor_<name>: value, ..., peritumoral_<name>: value}``.
    :raises InputError: a region too small, an unsupported parameter file, an unusable backend.
    """
    from DeepRadScoreLib.features.gate import check_case_bins
    from DeepRadScoreLib.features.params import parameters

    params = parameters(params)
    check_case_bins(image, mask, ring, params)  # a bin count beyond the bound: refused before the work
    if resolve(backend) == "pyradiomics":
        from DeepRadScoreLib.features.radiomics import extract_case_features as extract
    else:
        from DeepRadScoreLib.features.native.backend import extract_case_features as extract
    return extract(image, mask, ring, params, jobs=jobs, progress=progress, cancel=cancel)
