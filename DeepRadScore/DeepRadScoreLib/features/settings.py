"""The extraction settings a feature table was made with, and its ``<stem>.settings.json`` sidecar.

Features are only comparable when they were extracted the same way: a RadScore fitted on 3 mm
rings says nothing about 5 mm rings, and one fitted with other pyradiomics parameters reads other
numbers under the same column names. So ``extract`` writes, beside ``features.csv``,
``features.settings.json`` holding :class:`ExtractionSettings`; ``train`` copies it into
bundle.json, and ``predict``, ``evaluate`` and the Slicer module extract with the bundle's settings
and refuse an explicit one that contradicts them.

One value, one way: what the user asks for is a :class:`SettingsRequest` (``None`` = not asked);
:func:`resolve_settings` turns it, with the bundle's or table's recorded settings if there are
any, into the :class:`ExtractionSettings` every engine function takes. The default thickness and
the one range check (:func:`thickness_problem`, ``MIN_THICKNESS_MM``..``MAX_THICKNESS_MM``) live
here and nowhere else.

What is compared: the ring thickness, the parameter file by the SHA-256 of its content (the
content itself is kept, so a bundle can be applied without the original file), and the rule that
picks the tumour in a mask. The pyradiomics version is recorded and only logged when it differs:
Slicer ships its own pyradiomics build, and refusing every version difference would make a bundle
trained outside Slicer unusable in it. The radiomics backend that made the numbers (pyradiomics
or our native one, :mod:`DeepRadScoreLib.features.backends`) is recorded too and never compared:
both give the same numbers, so a bundle works with either.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

from DeepRadScoreLib.errors import InputError
# The bundled parameter file (an installed wheel has it), re-exported for the extraction.
from DeepRadScoreLib.features.params import PARAMS_PATH, params_file  # noqa: F401
from DeepRadScoreLib.typedjson import SchemaError, from_json, to_json

logger = logging.getLogger(__name__)

SETTINGS_FORMAT = 1
# The ring thickness: the paper's default and the one range every entry point (command line,
# Slicer's spin box, a bundle or table read back) accepts. Peritumoral rings in the literature are
# 1-20 mm; below half a millimetre a ring is thinner than any CT voxel, and a ring of several
# centimetres describes the lung, not the tumour's border (almost surely a typo).
DEFAULT_THICKNESS_MM = 3.0
MIN_THICKNESS_MM = 0.5
MAX_THICKNESS_MM = 50.0
# The rule of io.images.select_segment, recorded so that a change of it shows in every table.
MASK_RULE = ("tumour = the segment named by the manifest's roi_name, else the region with its "
             "label value, else the only region of the mask")


def thickness_problem(value) -> str | None:
    """What is wrong with ``value`` as a ring thickness in mm, or ``None``: the one range check."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return "not a number"
    if not (math.isfinite(value) and MIN_THICKNESS_MM <= value <= MAX_THICKNESS_MM):
        return f"the ring thickness must be from {MIN_THICKNESS_MM:g} to {MAX_THICKNESS_MM:g} mm"
    return None


def check_thickness(value, option: str = "--thickness-mm") -> float:
    """``value`` as a float, or an :class:`InputError` naming ``option``, the value and the range."""
    problem = thickness_problem(value)
    if problem is not None:
        raise InputError(f"{option} {_shown(value)}: {problem}")
    return float(value)


def _shown(value) -> str:
    try:
        return f"{float(value):g}"
    except (TypeError, ValueError):
        return str(value)


@dataclass(frozen=True)
class SettingsRequest:
    """What the user asked for (command-line options, the Slicer module's request); ``None``:
    not asked, so the bundle's or table's recorded value, else the default, is used
    (:func:`resolve_settings`, which also checks the values).

    :param thickness_mm: the ring thickness in mm.
    :param params_path: a pyradiomics parameter file.
    :param backend: the radiomics backend (``auto``, ``pyradiomics``, ``native``); never compared
        with a recorded one: both give the same numbers.
    """

    thickness_mm: float | None = None
    params_path: str | None = None
    backend: str = "auto"

    def to_json(self) -> dict:
        return to_json(self)

    @classmethod
    def from_json(cls, value, where: str = "settings") -> "SettingsRequest":
        """:raises InputError: ``<where>: ...`` for a malformed request."""
        try:
            return from_json(cls, value, where)
        except SchemaError as err:
            raise InputError(str(err)) from None


