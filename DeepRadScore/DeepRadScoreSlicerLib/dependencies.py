"""What a Run needs inside 3D Slicer's Python, which of it is missing, and how to install it.

What a Run needs is decided from its inputs alone, before anything heavy is imported
(:func:`run_needs`): every Run needs the ``[features]`` group of ``Resources/requirements.txt``
(the ring, the radiomics and the table); a bundle adds

* ``[onnx]`` (onnxruntime) when its ``bundle.json`` lists ``.onnx`` files among its hashed files:
  then no torch at all;
* ``[torch]`` otherwise: torch (>= 2.3, the first built for numpy 2, which Slicer ships) and, for
  a torchvision backbone, torchvision, through the PyTorch extension's ``PyTorchUtils.installTorch``
  (it picks the wheel that matches the machine's CUDA driver, which plain pip cannot), and
  safetensors with pip. An Intel Mac has no such torch (its last build, 2.2, is for numpy 1): the
  Run is refused with what to do (:func:`torch_platform_problem`);
* ``[sklearn]`` (scikit-learn, skops) only when one of its classifiers has no numpy inference file
  (a format-2 bundle, or an export that failed its check), as ``model/bundle.py`` loads them.

``pyradiomics`` is optional (:data:`OPTIONAL_REQUIREMENTS`): the SlicerRadiomics extension's copy
is used when it is there and new enough; absent, too old or with a malformed version, the native
backend computes the same numbers (:func:`radiomics_choice` says which, with one warning line). We
never pip-install it (the sdist does not build on Slicer's Python without a C tool chain).

Everything from pip is installed under a constraints file (:func:`constraints_text`) that holds
every package already in Slicer's Python at its version, so pip cannot replace Slicer's numpy,
scipy, SimpleITK... or another extension's PyWavelets. A package that Slicer itself ships
(:data:`SLICER_OWNED`) is only checked, never installed.

Supported Slicer: 5.10 and later (:func:`unsupported_slicer`): the pins need Python >= 3.11 and
numpy >= 2.0.2, and Slicer 5.8 ships Python 3.9 with numpy 1.26.

Versions are read with :mod:`importlib.metadata`, so nothing here imports the packages (a broken
torch must not crash the module's GUI), and this file imports nothing from Slicer: it is tested
with plain pytest and in a Slicer-like Python (Testing/test_slicer_env.py).
"""
from __future__ import annotations

import importlib.metadata
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version


# Where a package comes from in Slicer.
PIP = "pip"
PYTORCH_EXTENSION = "PyTorch extension"
RADIOMICS_EXTENSION = "SlicerRadiomics extension"
SLICER = "3D Slicer"

REQUIREMENTS_FILE = Path(__file__).resolve().parent.parent / "Resources" / "requirements.txt"
MINIMUM_SLICER = (5, 10)

# The groups of Resources/requirements.txt, in the order a confirmation lists them.
FEATURES, ONNX, TORCH, SKLEARN = "features", "onnx", "torch", "sklearn"
GROUPS = (FEATURES, ONNX, TORCH, SKLEARN)
_GROUP_LINE = re.compile(r"^#\s*\[(\w+)\]")

# What does not come from pip: group -> (requirement, source). torch 2.3 is the first built
# against numpy 2 (torch.from_numpy fails on Slicer's numpy 2 with an older one).
OTHER_REQUIREMENTS: dict[str, tuple[tuple[str, str], ...]] = {
    FEATURES: (("numpy>=2.0", SLICER), ("SimpleITK>=2.3", SLICER)),
    TORCH: (("torch>=2.3", PYTORCH_EXTENSION),),
}
TORCHVISION = ("torchvision>=0.18", PYTORCH_EXTENSION)  # the torch 2.3 release's torchvision
# Backbones the engine builds without torchvision (deep/densenet.py).
OWN_BACKBONES = ("densenet121",)

# Checked only where installed: absent is fine (the native radiomics backend runs instead), a
# version outside the specifier falls back to native with a warning. SlicerRadiomics' build
# (pyradiomics commit 146e3bd) and the 3.1.0 sdist both say 3.0.1a1.
OPTIONAL_REQUIREMENTS: tuple[tuple[str, str], ...] = (
    ("pyradiomics>=3.0.1a1", RADIOMICS_EXTENSION),
)

