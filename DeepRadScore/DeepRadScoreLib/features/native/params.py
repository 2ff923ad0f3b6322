"""A pyradiomics parameter set, checked against what the native backend reproduces.

``load(params)`` takes a :class:`~DeepRadScoreLib.features.params.RadiomicsParameters`, a parsed
mapping or a YAML file (``imageType``, ``featureClass``, ``setting``, ``voxelSetting``) and returns
a frozen :class:`NativeSettings`, cached by the parameters' SHA-256. Every pyradiomics setting is
reproduced (:data:`REPRODUCED`, the filters' own settings, per-image-type overrides of the
per-image ones), and the voxel-based settings change nothing here (the engine never runs voxel
extraction). What is not reproduced, a label overridden under one image type and
``lbp3DLevels`` 1 (on which pyradiomics itself fails), is refused with one line naming it: the
native backend must never return numbers that differ from pyradiomics' for the same file, so a
file it cannot follow is an error, not a silent approximation.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Optional

from DeepRadScoreLib.errors import InputError
from DeepRadScoreLib.features import params as shared
# The bundled file and its lookup, re-exported for the extraction settings.
from DeepRadScoreLib.features.params import DEFAULTS, PARAMS_PATH, TOP_LEVEL, ParamsLike, params_file  # noqa: F401


# pyradiomics' feature classes in the order ``radiomics.getFeatureClasses()`` lists them (the
# order an absent ``featureClass`` enables them in).
FEATURE_CLASSES = ("firstorder", "glcm", "gldm", "glrlm", "glszm", "ngtdm", "shape", "shape2D")
# The image types reproduced (``features.filters`` makes them), in pyradiomics' own order.
IMAGE_TYPES = ("Original", "Wavelet", "LoG", "Square", "SquareRoot", "Logarithm", "Exponential",
               "Gradient", "LBP2D", "LBP3D")

# Settings the native backend follows for any valid value.
REPRODUCED = ("binWidth", "binCount", "voxelArrayShift", "label", "preCrop", "padDistance",
              "minimumROIDimensions", "minimumROISize", "additionalInfo", "normalize", "normalizeScale",
              "removeOutliers", "resampledPixelSpacing", "interpolator", "resegmentRange",
              "resegmentMode", "resegmentShape", "distances", "symmetricalGLCM", "weightingNorm",
              "gldm_a", "force2D", "force2Ddimension", "label_channel", "correctMask", "geometryTolerance")
# Settings read per filtered image (an image type may override them): the discretisation's, the
# feature classes' and the filters' own.
PER_IMAGE = ("binWidth", "binCount", "voxelArrayShift", "distances", "symmetricalGLCM", "weightingNorm",
             "gldm_a", "force2D", "force2Ddimension", "sigma", "wavelet", "level", "start_level", "gradientUseSpacing",
             "lbp2DRadius", "lbp2DSamples", "lbp2DMethod", "lbp3DLevels", "lbp3DIcosphereRadius",
             "lbp3DIcosphereSubdivision")
# Deprecated features whose pyradiomics method only raises a DeprecationWarning: listed, they
# give no value and no key (the other deprecated ones, the modules' ``DEPRECATED``, are computed).
SILENT_DEPRECATED = {"glcm": ("Dissimilarity", "Homogeneity1", "Homogeneity2", "SumVariance"),
                     "gldm": ("DependencePercentage", "GrayLevelNonUniformityNormalized")}
# Settings of the preparation before any filter (loadImage, checkMask, resegmentMask): read once,
# globally, by pyradiomics, so an image type's own value changes nothing.
PREPARATION = ("normalize", "normalizeScale", "removeOutliers", "resampledPixelSpacing", "interpolator",
               "preCrop", "padDistance", "correctMask", "geometryTolerance", "minimumROIDimensions",
               "minimumROISize", "resegmentRange", "resegmentMode", "resegmentShape", "label_channel",
               "additionalInfo")
# Settings that only act when another one is switched on: any value is a no-op while it is at its
# default (e.g. the interpolator is used only for resampling).
ONLY_WITH = {"interpolator": "resampledPixelSpacing", "normalizeScale": "normalize",
             "removeOutliers": "normalize", "force2Ddimension": "force2D",
             "resegmentMode": "resegmentRange", "resegmentShape": "resegmentRange"}
# Filter settings: checked where their image type is on (``_check_filter``), no-ops otherwise.
FILTER_SETTINGS = {"sigma": "LoG", "wavelet": "Wavelet", "level": "Wavelet", "start_level": "Wavelet",
                   "gradientUseSpacing": "Gradient", "lbp2DRadius": "LBP2D", "lbp2DSamples": "LBP2D",
                   "lbp2DMethod": "LBP2D", "lbp3DLevels": "LBP3D", "lbp3DIcosphereRadius": "LBP3D",
                   "lbp3DIcosphereSubdivision": "LBP3D"}
# Settings of voxel-based extraction (never run here): they change nothing.
UNUSED = ("kernelRadius", "maskedKernel", "initValue", "voxelBatch")


@dataclass(frozen=True)
class NativeSettings:
    """What one parameter file asks for, in the terms the native backend computes.

    ``classes`` lists (class name, enabled feature names) in the file's order, shape included;
    ``image_types`` the enabled image types in the file's order; ``image_settings`` per image type
    the settings its filter and its feature classes read (pyradiomics' global settings updated by
    the image type's own, as ``execute`` merges them).
    """

    source: str
    image_types: tuple[str, ...] = ("Original",)
    classes: tuple[tuple[str, tuple[str, ...]], ...] = ()
    bin_width: float = DEFAULTS["binWidth"]
    label: int = DEFAULTS["label"]
    pre_crop: bool = DEFAULTS["preCrop"]
    pad_distance: int = DEFAULTS["padDistance"]
    minimum_roi_dimensions: int = DEFAULTS["minimumROIDimensions"]
    minimum_roi_size: Optional[int] = DEFAULTS["minimumROISize"]
    image_settings: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()
    setting: tuple[tuple[str, Any], ...] = ()

    def get(self, name: str) -> Any:
        """A global setting (pyradiomics' default where the file does not set it)."""
        return dict(self.setting).get(name, DEFAULTS[name])

    @property
    def resampling(self) -> bool:
        # pyradiomics resamples only with both set (an interpolator of None switches it off).
        return self.get("resampledPixelSpacing") is not None and self.get("interpolator") is not None

    def for_image(self, image_type: str) -> dict[str, Any]:
        """The settings of one image type (all of :data:`DEFAULTS`' keys)."""
        return {**DEFAULTS, **dict(dict(self.image_settings).get(image_type, ()))}

    def bin_width_for(self, image_type: str) -> float:
        return self.for_image(image_type)["binWidth"]

    @property
    def wavelet(self) -> str:
        return self.for_image("Wavelet")["wavelet"]

    @property
    def texture_classes(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """The classes computed per filtered image (all but shape), in the file's order."""
        return tuple((name, features) for name, features in self.classes if not name.startswith("shape"))

    @property
    def shape_features(self) -> tuple[str, ...]:
        return dict(self.classes).get("shape", ())

    @property
    def shape2d_features(self) -> tuple[str, ...]:
        """shape2D's features: pyradiomics computes them only under a global force2D."""
        return dict(self.classes).get("shape2D", ()) if self.get("force2D") else ()


def feature_module(class_name: str):
    """The native module of a feature class (``shape`` -> ``native.shape``)."""
    return importlib.import_module(f"DeepRadScoreLib.features.native.{class_name.lower()}")


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
    image_section = _section(params, "imageType", source) or {"Original": {}}
    for name, value in settings.items():
        if name in FILTER_SETTINGS:
            continue  # checked below, per image type that reads it
        _check_setting(name, value, settings, source)
    merged = {**DEFAULTS, **settings}

    image_settings = []
    for image_type, custom in image_section.items():
        if image_type not in IMAGE_TYPES:
            # Every image type pyradiomics has is reproduced: another name is a typo.
            raise invalid(source, f"unknown image type {image_type!r}")
        if custom is None:
            custom = {}
        if not isinstance(custom, dict):
            raise invalid(source, f"imageType {image_type!r} must map to settings")
        for name, value in custom.items():
            if name in FILTER_SETTINGS or name in PER_IMAGE:
                continue
            if name not in DEFAULTS:
                raise invalid(source, f"unknown setting {name!r} under imageType {image_type!r}")
            if name in PREPARATION:
                # A quirk of pyradiomics, kept: it prepares the image and mask once, with the
                # global settings, so these have no effect under an image type.
                _check_value(name, value, source)
                continue
            # The label would change the mask of one image type's classes only: not reproduced.
            if not _same(value, merged[name]):
                raise unsupported(source, f"setting {name!r} under imageType {image_type!r}")
        own = {**merged, **custom}
        for name in PER_IMAGE:
            if name in FILTER_SETTINGS:
                if FILTER_SETTINGS[name] == image_type:
                    _check_value(name, own[name], source)
            else:
                _check_value(name, own[name], source)
        image_settings.append((image_type, tuple(sorted(own.items()))))

    return NativeSettings(
        source=source, image_types=tuple(image_section), classes=_classes(params, source),
        bin_width=merged["binWidth"], label=int(merged["label"]),
        pre_crop=bool(merged["preCrop"]), pad_distance=int(merged["padDistance"]),
        minimum_roi_dimensions=int(merged["minimumROIDimensions"]),
        minimum_roi_size=merged["minimumROISize"], image_settings=tuple(image_settings),
        setting=tuple(sorted(settings.items())))


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
    if name not in DEFAULTS and name not in UNUSED and name not in FILTER_SETTINGS:
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

    def integer(v):
        return isinstance(v, int) and not isinstance(v, bool)

    if name == "sigma":
        ok = isinstance(value, list) and all(number(v) for v in value)
    elif name == "wavelet":
        ok = isinstance(value, str) and value in _wavelet_names()
    elif name in ("level", "start_level"):
        ok = integer(value) and value >= (1 if name == "level" else 0)
    elif name == "gradientUseSpacing":
        ok = isinstance(value, bool)
    elif name in ("lbp2DRadius", "lbp3DIcosphereRadius"):
        ok = number(value) and value > 0
    elif name == "lbp2DSamples":
        ok = integer(value) and value >= 1
    elif name == "lbp2DMethod":
        ok = value in ("default", "ror", "uniform", "var")
    elif name == "lbp3DLevels":
        if integer(value) and value == 1:
            raise invalid(source, "lbp3DLevels 1: pyradiomics' getLBP3DImage fails on it with an indexing "
                                  "error; use 2 or more")
        ok = integer(value) and value >= 2
    elif name == "lbp3DIcosphereSubdivision":
        ok = integer(value) and value >= 0
    elif name == "binCount":
        ok = value is None or (integer(value) and value > 0)
    elif name == "voxelArrayShift":
        ok = number(value)
    elif name == "distances":
        ok = isinstance(value, list) and len(value) > 0 and all(integer(v) and v >= 1 for v in value)
    elif name == "weightingNorm":
        ok = value is None or value in ("manhattan", "euclidean", "infinity", "no_weighting")
    elif name == "gldm_a":
        ok = integer(value) and value >= 0
    elif name == "label_channel":
        ok = integer(value) and value >= 0
    elif name == "correctMask":
        ok = isinstance(value, bool)
    elif name == "geometryTolerance":
        ok = value is None or (number(value) and value > 0)
    elif name == "force2Ddimension":
        ok = integer(value) and 0 <= value <= 2
    elif name in ("normalize", "resegmentShape", "symmetricalGLCM", "force2D"):
        ok = isinstance(value, bool)
    elif name in ("normalizeScale",):
        ok = number(value) and value > 0
    elif name == "removeOutliers":
        ok = value is None or (number(value) and value > 0)
    elif name == "resampledPixelSpacing":
        ok = value is None or (isinstance(value, list) and len(value) == 3 and all(number(v) and v >= 0 for v in value))
    elif name == "interpolator":
        ok = value is None or (isinstance(value, str) and value in _INTERPOLATORS) or integer(value)
    elif name == "resegmentRange":
        ok = value is None or (isinstance(value, list) and 1 <= len(value) <= 2 and all(number(v) for v in value))
    elif name == "resegmentMode":
        ok = value in ("absolute", "relative", "sigma")
    else:
        ok = None
    if ok is not None:
        if not ok:
            raise invalid(source, f"setting {name!r} has the invalid value {value!r}")
        return
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


# pyradiomics' schema's interpolator names (an integer is SimpleITK's enum value).
_INTERPOLATORS = ("sitkNearestNeighbor", "sitkLinear", "sitkBSpline", "sitkGaussian",
                  "sitkLabelGaussian", "sitkHammingWindowedSinc", "sitkCosineWindowedSinc",
                  "sitkWelchWindowedSinc", "sitkLanczosWindowedSinc", "sitkBlackmanWindowedSinc")


def _wavelet_names() -> list[str]:
    import pywt

    return pywt.wavelist(kind="discrete")


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
        computed = names + tuple(getattr(feature_module(class_name), "DEPRECATED", ()))
        for feature in listed:
            if feature not in computed and feature not in SILENT_DEPRECATED.get(class_name, ()):
                raise unsupported(source, f"feature {class_name}/{feature}")
        # pyradiomics keeps the first occurrence's position of a repeated name, and yields nothing
        # for a deprecated feature whose method only raises a DeprecationWarning.
        kept = [f for f in dict.fromkeys(listed) if f not in SILENT_DEPRECATED.get(class_name, ())]
        classes.append((class_name, tuple(kept)))
    return tuple(classes)
