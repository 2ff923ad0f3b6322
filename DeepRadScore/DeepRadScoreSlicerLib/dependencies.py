"""What the engine needs inside 3D Slicer's Python, which of it is missing, and how to install it.

The Logic asks this module, on the first Run (or a console call), which packages are missing or
at a wrong version, shows ONE confirmation listing them, and installs each from where Slicer can
get it:

* ``torch`` / ``torchvision`` through the PyTorch extension's ``PyTorchUtils.installTorch`` (it
  picks the wheel that matches the machine's CUDA driver, which plain pip cannot);
* ``pyradiomics`` is optional (:data:`OPTIONAL_REQUIREMENTS`): the SlicerRadiomics extension's
  copy is used when it is there, and without it (SlicerRadiomics has no macOS build) the engine's
  native backend computes the same numbers from numpy, scipy, SimpleITK, PyWavelets and PyYAML
  (:func:`radiomics_backend_text` says which one ran). SlicerRadiomics builds pyradiomics from a
  commit whose metadata says ``3.0.1a1`` (the 3.1.0 sdist says the same), so a copy that is
  installed must be at least ``3.0.1a1``; an older one is reported, never silently used. We
  never pip-install it (the sdist does not build on Slicer's Python without a C tool chain);
* everything else with pip, from ``Resources/requirements.txt`` (``>=`` minimums; exact pins only
  for scikit-learn and skops, which a bundle's pipelines need), under a constraints file
  (:func:`constraints_text`) that holds every package already installed in Slicer's Python at
  its version, so pip cannot replace Slicer's numpy, scipy, SimpleITK... or another extension's
  PyWavelets (SlicerRadiomics' copies come first on the launcher's path);
* a package that Slicer itself ships (:data:`SLICER_OWNED`) is only checked, never installed.

Supported Slicer: 5.10 and later (:func:`unsupported_slicer`): the pins need Python >= 3.11 and
numpy >= 2.0.2, and Slicer 5.8 ships Python 3.9 with numpy 1.26.

Versions are read with :mod:`importlib.metadata`, so nothing here imports the packages (a broken
torch must not crash the module's GUI), and this file imports nothing from Slicer: it is tested
with plain pytest and in a Slicer-like Python (Testing/test_slicer_env.py).
"""
from __future__ import annotations

import importlib.metadata
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

logger = logging.getLogger(__name__)

# Where a package comes from in Slicer.
PIP = "pip"
PYTORCH_EXTENSION = "PyTorch extension"
RADIOMICS_EXTENSION = "SlicerRadiomics extension"
SLICER = "3D Slicer"

REQUIREMENTS_FILE = Path(__file__).resolve().parent.parent / "Resources" / "requirements.txt"
MINIMUM_SLICER = (5, 10)

# What does not come from pip: (requirement, source).
OTHER_REQUIREMENTS: tuple[tuple[str, str], ...] = (
    ("torch>=2.2", PYTORCH_EXTENSION),
    ("torchvision>=0.17", PYTORCH_EXTENSION),
    ("numpy>=2.0", SLICER),
    ("SimpleITK>=2.3", SLICER),
)

# Checked only where installed: absent is fine (the native radiomics backend runs instead), a
# version outside the specifier is reported. SlicerRadiomics' build (pyradiomics commit 146e3bd)
# and the 3.1.0 sdist both say 3.0.1a1.
OPTIONAL_REQUIREMENTS: tuple[tuple[str, str], ...] = (
    ("pyradiomics>=3.0.1a1", RADIOMICS_EXTENSION),
)

# Packages Slicer 5.10 ships in its own Python: never upgraded or replaced by this module.
SLICER_OWNED = ("numpy", "scipy", "SimpleITK", "vtk", "pip", "setuptools", "wheel", "packaging",
                "requests", "certifi", "urllib3", "idna", "charset-normalizer", "pydicom",
                "dicomweb-client", "GitPython", "pillow")


def pip_requirement_lines(path: Path = REQUIREMENTS_FILE) -> list[str]:
    """The requirement lines of ``Resources/requirements.txt`` (comments dropped)."""
    lines = []
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            Requirement(line)  # a malformed line fails here, not inside pip
            lines.append(line)
    return lines


def requirements(path: Path = REQUIREMENTS_FILE) -> tuple[tuple[str, str], ...]:
    """Every required package with its source, in the order the confirmation lists them
    (pyradiomics is not among them: see :data:`OPTIONAL_REQUIREMENTS`)."""
    torch = tuple(r for r in OTHER_REQUIREMENTS if r[1] != SLICER)
    slicer_own = tuple(r for r in OTHER_REQUIREMENTS if r[1] == SLICER)
    return torch + tuple((line, PIP) for line in pip_requirement_lines(path)) + slicer_own


@dataclass(frozen=True)
class Missing:
    """A requirement that is not satisfied: ``installed`` is None when the package is absent."""

    requirement: str
    source: str
    installed: Optional[str]

    @property
    def name(self) -> str:
        return Requirement(self.requirement).name

    def describe(self) -> str:
        state = "not installed" if self.installed is None else f"{self.installed} installed"
        return f"{self.requirement} ({state}; from {self.source})"


