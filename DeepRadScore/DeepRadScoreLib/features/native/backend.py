"""The native backend's entry points: pyradiomics' features of one ROI, or of a case's two ROIs.

``extract_roi(image, mask, settings)`` returns what pyradiomics' ``RadiomicsFeatureExtractor``
``execute()`` returns for that parameter file (diagnostics left out), with pyradiomics' keys in
pyradiomics' order: the shape features (``original_shape_*``) first, then, per enabled image type
(the file's order) and per filtered image (``original``; ``wavelet-LLH`` ... ``wavelet-HHH``,
``wavelet-LLL``), every enabled texture class in the file's order.

``extract_case_features(image, mask, ring)`` is the drop-in for
:func:`DeepRadScoreLib.features.radiomics.extract_case_features` (``tumor_<name>``,
``peritumoral_<name>``). Like our pyradiomics path it filters one neighbourhood for both ROIs when
that gives every ROI voxel the value pyradiomics' own per-ROI crop gives it: the stationary
wavelet's value at a voxel depends only on the input within ``wavelet_reach`` voxels (the crop's
periodic wrap included), so an ROI whose bounding box lies at least that far inside its own
preCrop box (true unless the box was clamped at the image border) gets its own bands from any
box it lies that far inside. An ROI whose box was clamped is filtered on exactly its own box, as
pyradiomics does, and the other ROI takes its bands from that box too when it lies inside it
(the tumour inside a clamped ring's box); otherwise the free ROIs share their joint box.

The feature modules are called through their contracts: ``shape.features(mask, spacing)``,
``firstorder.features(image, mask, spacing, bin_width)`` and, for the texture classes,
``<class>.features(q, mask)`` with ``q`` the discretised grey levels; every class sees the ROI's
bounding box, as in pyradiomics.
"""
from __future__ import annotations

from typing import Iterable, Iterator, Optional

import numpy as np
import SimpleITK as sitk

from DeepRadScoreLib.errors import InputError
from DeepRadScoreLib.features import filters
from DeepRadScoreLib.features.native import lbp
from DeepRadScoreLib.features.native import params as native_params
from DeepRadScoreLib.features.native import preprocess
from DeepRadScoreLib.features.native.params import NativeSettings
from DeepRadScoreLib.progress import CancelCheck, ProgressCallback, report


ROI_PREFIXES = ("tumor", "peritumoral")
_ROI_LABELS = {"tumor": "tumour mask", "peritumoral": "peritumoral ring"}


# --- names --------------------------------------------------------------------------------------

def image_names(image_type: str, settings: NativeSettings) -> tuple[str, ...]:
    """The filtered images an image type yields, named as pyradiomics names them."""
    if image_type in lbp.IMAGE_TYPES:
        return lbp.image_names(image_type, settings.for_image(image_type))
    return filters.image_names(image_type, settings.for_image(image_type))


def roi_feature_names(settings: NativeSettings) -> tuple[str, ...]:
    """pyradiomics' keys for one ROI under ``settings``, in pyradiomics' order (no pyradiomics)."""
    names = [f"original_shape_{name}" for name in settings.shape_features]
    names += [f"original_shape2D_{name}" for name in settings.shape2d_features]
    for image_type in settings.image_types:
        for image_name in image_names(image_type, settings):
            for class_name, enabled in settings.texture_classes:
                names += [f"{image_name}_{class_name}_{name}" for name in enabled]
    return tuple(names)


def feature_names(params: native_params.ParamsLike = None) -> list[str]:
    """The case's column names (``tumor_*`` then ``peritumoral_*``), as
    :func:`DeepRadScoreLib.features.radiomics.feature_names` gives them."""
    names = roi_feature_names(native_params.load(params))
    return [f"{prefix}_{name}" for prefix in ROI_PREFIXES for name in names]


# --- extraction ---------------------------------------------------------------------------------