# Packages Slicer 5.10 ships in its own Python: never upgraded or replaced by this module.
SLICER_OWNED = ("numpy", "scipy", "SimpleITK", "vtk", "pip", "setuptools", "wheel", "packaging",
                "requests", "certifi", "urllib3", "idna", "charset-normalizer", "pydicom",
                "dicomweb-client", "GitPython", "pillow")


def pip_requirement_groups(path: Path = REQUIREMENTS_FILE) -> dict[str, list[str]]:
    """The requirement lines of ``Resources/requirements.txt`` by group (comments dropped)."""
    groups: dict[str, list[str]] = {name: [] for name in GROUPS}
    group = None
    for raw in path.read_text().splitlines():
        header = _GROUP_LINE.match(raw.strip())
        if header:
            group = header.group(1)
            if group not in groups:
                raise ValueError(f"{path}: unknown requirement group [{group}]")
            continue
        line = raw.split("#", 1)[0].strip()
        if line:
            if group is None:
                raise ValueError(f"{path}: '{line}' is in no [group]")
            Requirement(line)  # a malformed line fails here, not inside pip
            groups[group].append(line)
    return groups


def pip_requirement_lines(path: Path = REQUIREMENTS_FILE) -> list[str]:
    """Every requirement line of ``Resources/requirements.txt``, all groups."""
    return [line for lines in pip_requirement_groups(path).values() for line in lines]


@dataclass(frozen=True)
class RunNeeds:
    """What one Run needs, decided from its inputs: the groups, and whether torchvision is one."""

    groups: tuple[str, ...]
    torchvision: bool = False

    @property
    def torch(self) -> bool:
        return TORCH in self.groups


def bundle_files(bundle_path) -> dict:
    """bundle.json of a bundle folder, parsed (no check of its hashes: the engine does that)."""
    import json

    from DeepRadScoreLib.errors import InputError

    meta_file = Path(bundle_path) / "bundle.json"
    if not meta_file.is_file():
        raise InputError(f"{bundle_path}: not a DeepRadScore bundle (no bundle.json)")
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise InputError(f"{meta_file}: not valid JSON ({err})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("files", {}), dict):
        raise InputError(f"{meta_file}: not a bundle description")
    return meta


def run_needs(bundle_path="") -> RunNeeds:
    """The requirement groups a Run with this bundle (None or "" = features only) needs.

    ONNX networks are recognised by ``.onnx`` names among bundle.json's hashed ``files``; a
    classifier without an ``inference_file`` is applied through scikit-learn.
    """
    if not bundle_path or str(bundle_path) in ("", "."):
        return RunNeeds((FEATURES,))
    meta = bundle_files(bundle_path)
    files = meta.get("files") or {}
    groups = [FEATURES]
    torchvision = False
    if any(str(name).lower().endswith(".onnx") for name in files):
        groups.append(ONNX)
    else:
        groups.append(TORCH)
        deep = meta.get("deep") if isinstance(meta.get("deep"), dict) else {}
        config = deep.get("config") if isinstance(deep.get("config"), dict) else {}
        torchvision = str(config.get("backbone", "")) not in OWN_BACKBONES
    models = meta.get("models") if isinstance(meta.get("models"), dict) else {}
    for endpoint in models.values():
        inner = (endpoint or {}).get("models", {}) if isinstance(endpoint, dict) else {}
        if any(not (info or {}).get("inference_file") for info in inner.values() if isinstance(info, dict)):
            groups.append(SKLEARN)
            break
    return RunNeeds(tuple(groups), torchvision)


def requirements(needs: Optional[RunNeeds] = None, path: Path = REQUIREMENTS_FILE) -> tuple[tuple[str, str], ...]:
    """Every requirement of a Run with ``needs`` (default: every group, the self-test's and the
    test environment's view) with its source, in the order the confirmation lists them
    (pyradiomics is not among them: see :data:`OPTIONAL_REQUIREMENTS`)."""
    groups = GROUPS if needs is None else needs.groups
    pip_groups = pip_requirement_groups(path)
    torch = []
    if TORCH in groups:
        torch = list(OTHER_REQUIREMENTS[TORCH])
        if needs is None or needs.torchvision:
            torch.append(TORCHVISION)
    # A line in two groups (safetensors: [onnx] and [torch]) is asked for once.
    pip = list(dict.fromkeys((line, PIP) for group in GROUPS if group in groups for line in pip_groups[group]))
    return tuple(torch) + tuple(pip) + OTHER_REQUIREMENTS[FEATURES]


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
                         version_of: Callable[[str], Optional[str]] = installed_version) -> list[Missing]:
    """Every requirement (default: :func:`requirements`, every group) that is absent or at a
    version outside its specifier, in list order."""
    missing = []
    for text, source in (requirements() if wanted is None else wanted):
        requirement = Requirement(text)
        installed = version_of(requirement.name)
        if installed is None or not _satisfies(requirement, installed):
            missing.append(Missing(text, source, installed))
    return missing