def installed_version(name: str) -> Optional[str]:
    """The installed distribution's version, or None; never imports the package."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def installed_distributions() -> dict[str, str]:
    """Every distribution on ``sys.path``: canonical name -> version (the first one found wins,
    as for imports)."""
    found: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            found.setdefault(canonicalize_name(name), dist.version)
    return found


def missing_requirements(wanted: Optional[Iterable[tuple[str, str]]] = None,
                         version_of: Callable[[str], Optional[str]] = installed_version,
                         optional: Optional[Iterable[tuple[str, str]]] = None) -> list[Missing]:
    """Every requirement that is absent or at a version outside its specifier, in list order,
    then every optional one (default :data:`OPTIONAL_REQUIREMENTS`) that is installed at a
    version outside its specifier (absent is fine)."""
    missing = []
    for text, source in (requirements() if wanted is None else wanted):
        requirement = Requirement(text)
        installed = version_of(requirement.name)
        if installed is None or not _satisfies(requirement, installed):
            missing.append(Missing(text, source, installed))
    for text, source in (OPTIONAL_REQUIREMENTS if optional is None else optional):
        installed = version_of(Requirement(text).name)
        if installed is not None and not _satisfies(Requirement(text), installed):
            missing.append(Missing(text, source, installed))
    return missing


def _satisfies(requirement: Requirement, installed: str) -> bool:
    try:
        version = Version(installed)
    except InvalidVersion:
        return False
    # Local builds (torch "2.4.1+cu121") satisfy ">=2.2"; pre-releases (SlicerRadiomics'
    # pyradiomics "3.0.1a1") count as installed.
    return requirement.specifier.contains(version, prereleases=True)


def pip_requirements(missing: list[Missing]) -> list[str]:
    """The requirement strings pip should install (only those whose source is pip)."""
    return [m.requirement for m in missing if m.source == PIP]


def torch_requirements(missing: list[Missing]) -> dict[str, Optional[str]]:
    """Version requirements for ``PyTorchUtils.installTorch`` (None when not needed)."""
    by_name = {m.name.lower(): str(Requirement(m.requirement).specifier) for m in missing
               if m.source == PYTORCH_EXTENSION}
    return {"torch": by_name.get("torch"), "torchvision": by_name.get("torchvision")}


def _slicer_owned(name: str) -> bool:
    return canonicalize_name(name) in {canonicalize_name(n) for n in SLICER_OWNED}


def unresolvable(missing: list[Missing]) -> list[Missing]:
    """Requirements the module must not install itself: another extension or Slicer provides
    them, or pip would have to replace a package Slicer ships (e.g. a too old scipy)."""
    return [m for m in missing if m.source in (RADIOMICS_EXTENSION, SLICER)
            or (m.source == PIP and m.installed is not None and _slicer_owned(m.name))]


def confirmation_text(missing: list[Missing]) -> str:
    """The one message the user confirms before anything is installed."""
    lines = ["Deep-RadScore needs these Python packages in Slicer's Python environment:", ""]
    lines += [f"  - {m.describe()}" for m in missing]
    lines += ["", "They will be downloaded and installed now. This takes several minutes (PyTorch "
              "alone is about 1 GB with CUDA) and Slicer does not respond meanwhile. Packages that "
              "Slicer ships (numpy, scipy, SimpleITK, VTK) are not changed. Install them?"]
    return "\n".join(lines)


def unresolvable_text(missing: list[Missing]) -> str:
    """What to tell the user about packages only another extension (or Slicer) can provide."""
    parts = []
    for m in missing:
        if m.source == RADIOMICS_EXTENSION:
            # Only an installed, too old copy gets here (absent is fine: the native backend runs).
            parts.append(f"{m.describe()}: update the SlicerRadiomics extension in the Extensions "
                         "Manager, or uninstall it (Deep-RadScore's native backend then computes the "
                         "same features), and restart Slicer")
        else:
            parts.append(f"{m.describe()}: it is part of 3D Slicer; use Slicer "
                         f"{MINIMUM_SLICER[0]}.{MINIMUM_SLICER[1]} or later")
    return "; ".join(parts)


def constraints_text(installed: Optional[dict[str, str]] = None, upgrading: Iterable[str] = ()) -> str:
    """A pip constraints file holding every installed package at its version.

    ``installed``: canonical name -> version (default: this Python's distributions), i.e. all
    that Slicer ships and what other extensions added. ``upgrading``: names the install is meant
    to change (missing or outdated pip requirements), left free.
    """
    installed = installed_distributions() if installed is None else installed
    free = {canonicalize_name(n) for n in upgrading}
    lines = ["# Every package already in Slicer's Python stays at its version (Deep-RadScore)."]
    for name in sorted(installed):
        if canonicalize_name(name) not in free:
            lines.append(f"{name}=={installed[name]}")
    return "\n".join(lines) + "\n"


def unsupported_slicer(major: int, minor: int) -> Optional[str]:
    """Why this Slicer version cannot run the module (None when it can)."""
    if (major, minor) >= MINIMUM_SLICER:
        return None
    return (f"Deep-RadScore needs 3D Slicer {MINIMUM_SLICER[0]}.{MINIMUM_SLICER[1]} or later (this is "
            f"{major}.{minor}): its Python packages need Python 3.11+ and numpy 2, which older Slicer "
            "versions do not have. Install a current Slicer from download.slicer.org.")


NATIVE = "native"


def radiomics_backend_text(described: str, requested: str = "auto") -> str:
    """The line a Run shows about which radiomics backend computed its features.

    :param described: what ran, as ``DeepRadScoreLib.features.backends.describe`` says it
        (``pyradiomics 3.0.1a1`` or ``native (DeepRadScore 0.1.0)``).
    :param requested: the backend asked for (``auto``, ``pyradiomics`` or ``native``).
    :returns: e.g. ``radiomics: DeepRadScore's native backend (the default; the same numbers as
        pyradiomics)``.
    """
    if not described.startswith(NATIVE):
        return f"radiomics: {described}."
    if requested == NATIVE:
        return "radiomics: DeepRadScore's native backend (chosen; the same numbers as pyradiomics)."
    return "radiomics: DeepRadScore's native backend (the default; the same numbers as pyradiomics)."