@dataclass(frozen=True)
class ExtractionSettings:
    """How a feature table's numbers were made (see the module doc for what is compared).

    Before a run ``backend`` is the one asked for (``auto`` too) and ``pyradiomics_version`` the
    recorded one; a run records what it used with :meth:`ran_with`.
    """

    thickness_mm: float
    params_sha256: str
    params_yaml: str
    mask_rule: str
    pyradiomics_version: str      # "" where pyradiomics was not installed (native backend)
    params_name: str = ""  # the file's name when it was extracted; for people, never compared
    backend: str = "pyradiomics"  # what computed the features (recorded, never compared)

    def __post_init__(self):
        problem = thickness_problem(self.thickness_mm)
        if problem is not None:
            raise ValueError(f"thickness_mm {_shown(self.thickness_mm)}: {problem}")
        if _sha256(self.params_yaml) != self.params_sha256:
            raise ValueError("params_sha256 does not match params_yaml (edited or damaged)")

    @classmethod
    def current(cls, thickness_mm: float = DEFAULT_THICKNESS_MM, params_path=None,
                backend: str | None = None) -> "ExtractionSettings":
        """The settings an extraction with these arguments records here (the backend resolved,
        so pyradiomics is imported where it is the one)."""
        from DeepRadScoreLib.features.backends import pyradiomics_version, resolve

        asked = resolve_settings(SettingsRequest(thickness_mm, params_path, backend or "auto"))
        return asked.ran_with(resolve(backend), pyradiomics_version() or "")

    def ran_with(self, backend: str, pyradiomics_version: str) -> "ExtractionSettings":
        """These settings as a run with ``backend`` (resolved) under that pyradiomics records them."""
        return replace(self, backend=backend, pyradiomics_version=pyradiomics_version)

    def contradictions(self, other: "ExtractionSettings") -> list[str]:
        """What of ``other`` differs from these settings in a way that changes the numbers."""
        out = []
        if not math.isclose(self.thickness_mm, other.thickness_mm, rel_tol=0.0, abs_tol=1e-9):
            out.append(f"ring thickness {other.thickness_mm:g} mm, not {self.thickness_mm:g} mm")
        if self.params_sha256 != other.params_sha256:
            out.append(f"radiomics parameters {other.params_name or 'file'} (sha256 "
                       f"{other.params_sha256[:12]}), not {self.params_name or 'file'} "
                       f"(sha256 {self.params_sha256[:12]})")
        if self.mask_rule != other.mask_rule:
            out.append("another rule for choosing the tumour in the mask")
        return out

    def summary(self) -> dict:
        """What a result records of the settings it used: everything but the parameters' text
        (their hash and file name identify them)."""
        return {"thickness_mm": self.thickness_mm, "params_sha256": self.params_sha256,
                "params_name": self.params_name, "mask_rule": self.mask_rule,
                "backend": self.backend, "pyradiomics_version": self.pyradiomics_version}

    def parameters(self):
        """The radiomics parameters as the backends take them (a ``features.params.
        RadiomicsParameters``): parsed once per process and content hash, never written to a
        temporary file."""
        return _parameters(self.params_sha256, self.params_yaml, self.params_name)


def resolve_settings(request: SettingsRequest | None = None, recorded: ExtractionSettings | None = None,
                     where: str = "") -> ExtractionSettings:
    """The settings to extract with: recorded (a bundle's, a table's) vs asked vs default.

    :param request: what was asked for (``None``: nothing).
    :param recorded: the settings of the bundle or feature table the features must match, or
        ``None`` (a fresh extraction: the asked values, else the defaults).
    :param where: the bundle or table path, named in the error.
    :returns: ``recorded`` (or the asked/default values) with the asked backend; the parameter
        file is read and hashed here, once.
    :raises InputError: an asked value that contradicts ``recorded`` (``<where>: ...``), a
        thickness out of range, a missing parameter file.
    """
    request = request or SettingsRequest()
    if recorded is None:
        thickness = DEFAULT_THICKNESS_MM if request.thickness_mm is None else request.thickness_mm
        path, text = _read_params(request.params_path)
        return ExtractionSettings(thickness_mm=check_thickness(thickness), params_sha256=_sha256(text),
                                  params_yaml=text, mask_rule=MASK_RULE, pyradiomics_version="",
                                  params_name=path.name, backend=request.backend)
    checked = check_settings(recorded, where, request.thickness_mm, request.params_path)
    return replace(checked, backend=request.backend)


