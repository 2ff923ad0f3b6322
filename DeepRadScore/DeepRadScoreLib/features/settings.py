"""The extraction settings a feature table was made with, and its ``<stem>.settings.json`` sidecar.

Features are only comparable when they were extracted the same way: a RadScore fitted on 3 mm
rings says nothing about 5 mm rings, and one fitted with other pyradiomics parameters reads other
numbers under the same column names. So ``extract`` writes, beside ``features.csv``,
``features.settings.json`` holding :class:`ExtractionSettings`; ``train`` copies it into
bundle.json, and ``predict``, ``evaluate`` and the Slicer module extract with the bundle's settings
and refuse an explicit one that contradicts them (:func:`check_settings`).

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
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from DeepRadScoreLib.errors import InputError
# The bundled parameter file (an installed wheel has it), re-exported for the extraction.
from DeepRadScoreLib.features.native.params import PARAMS_PATH, params_file  # noqa: F401
from DeepRadScoreLib.typedjson import SchemaError, from_json, to_json

logger = logging.getLogger(__name__)

SETTINGS_FORMAT = 1
DEFAULT_THICKNESS_MM = 3.0
# The rule of io.images.select_segment, recorded so that a change of it shows in every table.
MASK_RULE = ("tumour = the segment named by the manifest's roi_name, else the region with its "
             "label value, else the only region of the mask")


@dataclass(frozen=True)
class ExtractionSettings:
    """How a feature table's numbers were made (see the module doc for what is compared)."""

    thickness_mm: float
    params_sha256: str
    params_yaml: str
    mask_rule: str
    pyradiomics_version: str      # "" where pyradiomics was not installed (native backend)
    params_name: str = ""  # the file's name when it was extracted; for people, never compared
    backend: str = "pyradiomics"  # what computed the features (recorded, never compared)

    def __post_init__(self):
        if not (math.isfinite(self.thickness_mm) and self.thickness_mm > 0):
            raise ValueError(f"thickness_mm must be a positive number, got {self.thickness_mm}")
        if hashlib.sha256(self.params_yaml.encode()).hexdigest() != self.params_sha256:
            raise ValueError("params_sha256 does not match params_yaml (edited or damaged)")

    @classmethod
    def current(cls, thickness_mm: float = DEFAULT_THICKNESS_MM, params_path=None,
                backend: str | None = None) -> "ExtractionSettings":
        """The settings an extraction with these arguments uses here.

        :param thickness_mm: the peritumoral ring thickness.
        :param params_path: a pyradiomics parameter file; ``None``: the bundled 851-feature one.
        :param backend: the radiomics backend (``auto``/``None``, ``pyradiomics``, ``native``).
        :returns: the :class:`ExtractionSettings`.
        """
        from DeepRadScoreLib.features.backends import pyradiomics_version, resolve

        if not (math.isfinite(float(thickness_mm)) and float(thickness_mm) > 0):
            raise InputError(f"--thickness-mm: the ring thickness must be a positive number of mm, "
                             f"got {thickness_mm}")
        path = params_file(params_path)
        text = path.read_text(encoding="utf-8")
        return cls(thickness_mm=float(thickness_mm), params_sha256=_sha256(text), params_yaml=text,
                   mask_rule=MASK_RULE, pyradiomics_version=pyradiomics_version() or "",
                   params_name=path.name, backend=resolve(backend))

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

    def params_path(self) -> Path:
        """A parameter file holding :attr:`params_yaml` (the bundled file when it is that one;
        else a content-addressed copy in the temporary folder, reused across calls so that
        pyradiomics' per-file extractor cache keeps working)."""
        from DeepRadScoreLib.outputs import atomic_file

        if PARAMS_PATH.is_file() and _sha256(PARAMS_PATH.read_text(encoding="utf-8")) == self.params_sha256:
            return PARAMS_PATH
        path = Path(tempfile.gettempdir()) / f"deepradscore-params-{self.params_sha256[:24]}.yaml"
        if not path.is_file() or _sha256(path.read_text(encoding="utf-8")) != self.params_sha256:
            with atomic_file(path) as tmp:
                tmp.write_text(self.params_yaml, encoding="utf-8")
        return path


def check_settings(recorded: ExtractionSettings, where: str, thickness_mm: float | None = None,
                   params_path=None) -> ExtractionSettings:
    """The settings to extract with for a bundle (or table) recorded with ``recorded``.

    :param recorded: the bundle's settings.
    :param where: the bundle path, named in the error.
    :param thickness_mm: an explicitly given thickness, or ``None`` (use the recorded one).
    :param params_path: an explicitly given parameter file, or ``None`` (use the recorded one).
    :returns: ``recorded`` when nothing contradicts it.
    :raises InputError: ``<where>: ...`` naming each contradicting setting.
    """
    given = recorded
    if thickness_mm is not None:
        if not (math.isfinite(float(thickness_mm)) and float(thickness_mm) > 0):
            raise InputError(f"--thickness-mm: the ring thickness must be a positive number of mm, "
                             f"got {thickness_mm}")
        given = replace(given, thickness_mm=float(thickness_mm))
    if params_path is not None:
        text = Path(params_path).read_text(encoding="utf-8") if Path(params_path).is_file() else None
        if text is None:
            raise InputError(f"{params_path}: radiomics parameter file not found")
        given = replace(given, params_yaml=text, params_sha256=_sha256(text), params_name=Path(params_path).name)
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


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