def extract_roi(image: sitk.Image, mask: sitk.Image, settings: NativeSettings | None = None) -> dict[str, float]:
    """pyradiomics' features of one ROI (``mask == settings.label``) of ``image``.

    Parameters: ``image`` the grey-level image, ``mask`` a label map on its grid, ``settings``
    from :func:`params.load` (default: the bundled parameter file).
    Returns: {pyradiomics key: value} in pyradiomics' order. Raises :class:`InputError` for an
    ROI pyradiomics refuses (empty, one voxel, too few dimensions) or a mask on another grid.
    """
    settings = settings if settings is not None else native_params.load()
    case = _Case(image, {"roi": mask}, settings, {"roi": "mask"})
    results = dict(case.run(case.tasks(), progress=None, cancel=None))
    return case.assemble("roi", results)


def extract_case_features(image: sitk.Image, mask: sitk.Image, ring: sitk.Image,
                          params: native_params.ParamsLike = None, *, jobs: int = 1,
                          progress: Optional[ProgressCallback] = None,
                          cancel: Optional[CancelCheck] = None) -> dict[str, float]:
    """The tumour's and the ring's features: ``tumor_<name>``, ``peritumoral_<name>``.

    Parameters: ``image`` the CT, ``mask`` and ``ring`` 0/1 masks on its grid, ``params`` the
    pyradiomics parameters (a ``RadiomicsParameters``, a parsed mapping or a file path; default:
    the bundled file) in a form the native backend supports, ``jobs``
    accepted for the pyradiomics path's contract (the native work runs in this thread: a case
    takes seconds, and threads over its many small numpy calls were slower, measured, while a
    cohort is spread over processes per case by ``extraction``), ``progress(fraction, message)``
    and ``cancel()`` as in :mod:`DeepRadScoreLib.progress`.
    Returns: {column: value}, the same columns and numbers as the pyradiomics path. Raises
    :class:`InputError` when an ROI is too small for pyradiomics or the parameter file asks for
    something the native backend does not reproduce, :class:`Cancelled` when cancelled.
    """
    settings = native_params.load(params)
    report(progress, 0.0, "radiomics: checking the regions", cancel)
    case = _Case(image, {"tumor": mask, "peritumoral": ring}, settings, _ROI_LABELS)
    with _one_blas_thread():
        results = dict(case.run(case.tasks(), progress, cancel))
    features: dict[str, float] = {}
    for prefix in ROI_PREFIXES:
        features.update({f"{prefix}_{name}": value for name, value in case.assemble(prefix, results).items()})
    report(progress, 1.0, "radiomics done")
    return features


def _one_blas_thread():
    """One BLAS thread: the texture classes make many small LAPACK calls (GLCM's MCC), where
    OpenBLAS' threads only spin (the pyradiomics path measured the same)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # an optional speed-up only
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(limits=1)


def _label_values(mask: sitk.Image) -> np.ndarray:
    """The mask's values as pyradiomics compares them with the label: after a cast to UInt32.

    An unsigned integer mask keeps its values through that cast, so its pixel buffer is read in
    place (no whole-image UInt32 copy); any other type is cast as pyradiomics casts it.
    """
    if mask.GetPixelID() in (sitk.sitkUInt8, sitk.sitkUInt16, sitk.sitkUInt32):
        return sitk.GetArrayViewFromImage(mask)
    return sitk.GetArrayFromImage(sitk.Cast(mask, sitk.sitkUInt32))


# The classes that read a gldm.PaddedGrid (GLSZM at distance 1, GLDM and NGTDM at ``distances``).
_GRID_CLASSES = ("glszm", "gldm", "ngtdm")


def _shared_grid(grids: dict, q: np.ndarray, roi: np.ndarray, distances: tuple, plane) -> object:
    """The image's padded grid for this neighbourhood, built on first use and then shared."""
    from DeepRadScoreLib.features.native.gldm import PaddedGrid, check_inputs

    if (distances, plane) not in grids:
        grids[(distances, plane)] = PaddedGrid(*check_inputs(q, roi), distances=distances, plane=plane)
    return grids[(distances, plane)]


