"""The radiomics parameters both backends read: one parsed mapping, hashed once.

A pyradiomics parameter file (``imageType``, ``featureClass``, ``setting``, ``voxelSetting``) is
read here, once, into :class:`RadiomicsParameters`: the parsed mapping, the SHA-256 of its text and
a name for messages. Both backends take that object (or a plain mapping, or a path, which are made
into one by :func:`parameters`), so nobody writes a temporary YAML file: pyradiomics gets the
mapping (``RadiomicsFeatureExtractor(dict)``) and every cache is keyed by the hash, never by a
path. This module imports nothing heavy and no other engine module except ``errors``, so a
cohort's main process reads the file without SimpleITK and without an import cycle.

``DEFAULTS`` are pyradiomics' defaults in one place: the extractor's ``_getDefaultSettings``, the
filters' (``getWaveletImage``: coif1, level 1, start level 0; ``getLoGImage``; the LBP filters'),
the discretisation's (binWidth 25) and the feature classes' (symmetricalGLCM, weightingNorm,
gldm_a, voxelArrayShift, distances).
"""
from __future__ import annotations


import copy
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Union

from DeepRadScoreLib.errors import InputError


# The bundled 851-feature file, the default of both backends.
PARAMS_PATH = Path(__file__).resolve().parent / "radiomics_params.yaml"

DEFAULTS: dict[str, Any] = {
    "minimumROIDimensions": 2, "minimumROISize": None, "normalize": False, "normalizeScale": 1,
    "removeOutliers": None, "resampledPixelSpacing": None, "interpolator": "sitkBSpline",
    "preCrop": False, "padDistance": 5, "distances": [1], "force2D": False, "force2Ddimension": 0,
    "resegmentRange": None, "resegmentMode": "absolute", "resegmentShape": False, "label": 1,
    "additionalInfo": True, "binWidth": 25, "binCount": None, "label_channel": 0,
    "correctMask": False, "geometryTolerance": None, "voxelArrayShift": 0,
    "symmetricalGLCM": True, "weightingNorm": None, "gldm_a": 0,
    "wavelet": "coif1", "level": 1, "start_level": 0, "sigma": [], "gradientUseSpacing": True,
    "lbp2DRadius": 1, "lbp2DSamples": 8, "lbp2DMethod": "uniform", "lbp3DLevels": 2,
    "lbp3DIcosphereRadius": 1, "lbp3DIcosphereSubdivision": 1,
}
VOXEL_SETTINGS = ("kernelRadius", "maskedKernel", "initValue", "voxelBatch")
TOP_LEVEL = ("imageType", "featureClass", "setting", "voxelSetting")


@dataclass(frozen=True)
class RadiomicsParameters:
    """One parameter set: ``mapping`` (the parsed YAML), ``sha256`` (of its text, the cache key),
    ``source`` (the file name or another label, for messages) and ``text`` ("" when made from a
    mapping, whose hash is then that of its canonical JSON)."""

    mapping: dict = field(compare=False, repr=False)
    sha256: str
    source: str = field(default="<parameters>", compare=False)
    text: str = field(default="", compare=False, repr=False)

    def copy_mapping(self) -> dict:
        """A deep copy of the mapping, for a consumer that may change it (pyradiomics does)."""
        return copy.deepcopy(self.mapping)


ParamsLike = Union[RadiomicsParameters, Mapping, str, Path, None]


def params_file(params_path: str | Path | None = None) -> Path:
    """The parameter file to use: the given one, or the bundled 851-feature one."""
    path = Path(params_path) if params_path is not None else PARAMS_PATH
    if not path.is_file():
        raise InputError(f"{path}: radiomics parameter file not found")
    return path


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def invalid(source: str, what: str) -> InputError:
    return InputError(f"{source}: invalid pyradiomics parameter file ({what})")


def from_text(text: str, source: str = "<parameters>") -> RadiomicsParameters:
    """Parse YAML ``text`` (a parameter file's content); ``source`` names it in errors."""
    import yaml

    try:
        mapping = yaml.safe_load(text)
    except yaml.YAMLError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise invalid(source, first) from None
    mapping = {} if mapping is None else mapping
    if not isinstance(mapping, dict):
        raise invalid(source, "the top level must be a mapping")
    return RadiomicsParameters(mapping, sha256_text(text), source, text)


def from_mapping(mapping: Mapping, source: str = "<parameters>", sha256: str | None = None) -> RadiomicsParameters:
    """Wrap an already parsed mapping; ``sha256`` is the hash of its text where the caller has it."""
    if not isinstance(mapping, Mapping):
        raise invalid(source, "the top level must be a mapping")
    mapping = copy.deepcopy(dict(mapping))
    if sha256 is None:
        try:
            sha256 = sha256_text(json.dumps(mapping, sort_keys=True, default=str))
        except (TypeError, ValueError):
            sha256 = sha256_text(repr(mapping))
    return RadiomicsParameters(mapping, sha256, source)


def read(params_path: str | Path | None = None) -> RadiomicsParameters:
    """Read a parameter file (default: the bundled one) into :class:`RadiomicsParameters`."""
    path = params_file(params_path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise invalid(str(path), type(err).__name__) from None
    return from_text(text, str(path))


def parameters(params: ParamsLike = None) -> RadiomicsParameters:
    """Any accepted form (a :class:`RadiomicsParameters`, a mapping, a path, ``None`` for the
    bundled file) as :class:`RadiomicsParameters`."""
    if isinstance(params, RadiomicsParameters):
        return params
    if isinstance(params, Mapping):
        return from_mapping(params)
    return read(params)
