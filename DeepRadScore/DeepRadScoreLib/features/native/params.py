"""A pyradiomics parameter file, read and checked against what the native backend reproduces.

``load(path)`` reads a pyradiomics-style YAML file (``imageType``, ``featureClass``, ``setting``,
``voxelSetting``) with ``yaml.safe_load`` and returns a frozen :class:`NativeSettings`. Every
setting is either reproduced (``binWidth``, ``label``, ``preCrop``, ``padDistance``,
``minimumROIDimensions``, ``minimumROISize``, ``additionalInfo``), accepted because it changes
nothing (a pyradiomics default, or a setting of a step that is off, e.g. ``interpolator`` without
resampling), or refused with one line naming it: the native backend must never return numbers
that differ from pyradiomics' for the same file, so a file it cannot follow is an error, not a
silent approximation.
"""
from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from typing import Any, Optional

from DeepRadScoreLib.errors import InputError
from DeepRadScoreLib.features import params as shared
# The bundled file and its lookup, re-exported for the extraction settings.
from DeepRadScoreLib.features.params import DEFAULTS, PARAMS_PATH, TOP_LEVEL, ParamsLike, params_file  # noqa: F401

logger = logging.getLogger(__name__)

# pyradiomics' feature classes in the order ``radiomics.getFeatureClasses()`` lists them (the
# order an absent ``featureClass`` enables them in); shape2D is left out (3D only here).
FEATURE_CLASSES = ("firstorder", "glcm", "gldm", "glrlm", "glszm", "ngtdm", "shape")
IMAGE_TYPES = ("Original", "Wavelet")

# Settings the native backend follows for any valid value.
REPRODUCED = ("binWidth", "label", "preCrop", "padDistance", "minimumROIDimensions", "minimumROISize",
              "additionalInfo")
# Settings that only act when another one is switched on: any value is a no-op while it is at its
# default (e.g. the interpolator is used only for resampling).
ONLY_WITH = {"interpolator": "resampledPixelSpacing", "normalizeScale": "normalize",
             "removeOutliers": "normalize", "force2Ddimension": "force2D",
             "resegmentMode": "resegmentRange", "resegmentShape": "resegmentRange"}
# Settings of filters the native backend refuses anyway (LoG, LBP, gradient) and of voxel-based
# extraction (never run here): with those off they change nothing.
UNUSED = ("sigma", "gradientUseSpacing", "lbp2DRadius", "lbp2DSamples", "lbp2DMethod", "lbp3DLevels",
          "lbp3DIcosphereRadius", "lbp3DIcosphereSubdivision", "kernelRadius", "maskedKernel",
          "initValue", "voxelBatch")