def _texture_options(class_name: str, own: dict, spacing) -> dict:
    """The keyword arguments a texture module takes from pyradiomics' settings (none at their
    defaults, so that the default path is the one the modules are tested on most)."""
    distances = tuple(int(d) for d in own["distances"])
    spacing_kji = tuple(float(s) for s in spacing)[::-1]
    plane = int(own["force2Ddimension"]) if own["force2D"] else None
    if class_name == "glcm":
        return {"distances": distances, "symmetrical": bool(own["symmetricalGLCM"]),
                "weighting": own["weightingNorm"], "spacing_kji": spacing_kji, "plane": plane}
    if class_name == "glrlm":
        return {"weighting": own["weightingNorm"], "spacing_kji": spacing_kji, "plane": plane}
    if class_name == "gldm":
        return {"distances": distances, "alpha": own["gldm_a"], "plane": plane}
    if class_name == "ngtdm":
        return {"distances": distances, "plane": plane}
    return {"plane": plane}  # glszm


def _as_uint32(mask: sitk.Image) -> sitk.Image:
    return mask if mask.GetPixelID() == sitk.sitkUInt32 else sitk.Cast(mask, sitk.sitkUInt32)


def _same_grid(image: sitk.Image, mask: sitk.Image, tolerance: float | None) -> bool:
    """The geometry check pyradiomics' ``checkMask`` gets from SimpleITK: its coordinate tolerance
    (``geometryTolerance``, SimpleITK's default 1e-6 otherwise) times the image's first spacing for
    origin and spacing, the same number for the direction cosines."""
    if image.GetSize() != mask.GetSize() or image.GetDimension() != 3:
        return False
    factor = 1e-6 if tolerance is None else float(tolerance)
    coordinate = factor * abs(image.GetSpacing()[0])
    return bool(np.allclose(image.GetOrigin(), mask.GetOrigin(), rtol=0, atol=coordinate)
                and np.allclose(image.GetSpacing(), mask.GetSpacing(), rtol=0, atol=coordinate)
                and np.allclose(image.GetDirection(), mask.GetDirection(), rtol=0, atol=factor))


def _check_grid(image: sitk.Image, mask: sitk.Image, what: str, tolerance: float | None = None) -> None:
    if image.GetSize() != mask.GetSize() or image.GetDimension() != 3:
        raise InputError(f"{what}: size {mask.GetSize()} does not match the image's {image.GetSize()} "
                         "(pyradiomics' correctMask setting resamples it onto the image)")
    if not _same_grid(image, mask, tolerance):
        raise InputError(f"{what}: the mask's origin, spacing or direction does not match the image's "
                         "(see pyradiomics' geometryTolerance and correctMask settings)")


def _one_channel(mask: sitk.Image, channel: int, what: str) -> sitk.Image:
    """pyradiomics' ``getMask``: a vector-valued mask (a segmentation) gives its ``label_channel``."""
    if mask.GetNumberOfComponentsPerPixel() == 1:
        return mask
    if channel >= mask.GetNumberOfComponentsPerPixel():
        raise InputError(f"{what}: label_channel {channel} requested, but the mask has only "
                         f"{mask.GetNumberOfComponentsPerPixel()} channels")
    return sitk.VectorIndexSelectionCast(mask, int(channel))