def check_settings(recorded: ExtractionSettings, where: str, thickness_mm: float | None = None,
                   params_path=None) -> ExtractionSettings:
    """``recorded``, once the explicitly given values (``None``: not given) agree with it.

    :raises InputError: ``<where>: ...`` naming each contradicting setting.
    """
    given = recorded
    if thickness_mm is not None:
        given = replace(given, thickness_mm=check_thickness(thickness_mm))
    if params_path is not None:
        path, text = _read_params(params_path)
        given = replace(given, params_yaml=text, params_sha256=_sha256(text), params_name=path.name)
    problems = recorded.contradictions(given)
    if problems:
        raise InputError(f"{where}: the bundle was trained on features extracted with other settings: "
                         f"given {'; '.join(problems)}; leave the option out to use the bundle's")
    note_version(recorded, where)
    return recorded


def note_version(recorded: ExtractionSettings, where: str) -> None:
    """Log (not refuse) a pyradiomics version other than the recorded one (see the module doc)."""
    from DeepRadScoreLib.features.backends import pyradiomics_version

    here = pyradiomics_version()
    if here is not None and recorded.pyradiomics_version and here != recorded.pyradiomics_version:
        logger.warning("%s: features were extracted with pyradiomics %s, this is %s", where,
                       recorded.pyradiomics_version, here)


def settings_path(features_csv) -> Path:
    """``features.csv`` -> ``features.settings.json`` (same stem rule as the patches file)."""
    features_csv = Path(features_csv)
    name = features_csv.name
    stem = name.rsplit(".", 1)[0] if "." in name else name
    return features_csv.with_name(f"{stem}.settings.json")


def settings_document(settings: ExtractionSettings) -> str:
    """The sidecar's text."""
    return json.dumps({"format_version": SETTINGS_FORMAT, "settings": to_json(settings)}, indent=1,
                      allow_nan=False) + "\n"


def write_settings(path: Path, settings: ExtractionSettings) -> None:
    """Write the sidecar's text to ``path`` (the caller's temporary file of an atomic write)."""
    Path(path).write_text(settings_document(settings), encoding="utf-8")


def read_settings(features_csv) -> ExtractionSettings:
    """The settings recorded beside a feature table.

    :raises InputError: ``<sidecar>: ...`` when it is missing, unreadable or malformed.
    """
    path = settings_path(features_csv)
    if not path.is_file():
        raise InputError(f"{path}: no extraction settings beside the feature table {Path(features_csv).name} "
                         f"(tables made before settings were recorded must be extracted again)")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"{path}: not readable as JSON ({err})") from None
    if not isinstance(document, dict) or document.get("format_version") != SETTINGS_FORMAT:
        raise InputError(f"{path}: not an extraction settings file of format {SETTINGS_FORMAT}")
    try:
        return from_json(ExtractionSettings, document.get("settings"), "settings")
    except SchemaError as err:
        raise InputError(f"{path}: {err}") from None


def _read_params(params_path) -> tuple[Path, str]:
    """The parameter file to use (the given one, else the bundled one) and its text."""
    path = params_file(params_path)
    return path, path.read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def _bundled_sha256() -> str:
    return _sha256(PARAMS_PATH.read_text(encoding="utf-8"))


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@lru_cache(maxsize=8)
def _parameters(sha256: str, text: str, name: str):
    # Keyed by the content hash that __post_init__ checked, so the text is parsed once and
    # hashed never again.
    from DeepRadScoreLib.features.params import RadiomicsParameters, from_text

    parsed = from_text(text, name or "radiomics parameters")
    return RadiomicsParameters(parsed.mapping, sha256, parsed.source, text)