def radiomics_choice(requested: str = "auto",
                     version_of: Callable[[str], Optional[str]] = installed_version) -> tuple[str, str]:
    """``(backend, warning)``: the radiomics backend a Run asks the engine for, and the one
    warning line to show ("" when none).

    ``auto`` stays ``auto`` (pyradiomics where it imports, else native) unless an installed
    pyradiomics is too old or its version malformed: then ``native``, with a warning. An explicit
    ``pyradiomics`` or ``native`` is passed on (the engine refuses an unusable pyradiomics).
    """
    if requested != "auto":
        return requested, ""
    for text, _source in OPTIONAL_REQUIREMENTS:
        requirement = Requirement(text)
        installed = version_of(requirement.name)
        if installed is not None and not _satisfies(requirement, installed):
            return NATIVE, (f"The installed {requirement.name} {installed!r} is not {requirement.specifier} "
                            "(update the SlicerRadiomics extension to use it): DeepRadScore's native "
                            "backend computed the features instead (the same numbers).")
    return requested, ""


def torch_platform_problem(needs: RunNeeds, system: str, machine: str,
                           version_of: Callable[[str], Optional[str]] = installed_version) -> Optional[str]:
    """Why this machine cannot get the torch a Run needs (None when it can or none is needed).

    Intel Macs: PyTorch's last x86_64 macOS build is 2.2, compiled for numpy 1, and
    ``torch.from_numpy`` fails under Slicer's numpy 2.
    """
    if not needs.torch or system != "Darwin" or machine not in ("x86_64", "i386"):
        return None
    installed = version_of("torch")
    if installed is not None and _satisfies(Requirement(OTHER_REQUIREMENTS[TORCH][0][0]), installed):
        return None
    return ("This bundle's Deep-CT networks need PyTorch 2.3 or later, which has no build for Intel "
            "Macs (PyTorch 2.2, the last one, does not work with Slicer's numpy 2). Use a bundle "
            "saved with ONNX networks (it needs no PyTorch), or an Apple Silicon Mac, Windows or Linux.")


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
    return [m for m in missing if m.source == SLICER
            or (m.source == PIP and m.installed is not None and _slicer_owned(m.name))]


def confirmation_text(missing: list[Missing], needs: Optional[RunNeeds] = None) -> str:
    """The one message the user confirms before anything is installed."""
    lines = ["Deep-RadScore needs these Python packages in Slicer's Python environment for this Run:", ""]
    lines += [f"  - {m.describe()}" for m in missing]
    lines.append("")
    if any(m.source == PYTORCH_EXTENSION for m in missing):
        lines.append("This bundle has no ONNX networks, so it needs PyTorch, installed through the "
                     "PyTorch extension: about 1 GB (up to 2.5 GB with CUDA), several minutes.")
    else:
        lines.append("About 100 to 200 MB; a minute or two on a good connection. PyTorch is not needed.")
    lines.append("They will be downloaded and installed now; Slicer does not respond meanwhile. "
                 "Packages that Slicer ships (numpy, scipy, SimpleITK, VTK) are not changed. Install them?")
    return "\n".join(lines)


def unresolvable_text(missing: list[Missing]) -> str:
    """What to tell the user about packages only Slicer itself can provide."""
    return "; ".join(f"{m.describe()}: it is part of 3D Slicer; use Slicer "
                     f"{MINIMUM_SLICER[0]}.{MINIMUM_SLICER[1]} or later" for m in missing)


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
