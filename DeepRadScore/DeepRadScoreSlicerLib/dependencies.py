"""What the engine needs inside 3D Slicer's Python, and which of it is missing.

The Slicer module asks this module, on the first Run, which packages are missing or at a wrong
version, shows ONE confirmation listing them, and then installs each from where Slicer can get it:

* ``torch`` / ``torchvision`` through the PyTorch extension's ``PyTorchUtils.installTorch`` (it
  picks the wheel that matches the machine's CUDA driver, which plain pip cannot);
* ``pyradiomics`` from the SlicerRadiomics extension: pyradiomics 3.1.0 is published only as an
  sdist that does not build on Slicer's Python 3.12 without a C tool chain, and SlicerRadiomics
  ships a built copy on Slicer's ``sys.path``; we never pip-install it;
* everything else with pip at the exact versions the engine is tested with (a model bundle's
  scikit-learn pipelines must be read by the scikit-learn that wrote them);
* ``numpy``, ``SimpleITK`` and ``vtk`` belong to Slicer itself: they are only checked, never
  installed, and :func:`constraints_text` pins them at Slicer's versions so that pip cannot
  replace them while installing the others.

Versions are read with :mod:`importlib.metadata`, so nothing here imports the packages (a broken
or half-installed torch must not crash the module's GUI) and this file imports nothing from
Slicer: it is tested with plain pytest.
"""
from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from typing import Callable, Optional

from packaging.requirements import Requirement
from packaging.version import InvalidVersion, Version

# Where a package comes from in Slicer.
PIP = "pip"
PYTORCH_EXTENSION = "PyTorch extension"
RADIOMICS_EXTENSION = "SlicerRadiomics extension"
SLICER = "3D Slicer"

# (requirement, source). The pip pins equal requirements/engine.txt (a test keeps them equal).
# Only what one-case analysis needs: no dask, shap, matplotlib or DICOM readers (Slicer reads
# DICOM itself and hands the module volume and segmentation nodes).
REQUIREMENTS: tuple[tuple[str, str], ...] = (
    ("torch>=2.2", PYTORCH_EXTENSION),
    ("torchvision>=0.17", PYTORCH_EXTENSION),
    ("pyradiomics>=3.0.1", RADIOMICS_EXTENSION),
    ("scipy==1.17.1", PIP),
    ("pandas==3.1.1", PIP),
    ("scikit-learn==1.9.1", PIP),
    ("skops==0.16.0", PIP),
    ("safetensors==0.8.0", PIP),
    ("PyWavelets==1.9.0", PIP),
    ("pykwalify==1.8.0", PIP),
    ("six==1.17.0", PIP),
    ("numpy>=1.26", SLICER),
    ("SimpleITK>=2.3", SLICER),
)

# Slicer's own packages: pinned at their installed version while pip runs.
SLICER_OWNED = ("numpy", "SimpleITK", "vtk")

VersionOf = Callable[[str], str]


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


def missing_requirements(requirements=REQUIREMENTS,
                         version_of: Callable[[str], Optional[str]] = installed_version) -> list[Missing]:
    """Every requirement that is absent or at a version outside its specifier, in list order."""
    missing = []
    for text, source in requirements:
        requirement = Requirement(text)
        installed = version_of(requirement.name)
        if installed is None or not _satisfies(requirement, installed):
            missing.append(Missing(text, source, installed))
    return missing


def _satisfies(requirement: Requirement, installed: str) -> bool:
    try:
        version = Version(installed)
    except InvalidVersion:
        return False
    # Local builds (e.g. torch "2.4.1+cu121") satisfy ">=2.2"; pre-releases count as installed.
    return requirement.specifier.contains(version, prereleases=True)


def pip_requirements(missing: list[Missing]) -> list[str]:
    """The requirement strings pip should install (only those whose source is pip)."""
    return [m.requirement for m in missing if m.source == PIP]


def torch_requirements(missing: list[Missing]) -> dict[str, Optional[str]]:
    """Version requirements for ``PyTorchUtils.installTorch`` (None when not needed)."""
    by_name = {m.name.lower(): str(Requirement(m.requirement).specifier) for m in missing
               if m.source == PYTORCH_EXTENSION}
    return {"torch": by_name.get("torch"), "torchvision": by_name.get("torchvision")}


def unresolvable(missing: list[Missing]) -> list[Missing]:
    """Requirements the module cannot install itself: another extension or Slicer provides them."""
    return [m for m in missing if m.source in (RADIOMICS_EXTENSION, SLICER)]


def confirmation_text(missing: list[Missing]) -> str:
    """The one message the user confirms before anything is installed."""
    lines = ["Deep-RadScore needs these Python packages in Slicer's Python environment:", ""]
    lines += [f"  - {m.describe()}" for m in missing]
    lines += ["", "They will be downloaded and installed now (this can take several minutes; "
              "PyTorch alone is about 1 GB with CUDA). Slicer's own numpy, SimpleITK and VTK are "
              "not changed. Install them?"]
    return "\n".join(lines)


def unresolvable_text(missing: list[Missing]) -> str:
    """What to tell the user about packages only another extension (or Slicer) can provide."""
    parts = []
    for m in missing:
        if m.source == RADIOMICS_EXTENSION:
            parts.append(f"{m.describe()}: install or update the SlicerRadiomics extension in the "
                         "Extensions Manager and restart Slicer")
        else:
            parts.append(f"{m.describe()}: it is part of 3D Slicer; reinstall Slicer")
    return "; ".join(parts)


def constraints_text(version_of: Callable[[str], Optional[str]] = installed_version) -> str:
    """A pip constraints file that keeps Slicer's own numpy, SimpleITK and VTK as they are."""
    lines = ["# Slicer's own packages stay at the versions Slicer ships."]
    for name in SLICER_OWNED:
        version = version_of(name)
        if version is not None:
            lines.append(f"{name}=={version}")
    return "\n".join(lines) + "\n"