class _Case:
    """One image and its ROIs: where each ROI lies, what pyradiomics crops for it, the tasks."""

    def __init__(self, image: sitk.Image, masks: dict[str, sitk.Image], settings: NativeSettings,
                 labels: dict[str, str]):
        """pyradiomics' ``loadImage`` and ``execute`` up to the filters, per ROI: normalise the
        image, resample image and mask (or preCrop), check the mask, resegment it."""
        self.settings = settings
        self.labels = labels
        if settings.get("normalize"):
            image = preprocess.normalised(image, settings.get("normalizeScale"), settings.get("removeOutliers"))
        # Resampled, each ROI has its own grid; otherwise all share the image (and its filtering).
        self.shared = not settings.resampling
        self.image = image
        self.array = sitk.GetArrayViewFromImage(image)
        self.images, self.spacings = {}, {}
        self.rois, self.shape_rois, self.bbox, self.crop_box = {}, {}, {}, {}
        reseg = settings.get("resegmentRange")
        for key, mask in masks.items():
            mask = _one_channel(mask, int(settings.get("label_channel")), labels[key])
            tolerance = settings.get("geometryTolerance")
            if settings.resampling or (settings.get("correctMask") and not _same_grid(image, mask, tolerance)):
                # Resampling puts both on a grid made from the mask's geometry, and correctMask
                # resamples the mask onto the image: either only needs the ROI inside the image.
                preprocess.check_inside(image, _as_uint32(mask), settings.label, labels[key])
                if not settings.resampling:
                    mask = preprocess.onto(image, _as_uint32(mask))
            else:
                _check_grid(image, mask, labels[key], tolerance)
            own = image
            if settings.resampling:
                own, own_mask = preprocess.resampled(image, _as_uint32(mask), settings.get("resampledPixelSpacing"),
                                                     settings.get("interpolator"), settings.pad_distance,
                                                     settings.label, labels[key])
                values = sitk.GetArrayViewFromImage(own_mask)
            else:
                values = _label_values(mask)
            array = sitk.GetArrayViewFromImage(own)
            shape = np.array(array.shape)
            roi = preprocess.roi_array(values, settings.label)
            box = preprocess.check_roi(roi, labels[key], settings.minimum_roi_dimensions, settings.minimum_roi_size)
            self.crop_box[key] = (preprocess.pad_box(box, settings.pad_distance, shape)
                                  if settings.pre_crop and not settings.resampling else (np.zeros(3, int), shape - 1))
            shape_roi = roi
            if reseg is not None:
                roi = preprocess.resegmented(array, roi, reseg, settings.get("resegmentMode"), settings.label,
                                             labels[key])
                # A quirk of pyradiomics, kept: the shape class sees the mask cropped to the
                # *resegmented* ROI's bounding box (the un-resegmented mask unless resegmentShape).
                box = preprocess.check_roi(roi, labels[key], settings.minimum_roi_dimensions,
                                           settings.minimum_roi_size)
                if settings.get("resegmentShape"):
                    shape_roi = roi
            self.bbox[key] = box
            self.images[key], self.spacings[key] = own, tuple(own.GetSpacing())
            # Copies of the bounding box, so that the whole-image boolean arrays are freed.
            self.rois[key] = np.ascontiguousarray(preprocess.crop(roi, box))
            self.shape_rois[key] = (self.rois[key] if shape_roi is roi
                                    else np.ascontiguousarray(preprocess.crop(shape_roi, box)))
            del roi, shape_roi

    # The units of work: shape per ROI, then (image type -> filtered images) x ROI.
    def tasks(self) -> list[tuple]:
        shapes = self.settings.shape_features or self.settings.shape2d_features
        tasks = [((key, "shape"), key, None, None) for key in self.rois] if shapes else []
        if self.settings.texture_classes:
            for image_type in self.settings.image_types:
                tasks += [((key, name), key, image_type, name) for key in self.rois
                          for name in image_names(image_type, self.settings)]
        return tasks

    def run(self, tasks: list[tuple], progress, cancel) -> Iterator[tuple]:
        """Computes the tasks, yielding (slot, {name: value}); progress and cancel between them."""
        total = max(len(tasks), 1)
        for done, (slot, compute) in enumerate(self._work(tasks)):
            report(progress, done / total, "radiomics", cancel)
            values = compute()
            del compute  # holds a filtered image: free it before the next one is computed
            yield slot, values

    def _work(self, tasks: list[tuple]) -> Iterator[tuple]:
        """(slot, a callable computing it) per task, filtering each image type once per case.

        Lazily: a filtered image is made when its first task is asked for and dropped after its
        last, so only one wavelet band (and the pending halves of the transform) is alive at a
        time instead of all 8 bands of every filtered box.
        """
        by_type: dict[Optional[str], list[tuple]] = {}
        for task in tasks:
            by_type.setdefault(task[2], []).append(task)
        for slot, key, _, _ in by_type.pop(None, []):
            yield slot, (lambda key=key: self._shape(key))
        for image_type, group in by_type.items():
            slots = {(key, image_name): slot for slot, key, _, image_name in group}
            for (key, image_name), grey in self._filtered(image_type, {task[1] for task in group}):
                if (key, image_name) in slots:
                    yield slots[(key, image_name)], (lambda key=key, grey=grey, it=image_type, n=image_name:
                                                     self._texture(key, grey, it, n))
                del grey

    def _shape(self, key: str) -> dict[str, float]:
        from DeepRadScoreLib.features.native import shape

        values = shape.features(self.shape_rois[key], self.spacings[key],
                                deprecated=bool(set(self.settings.shape_features) & set(shape.DEPRECATED)))
        out = {f"original_shape_{name}": float(values[name]) for name in self.settings.shape_features}
        if self.settings.shape2d_features:
            out.update(self._shape2d(key))
        return out

    def _shape2d(self, key: str) -> dict[str, float]:
        """pyradiomics' shape2D, with its two checks: the bounding box's size along
        ``force2Ddimension`` read in SimpleITK's (x, y, z) order must exceed 1 (a quirk, kept:
        the extractor otherwise skips the class), and the mask's along that numpy axis must be 1
        (the class raises otherwise). A skip would leave the table's columns empty: refused."""
        from DeepRadScoreLib.features.native import shape2d

        dimension = int(self.settings.get("force2Ddimension"))
        roi = self.shape_rois[key]
        if not roi.shape[::-1][dimension] > 1:
            raise InputError(f"{self.labels[key]}: pyradiomics skips shape2D for this ROI (its size along "
                             f"force2Ddimension {dimension}, counted in x, y, z order, is 1)")
        if roi.shape[dimension] > 1:
            raise InputError(f"{self.labels[key]}: Size of the mask in dimension {dimension} is more than 1, "
                             "cannot compute 2D shape")
        spacing = [s for axis, s in enumerate(self.spacings[key][::-1]) if axis != dimension]
        enabled = self.settings.shape2d_features
        values = shape2d.features(np.squeeze(roi, axis=dimension), spacing,
                                  deprecated="SphericalDisproportion" in enabled)
        return {f"original_shape2D_{name}": values[name] for name in enabled}

    def _filtered(self, image_type: str, keys: Iterable[str]) -> Iterator[tuple]:
        """((ROI, image name), the filtered image on that ROI's bounding box) for each ROI."""
        keys = [k for k in self.rois if k in set(keys)]
        if image_type == "Original":
            for key in keys:
                yield (key, "original"), preprocess.crop(sitk.GetArrayViewFromImage(self.images[key]), self.bbox[key])
            return
        own = self.settings.for_image(image_type)
        if not (self.shared and image_type == "Wavelet" and own["level"] == 1 and own["start_level"] == 0
                and not own["force2D"]):
            # Any other filter reads its whole input (a recursive Gaussian, a crop-wide maximum):
            # each ROI's own crop is filtered, exactly as pyradiomics filters it.
            for key in keys:
                box = self.crop_box[key]
                (k0, j0, i0), (k1, j1, i1) = box
                crop = self.images[key][int(i0):int(i1) + 1, int(j0):int(j1) + 1, int(k0):int(k1) + 1]
                if image_type in lbp.IMAGE_TYPES:
                    images = lbp.filtered(image_type, sitk.GetArrayFromImage(crop), self._crop_roi(key), own)
                else:
                    images = filters.filtered_images(image_type, crop, own, self.labels[key])
                try:
                    for name, grey in images:
                        yield (key, name), preprocess.crop(grey, preprocess.relative(self.bbox[key], box))
                        del grey
                except ValueError as err:
                    raise InputError(str(err)) from None
            return
        for members, box in self._filter_boxes(keys):
            for name, band in filters.wavelet_bands(preprocess.crop(self.array, box), own["wavelet"]):
                for key in members:
                    yield (key, name), preprocess.crop(band, preprocess.relative(self.bbox[key], box))
                del band  # before the transform computes the next band

    def _crop_roi(self, key: str) -> np.ndarray:
        """The ROI (resegmented where asked) on its preCrop box: the mask pyradiomics hands the
        filters (LBP3D reads it)."""
        lo, hi = self.crop_box[key]
        roi = np.zeros(tuple(int(b - a) + 1 for a, b in zip(lo, hi)), dtype=bool)
        preprocess.crop(roi, preprocess.relative(self.bbox[key], self.crop_box[key]))[...] = self.rois[key]
        return roi

    def _filter_boxes(self, keys: list[str]) -> list[tuple[list[str], preprocess.Box]]:
        """Which boxes to filter, and which ROIs take their bands from each (see module doc).

        An ROI whose bounding box lies ``wavelet_reach`` inside a filtered box gets the same band
        values there as from its own preCrop box. One that does not (its preCrop box was clamped
        at the image border, so the periodic wrap reaches it) needs exactly its own box.
        """
        reach = filters.wavelet_reach(self.settings.for_image("Wavelet")["wavelet"])

        def inside(key, box):
            (lo, hi), (b_lo, b_hi) = self.bbox[key], box
            return bool(np.all(lo - reach >= b_lo) and np.all(hi + reach <= b_hi))

        free = [k for k in keys if inside(k, self.crop_box[k])]
        clamped = [k for k in keys if k not in free]
        sources = []
        for key in clamped:
            box = self.crop_box[key]
            members = [key] + [k for k in free if inside(k, box)]
            free = [k for k in free if k not in members]
            sources.append((members, box))
        if free:
            boxes = [self.crop_box[k] for k in free]
            sources.append((free, (np.min([b[0] for b in boxes], axis=0), np.max([b[1] for b in boxes], axis=0))))
        return sources

    def _texture(self, key: str, grey: np.ndarray, image_type: str, image_name: str) -> dict[str, float]:
        from DeepRadScoreLib.features.native import params

        roi = self.rois[key]
        own = self.settings.for_image(image_type)
        if grey.dtype.kind == "f" and not np.isfinite(grey[roi]).all():
            # pyradiomics' binning fails on these (a NaN LBP variance of a flat patch, a NaN
            # kurtosis of flat LBP3D samples): one line instead of its ValueError.
            raise InputError(f"{self.labels[key]}: the {image_name} image has non-finite values inside the ROI, "
                             "so its features are undefined (pyradiomics fails on them too)")
        bin_width, bin_count = own["binWidth"], own["binCount"]
        q = preprocess.discretise(grey, roi, bin_width, bin_count)  # one binning for every class
        grids: dict[tuple, object] = {}  # one padded grid per neighbourhood, for the classes reading it
        values: dict[str, float] = {}
        for class_name, enabled in self.settings.texture_classes:
            module = params.feature_module(class_name)
            if class_name == "firstorder":
                computed = module.features(grey, roi, self.spacings[key], bin_width, bin_count,
                                           own["voxelArrayShift"], deprecated="StandardDeviation" in enabled, q=q)
            else:
                options = _texture_options(class_name, own, self.spacings[key])
                if class_name in _GRID_CLASSES:
                    options["grid"] = _shared_grid(grids, q, roi, options.get("distances", (1,)), options["plane"])
                computed = module.features(q, roi, **options)
            values.update({(class_name, name): float(computed[name]) for name in enabled})
        return values

    def assemble(self, key: str, results: dict) -> dict[str, float]:
        """One ROI's {pyradiomics key: value} in pyradiomics' order."""
        features: dict[str, float] = {}
        if self.settings.shape_features or self.settings.shape2d_features:
            features.update(results[(key, "shape")])
        if self.settings.texture_classes:
            for image_type in self.settings.image_types:
                for image_name in image_names(image_type, self.settings):
                    for (class_name, name), value in results[(key, image_name)].items():
                        features[f"{image_name}_{class_name}_{name}"] = value
        return features