@dataclass(frozen=True)
class NativeSettings:
    """What one parameter file asks for, in the terms the native backend computes.

    ``classes`` lists (class name, enabled feature names) in the file's order, shape included;
    ``image_types`` the enabled image types in the file's order. ``bin_widths`` holds the bin width
    per image type (pyradiomics lets an image type override the global ``binWidth``).
    """

    source: str
    image_types: tuple[str, ...] = ("Original",)
    classes: tuple[tuple[str, tuple[str, ...]], ...] = ()
    bin_width: float = DEFAULTS["binWidth"]
    bin_widths: tuple[tuple[str, float], ...] = ()
    label: int = DEFAULTS["label"]
    pre_crop: bool = DEFAULTS["preCrop"]
    pad_distance: int = DEFAULTS["padDistance"]
    minimum_roi_dimensions: int = DEFAULTS["minimumROIDimensions"]
    minimum_roi_size: Optional[int] = DEFAULTS["minimumROISize"]
    wavelet: str = DEFAULTS["wavelet"]
    level: int = DEFAULTS["level"]
    start_level: int = DEFAULTS["start_level"]

    def bin_width_for(self, image_type: str) -> float:
        return dict(self.bin_widths).get(image_type, self.bin_width)

    @property
    def texture_classes(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """The classes computed per filtered image (all but shape), in the file's order."""
        return tuple((name, features) for name, features in self.classes if name != "shape")

    @property
    def shape_features(self) -> tuple[str, ...]:
        return dict(self.classes).get("shape", ())


def feature_module(class_name: str):
    """The native module of a feature class (``shape`` -> ``native.shape``)."""
    return importlib.import_module(f"DeepRadScoreLib.features.native.{class_name}")


def load(params: ParamsLike = None) -> NativeSettings:
    """The native settings of a parameter set (default: the bundled file).

    Parameters: ``params``, a :class:`~DeepRadScoreLib.features.params.RadiomicsParameters`, a
    parsed mapping, a pyradiomics YAML parameter file or None.
    Returns: a :class:`NativeSettings` (cached by the parameters' SHA-256). Raises
    :class:`InputError` (one line naming the file) when the file is missing, is not valid YAML,
    or asks for something the native backend does not reproduce exactly.
    """
    parameters = shared.parameters(params)
    cached = _CACHE.get(parameters.sha256)
    if cached is None:
        cached = from_dict(parameters.mapping, parameters.source)
        if len(_CACHE) >= 16:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[parameters.sha256] = cached
    return cached


_CACHE: dict[str, NativeSettings] = {}


def unsupported(source: str, what: str) -> InputError:
    return InputError(f"{source}: the native radiomics backend does not reproduce {what}; "
                      "use --radiomics-backend pyradiomics for it")


invalid = shared.invalid


def from_dict(params: Any, source: str = "<parameters>") -> NativeSettings:
    """:func:`load` for an already parsed parameter mapping (``source`` names it in errors)."""
    if not isinstance(params, dict):
        raise invalid(source, "the top level must be a mapping")
    for key in params:
        if key not in TOP_LEVEL:
            raise invalid(source, f"unknown section {key!r}")
    settings = _section(params, "setting", source)
    for name, value in _section(params, "voxelSetting", source).items():
        _check_setting(name, value, settings, source, voxel=True)
    for name, value in settings.items():
        _check_setting(name, value, settings, source)
    merged = {**DEFAULTS, **settings}

    image_section = _section(params, "imageType", source) or {"Original": {}}
    bin_widths = []
    for image_type, custom in image_section.items():
        if image_type not in IMAGE_TYPES:
            raise unsupported(source, f"image type {image_type!r}")
        if custom is None:
            custom = {}
        if not isinstance(custom, dict):
            raise invalid(source, f"imageType {image_type!r} must map to settings")
        for name, value in custom.items():
            if name in REPRODUCED and name != "binWidth":
                # Per image type these would change the mask or crop of one filter only, while
                # pyradiomics crops and checks once for all image types: only a no-op is safe.
                if not _same(value, merged[name]):
                    raise unsupported(source, f"setting {name!r} under imageType {image_type!r}")
                continue
            _check_setting(name, value, {**settings, **custom}, source)
        if "binWidth" in custom:
            bin_widths.append((image_type, custom["binWidth"]))

    return NativeSettings(
        source=source, image_types=tuple(image_section), classes=_classes(params, source),
        bin_width=merged["binWidth"], bin_widths=tuple(bin_widths), label=int(merged["label"]),
        pre_crop=bool(merged["preCrop"]), pad_distance=int(merged["padDistance"]),
        minimum_roi_dimensions=int(merged["minimumROIDimensions"]),
        minimum_roi_size=merged["minimumROISize"])


def _section(params: dict, key: str, source: str) -> dict:
    value = params.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid(source, f"{key!r} must be a mapping")
    return value


def _check_setting(name: str, value: Any, settings: dict, source: str, voxel: bool = False) -> None:
    if voxel:
        if name not in ("kernelRadius", "maskedKernel", "initValue", "voxelBatch"):
            raise invalid(source, f"unknown voxel setting {name!r}")
        return  # only voxel-based extraction reads these, which the engine never runs
    if name not in DEFAULTS and name not in UNUSED:
        raise invalid(source, f"unknown setting {name!r}")
    if name in REPRODUCED:
        _check_value(name, value, source)
        return
    if name in UNUSED:
        return
    parent = ONLY_WITH.get(name)
    if parent is not None and _same(settings.get(parent, DEFAULTS[parent]), DEFAULTS[parent]):
        return
    if not _same(value, DEFAULTS[name]):
        raise unsupported(source, f"setting {name!r}")


def _same(value: Any, default: Any) -> bool:
    # YAML gives 1 or 1.0 or [1] for the same default; booleans must stay booleans.
    if isinstance(default, bool) or isinstance(value, bool):
        return value is default
    return value == default


def _check_value(name: str, value: Any, source: str) -> None:
    def number(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    ok = {
        "binWidth": number(value) and value > 0,
        "label": isinstance(value, int) and not isinstance(value, bool) and value > 0,
        "preCrop": isinstance(value, bool),
        "additionalInfo": isinstance(value, bool),
        "padDistance": isinstance(value, int) and not isinstance(value, bool) and value >= 0,
        "minimumROIDimensions": isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 3,
        "minimumROISize": value is None or (isinstance(value, int) and not isinstance(value, bool) and value > 0),
    }[name]
    if not ok:
        raise invalid(source, f"setting {name!r} has the invalid value {value!r}")


def _classes(params: dict, source: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    section = params.get("featureClass")
    if section is None or section == {}:
        # pyradiomics then enables every class (shape2D too, which yields nothing in 3D).
        return tuple((name, tuple(feature_module(name).NAMES)) for name in FEATURE_CLASSES)
    if not isinstance(section, dict):
        raise invalid(source, "'featureClass' must be a mapping")
    classes = []
    for class_name, listed in section.items():
        if class_name not in FEATURE_CLASSES:
            raise unsupported(source, f"feature class {class_name!r}")
        names = tuple(feature_module(class_name).NAMES)
        if listed is None or listed == []:
            classes.append((class_name, names))
            continue
        if not isinstance(listed, list):
            raise invalid(source, f"featureClass {class_name!r} must be a list of feature names")
        for feature in listed:
            if feature not in names:
                # Deprecated pyradiomics features land here too: pyradiomics computes none of them.
                raise unsupported(source, f"feature {class_name}/{feature}")
        # pyradiomics keeps the first occurrence's position of a repeated name.
        classes.append((class_name, tuple(dict.fromkeys(listed))))
    return tuple(classes)
