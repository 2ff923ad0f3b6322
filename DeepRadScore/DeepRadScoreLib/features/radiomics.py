"""The 851 pyradiomics features of the tumour and of its peritumoral ring (1702 per case).

``extract_case_features(image, mask, ring)`` returns exactly what pyradiomics'
``RadiomicsFeatureExtractor(params).execute()`` returns for the tumour and, separately, for the
ring (diagnostics left out), named ``tumor_<name>`` and ``peritumoral_<name>``. It is faster
because it skips work that does not change a number (measured in benchmarks/bench_extraction.py):

* **Shape without the quadratic diameter search.** pyradiomics' C shape code compares every pair
  of mesh vertices for the four maximum diameters: O(V^2), seconds for a ring, whose inner and
  outer surfaces double V. A farthest pair always lies on the convex hull, so we take the
  diameters over the hull's vertices (qhull, on exact half-voxel integer coordinates), per plane
  for the 2D ones. Surface area and volume are sums over the marching cubes, each a function of
  the cube's 8-corner configuration (area) and of the configuration and position (volume, a
  signed-tetrahedron sum that is linear in the cube's position); we measure those per-cube
  values by running pyradiomics' own C routine on the 256 single-cube masks (and on two-cube
  masks for the position term), so the mesh is pyradiomics' own and needs no copied table.
* **One neighbourhood, filtered once.** Tumour and ring are cropped to their joint bounding box
  plus pyradiomics' ``padDistance`` and the wavelet bands are computed once for both. pyradiomics
  with ``preCrop`` filters each ROI's own crop; the stationary wavelet has a short support
  (``_wavelet_reach``), so the band values on every ROI voxel are the same unless an ROI lies
  within that reach of a crop edge clamped at the image border, in which case that case is
  filtered per ROI exactly as pyradiomics does.
* **Work split over processes, or done as it comes.** Shape and each (image type, ROI) texture
  set are independent tasks; ``jobs > 1`` runs them in a process pool while this process computes
  the wavelet. ``jobs = 1`` runs each task as soon as its crop exists, and the default wavelet's
  bands come one at a time from ``filters.wavelet_bands`` (pyradiomics' own pywt calls,
  tested bit-equal), so a large case holds one band and its crops, not all of them.

Parameter files whose settings this fast path does not reproduce (resampling, normalisation,
resegmentation, 2D extraction, voxel-based) are run through plain pyradiomics per ROI, so any
valid pyradiomics parameter file gives pyradiomics' numbers. Only public pyradiomics parts are
used: the extractor's ``computeFeatures``, ``imageoperations`` and the feature classes.
"""
from __future__ import annotations

import concurrent.futures
import os
from functools import lru_cache
from typing import Iterable, Optional

import numpy as np
import SimpleITK as sitk

from DeepRadScoreLib.errors import Cancelled, InputError
from DeepRadScoreLib.features import mesh
from DeepRadScoreLib.features import params as shared
from DeepRadScoreLib.features.params import PARAMS_PATH, ParamsLike, RadiomicsParameters, params_file  # noqa: F401
from DeepRadScoreLib.progress import CancelCheck, ProgressCallback, report


ROI_PREFIXES = ("tumor", "peritumoral")

# Settings that change the image or mask before extraction in ways the shared-crop path does not
# reproduce; a parameter file using any of them is run through plain pyradiomics per ROI.
_UNSUPPORTED_SETTINGS = ("normalize", "resampledPixelSpacing", "resegmentRange", "force2D")


# One validated pyradiomics extractor per parameter set (per process), keyed by its SHA-256.
_EXTRACTORS: dict[str, object] = {}
_NAMES: dict[str, tuple[str, ...]] = {}


def _extractor(parameters: RadiomicsParameters):
    """pyradiomics' extractor for ``parameters``, made from their mapping (no file)."""
    cached = _EXTRACTORS.get(parameters.sha256)
    if cached is not None:
        return cached
    from radiomics import featureextractor

    from DeepRadScoreLib.processes import pyradiomics_imported

    pyradiomics_imported()  # a pending "errors only" of the command line, before any warning
    try:
        extractor = featureextractor.RadiomicsFeatureExtractor(parameters.copy_mapping())
    except Exception as err:  # pykwalify's SchemaError and friends: a bad file, not a bug
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(f"{parameters.source}: invalid pyradiomics parameter file ({first})") from None
    if len(_EXTRACTORS) >= 8:
        _EXTRACTORS.pop(next(iter(_EXTRACTORS)))
    _EXTRACTORS[parameters.sha256] = extractor
    return extractor


def feature_names(params: ParamsLike = None) -> list[str]:
    """The 1702 (for the bundled parameters) column names in extraction order."""
    names = _roi_feature_names(shared.parameters(params))
    return [f"{prefix}_{name}" for prefix in ROI_PREFIXES for name in names]


def _roi_feature_names(parameters: RadiomicsParameters) -> tuple[str, ...]:
    """pyradiomics' key order for one ROI: shape, then each filtered image's classes."""
    if parameters.sha256 not in _NAMES:
        _NAMES[parameters.sha256] = _find_roi_feature_names(parameters)
    return _NAMES[parameters.sha256]


def _find_roi_feature_names(parameters: RadiomicsParameters) -> tuple[str, ...]:
    from radiomics import getFeatureClasses, imageoperations

    extractor = _extractor(parameters)
    classes = getFeatureClasses()

    def enabled(class_name: str) -> list[str]:
        listed = extractor.enabledFeatures[class_name]
        if listed:
            return list(listed)
        return [name for name, deprecated in classes[class_name].getFeatureNames().items() if not deprecated]

    names = []
    if "shape" in extractor.enabledFeatures:
        names += [f"original_shape_{name}" for name in enabled("shape")]
    # The filtered images' names (e.g. the order of the 8 wavelet bands) come from running each
    # image type's generator on a tiny image: the names are what pyradiomics itself yields.
    tiny = sitk.GetImageFromArray(np.arange(8 ** 3, dtype=np.float32).reshape(8, 8, 8))
    tiny_mask = sitk.GetImageFromArray(np.ones((8, 8, 8), dtype=np.uint32))
    texture_classes = [c for c in extractor.enabledFeatures if not c.startswith("shape")]
    for image_type, custom in extractor.enabledImagetypes.items():
        settings = {**extractor.settings, **custom}
        made = list(getattr(imageoperations, f"get{image_type}Image")(tiny, tiny_mask, **settings))
        if not made and texture_classes:
            # pyradiomics only logs a warning when a filter's package is missing (LBP2D needs
            # scikit-image, LBP3D trimesh and scipy's sph_harm, gone since SciPy 1.17) and
            # yields nothing: the table would silently lack the columns.
            raise InputError(f"{parameters.source}: pyradiomics cannot make the {image_type} images here "
                             f"({_LBP_NEEDS.get(image_type, 'its filter is unavailable')}); "
                             "use --radiomics-backend native, which computes them")
        for _, image_name, _ in made:
            for class_name in texture_classes:
                names += [f"{image_name}_{class_name}_{name}" for name in enabled(class_name)]
    return tuple(names)


_LBP_NEEDS = {"LBP2D": "it needs scikit-image",
              "LBP3D": "it needs trimesh and scipy.special.sph_harm, which SciPy 1.17 removed"}


def extract_case_features(image: sitk.Image, mask: sitk.Image, ring: sitk.Image,
                          params: ParamsLike = None, *, jobs: int = 1,
                          progress: Optional[ProgressCallback] = None,
                          cancel: Optional[CancelCheck] = None) -> dict[str, float]:
    """The tumour's and the ring's pyradiomics features: ``tumor_<name>``, ``peritumoral_<name>``.

    ``image`` is the CT, ``mask`` and ``ring`` 0/1 masks on its grid, ``params`` the parameters
    (a :class:`RadiomicsParameters`, a parsed mapping or a file path; default: the bundled file).
    ``jobs`` > 1 spreads the work over that many processes (the numbers are the same). Raises :class:`InputError` when an ROI is
    too small for pyradiomics (e.g. a single voxel).
    """
    parameters = shared.parameters(params)
    extractor = _extractor(parameters)
    rois = {"tumor": _label_source(mask), "peritumoral": _label_source(ring)}
    if _needs_plain_pyradiomics(extractor):
        return _plain_pyradiomics(extractor, image, rois, progress, cancel)
    plan = _Plan(extractor, image, rois)
    with _one_blas_thread():
        results = _run(plan, parameters, jobs, progress, cancel)
    features: dict[str, float] = {}
    for prefix in ROI_PREFIXES:
        for part in results[prefix]:
            features.update({f"{prefix}_{name}": float(value) for name, value in part.items()})
    return features


def _one_blas_thread():
    """One BLAS thread while pyradiomics runs: GLCM's MCC calls LAPACK on many small matrices,
    where OpenBLAS' threads only spin (measured: several times the CPU time, far worse on a busy
    machine). Parallelism comes from processes instead. The caller's setting is restored."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)


def _worker_start(main_pid: int) -> None:
    from DeepRadScoreLib.processes import guard_worker

    global _WORKER_LIMIT
    guard_worker(main_pid)
    _WORKER_LIMIT = _one_blas_thread()


_WORKER_LIMIT = None


def _as_label_map(mask: sitk.Image) -> sitk.Image:
    # pyradiomics casts every mask to UInt32 (imageoperations.getMask); do the same once.
    return sitk.Cast(mask, sitk.sitkUInt32)


def _label_source(mask: sitk.Image) -> sitk.Image:
    """The mask to crop from: an unsigned integer one as it is (the UInt32 cast keeps its values,
    and is made per crop, not of the whole image), any other cast now, as pyradiomics casts it."""
    unsigned = (sitk.sitkUInt8, sitk.sitkUInt16, sitk.sitkUInt32)
    return mask if mask.GetPixelID() in unsigned else _as_label_map(mask)


def _needs_plain_pyradiomics(extractor) -> bool:
    settings = extractor.settings
    if any(settings.get(name) for name in _UNSUPPORTED_SETTINGS):
        return True
    if "shape2D" in extractor.enabledFeatures:
        return True
    return int(settings.get("label", 1)) != 1


def _plain_pyradiomics(extractor, image, rois, progress, cancel) -> dict[str, float]:
    features: dict[str, float] = {}
    for n, (prefix, roi) in enumerate(rois.items()):
        report(progress, n / len(rois), f"pyradiomics: {prefix}", cancel)
        try:
            with _one_blas_thread():
                result = extractor.execute(image, roi)
        except ValueError as err:
            raise InputError(f"{_roi_label(prefix)}: {err}") from None
        features.update({f"{prefix}_{name}": float(value) for name, value in result.items()
                         if not name.startswith("diagnostics_")})
    report(progress, 1.0, "radiomics done")
    return features


def _roi_label(prefix: str) -> str:
    return {"tumor": "tumour mask", "peritumoral": "peritumoral ring"}[prefix]


class _Plan:
    """Where each ROI lies, what pyradiomics would crop for it, and the joint crop we filter."""

    def __init__(self, extractor, image: sitk.Image, rois: dict[str, sitk.Image]):
        self.extractor = extractor
        self.settings = dict(extractor.settings)
        self.image = image
        self.rois = rois
        size_kji = np.array(image.GetSize()[::-1])
        pad = int(self.settings.get("padDistance", 5)) if self.settings.get("preCrop") else None
        self.crop_of = {}   # ROI -> (lo, hi) inclusive k,j,i box pyradiomics filters for it
        self.bbox_of = {}   # ROI -> (lo, hi) inclusive k,j,i bounding box of the ROI
        for prefix, roi in rois.items():
            lo, hi = _bounding_box(sitk.GetArrayViewFromImage(roi), _roi_label(prefix))
            self.bbox_of[prefix] = (lo, hi)
            if pad is None:  # no preCrop: pyradiomics filters the whole image
                self.crop_of[prefix] = (np.zeros(3, int), size_kji - 1)
            else:
                self.crop_of[prefix] = (np.maximum(lo - pad, 0), np.minimum(hi + pad, size_kji - 1))
        los, his = zip(*self.crop_of.values())
        self.joint = (np.min(los, axis=0), np.max(his, axis=0))

    def crop(self, image: sitk.Image, box) -> sitk.Image:
        (k0, j0, i0), (k1, j1, i1) = box
        return image[int(i0):int(i1) + 1, int(j0):int(j1) + 1, int(k0):int(k1) + 1]

    def relative(self, prefix: str, box) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = self.bbox_of[prefix]
        return lo - box[0], hi - box[0]

    def shareable(self, image_type: str, settings: dict) -> bool:
        """Do the filtered values on every ROI voxel not depend on the crop (see module doc)?"""
        if image_type == "Original":
            return True
        if image_type != "Wavelet":
            return False
        reach = _wavelet_reach(settings)
        for prefix, (lo, hi) in self.bbox_of.items():
            c_lo, c_hi = self.crop_of[prefix]
            if np.any(lo - reach < c_lo) or np.any(hi + reach > c_hi):
                return False
        return True


def _bounding_box(array: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = [], []
    for axis in range(3):
        present = np.flatnonzero(array.any(axis=tuple(a for a in range(3) if a != axis)))
        if len(present) == 0:
            raise InputError(f"{what}: the region is empty")
        lo.append(present[0])
        hi.append(present[-1])
    return np.array(lo), np.array(hi)


def _wavelet_reach(settings: dict) -> int:
    """How many voxels away an input voxel still changes a wavelet band (per axis, either side):
    pyradiomics applies the level-1 filters (``filters.wavelet_reach``, measured on an
    impulse) once per level, ``start_level + level`` times."""
    from DeepRadScoreLib.features.filters import wavelet_reach

    levels = int(settings.get("start_level", 0)) + int(settings.get("level", 1))
    return wavelet_reach(settings.get("wavelet", "coif1")) * levels


# --- the tasks: plain functions of picklable arguments, run here or in a worker process -------

def _shape_task(parameters: RadiomicsParameters, image_bb: sitk.Image, mask_bb: sitk.Image) -> dict:
    """pyradiomics' ``computeShape`` on the ROI's bounding box, with the fast mesh diameters."""
    extractor = _extractor(parameters)
    shape = _mesh_shape_class()(image_bb, mask_bb, **extractor.settings)
    for name in extractor.enabledFeatures["shape"] or ():
        shape.enableFeatureByName(name)
    return {f"original_shape_{name}": value for name, value in shape.execute().items()}


def _texture_task(parameters: RadiomicsParameters, image_bb: sitk.Image, mask_bb: sitk.Image, image_name: str, kwargs: dict) -> dict:
    """pyradiomics' own per-image step on the (filtered) image cropped to the ROI: every class."""
    return dict(_extractor(parameters).computeFeatures(image_bb, mask_bb, image_name, **kwargs))


def _to_bounding_box(image: sitk.Image, mask: sitk.Image, lo_kji, hi_kji) -> tuple[sitk.Image, sitk.Image]:
    """pyradiomics' ``cropToTumorMask`` (no padding) to the ROI's box, done before a task is sent
    so that a worker receives only the ROI's box, not the whole crop."""
    from radiomics import imageoperations

    lo, hi = np.asarray(lo_kji)[::-1], np.asarray(hi_kji)[::-1]
    # pyradiomics' bounding box: (L_x, U_x, L_y, U_y, L_z, U_z) in SimpleITK index order.
    return imageoperations.cropToTumorMask(image, mask, np.array([lo[0], hi[0], lo[1], hi[1], lo[2], hi[2]]))


class _Tasks:
    """Runs tasks in a process pool, or here (jobs=1) as soon as each is submitted, so that its crops
    are freed before the next are made (made first, a 260k-voxel tumour's ~20 crop pairs held ~100
    MB at once); results keep their submission slot."""

    def __init__(self, jobs: int, progress=None, cancel=None, total: int = 1):
        self.pool = None
        if jobs > 1:
            # workers.process_context: a fork server (safe when the caller has threads: tqdm, Dask,
            # torch), whose workers never outlive this process; spawn where there is none.
            from DeepRadScoreLib.features.workers import process_context

            self.pool = concurrent.futures.ProcessPoolExecutor(jobs, mp_context=process_context("pyradiomics"),
                                                               initializer=_worker_start,
                                                               initargs=(os.getpid(),))
        self.pending: list = []
        self.progress, self.cancel, self.total = progress, cancel, max(total, 1)

    def submit(self, slot, function, *args) -> None:
        if self.pool is None:
            report(self.progress, len(self.pending) / self.total, "radiomics", self.cancel)
            self.pending.append((slot, function(*args)))
        else:
            self.pending.append((slot, self.pool.submit(function, *args)))

    def abort(self) -> None:
        self.pending = []
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)

    def results(self) -> Iterable[tuple]:
        done = len(self.pending) if self.pool is None else 0
        try:
            if self.pool is None:
                yield from self.pending
            else:
                futures = {future: slot for slot, future in self.pending}
                for future in concurrent.futures.as_completed(futures):
                    report(self.progress, done / self.total, "radiomics", self.cancel)
                    yield futures[future], future.result()
                    done += 1
        finally:
            self.abort()


def _task_count(extractor, parameters: RadiomicsParameters) -> int:
    """How many tasks :func:`_run` submits: shape per ROI, then one per (filtered image, ROI)."""
    images = {n.split("_", 1)[0] for n in _roi_feature_names(parameters) if not n.startswith("original_shape_")}
    return len(ROI_PREFIXES) * (("shape" in extractor.enabledFeatures) + len(images))


def _run(plan: _Plan, parameters: RadiomicsParameters, jobs: int, progress, cancel) -> dict[str, list[dict]]:
    from radiomics import imageoperations

    extractor = plan.extractor
    settings = plan.settings
    tasks = _Tasks(jobs, progress, cancel, _task_count(extractor, parameters))
    slots = {prefix: [] for prefix in ROI_PREFIXES}   # ROI -> ordered slot keys
    joint_image = plan.crop(plan.image, plan.joint)
    joint_rois = {p: _as_label_map(plan.crop(roi, plan.joint)) for p, roi in plan.rois.items()}
    report(progress, 0.0, "radiomics: checking the regions", cancel)
    for prefix in ROI_PREFIXES:
        _check_roi(joint_image, joint_rois[prefix], settings, prefix)

    # The biggest single tasks first, so that they do not end up last on one worker.
    if "shape" in extractor.enabledFeatures:
        for prefix in reversed(ROI_PREFIXES):
            image_bb, mask_bb = _to_bounding_box(joint_image, joint_rois[prefix], *plan.relative(prefix, plan.joint))
            tasks.submit((prefix, "shape"), _shape_task, parameters, image_bb, mask_bb)
        for prefix in ROI_PREFIXES:
            slots[prefix].append((prefix, "shape"))

    if any(not c.startswith("shape") for c in extractor.enabledFeatures):
        for image_type, custom in extractor.enabledImagetypes.items():
            kwargs_base = {**settings, **custom}
            generator = getattr(imageoperations, f"get{image_type}Image")
            if plan.shareable(image_type, kwargs_base):
                # One filtering of the joint crop serves both ROIs.
                filtered = _filtered_images(image_type, generator, joint_image, joint_rois["tumor"], kwargs_base)
                for image, image_name, kwargs in filtered:
                    for prefix in ROI_PREFIXES:
                        image_bb, mask_bb = _to_bounding_box(image, joint_rois[prefix],
                                                             *plan.relative(prefix, plan.joint))
                        tasks.submit((prefix, image_name), _texture_task, parameters, image_bb, mask_bb, image_name, kwargs)
                        slots[prefix].append((prefix, image_name))
            else:
                # Exactly pyradiomics' own path: filter each ROI's own crop.
                for prefix in ROI_PREFIXES:
                    box = plan.crop_of[prefix]
                    own_image, own_roi = plan.crop(plan.image, box), _as_label_map(plan.crop(plan.rois[prefix], box))
                    lo, hi = plan.relative(prefix, box)
                    for image, image_name, kwargs in _filtered_images(image_type, generator, own_image, own_roi,
                                                                      kwargs_base):
                        image_bb, mask_bb = _to_bounding_box(image, own_roi, lo, hi)
                        tasks.submit((prefix, image_name), _texture_task, parameters, image_bb, mask_bb, image_name, kwargs)
                        slots[prefix].append((prefix, image_name))
            if cancel is not None and cancel():
                tasks.abort()
                raise Cancelled("radiomics")

    collected = dict(tasks.results())
    report(progress, 1.0, "radiomics done")
    return {prefix: [collected[slot] for slot in slots[prefix]] for prefix in ROI_PREFIXES}


def _filtered_images(image_type: str, generator, image: sitk.Image, mask: sitk.Image, kwargs: dict):
    """What pyradiomics' ``get<image_type>Image(image, mask, **kwargs)`` yields. A one-level wavelet
    from level 0 (our file's) comes from ``filters.wavelet_bands``: the same pywt calls,
    so the same bands, names and order (test_native_core compares them with ``getWaveletImage``
    exactly), made one at a time, where pyradiomics' generator holds all of them twice."""
    if not (image_type == "Wavelet" and int(kwargs.get("level", 1)) == 1 and int(kwargs.get("start_level", 0)) == 0
            and not kwargs.get("force2D", False) and image.GetDimension() == 3):
        yield from generator(image, mask, **kwargs)
        return
    from DeepRadScoreLib.features.filters import wavelet_bands

    for name, band in wavelet_bands(sitk.GetArrayFromImage(image), kwargs.get("wavelet", "coif1")):
        filtered = sitk.GetImageFromArray(np.ascontiguousarray(band))
        del band
        filtered.CopyInformation(image)  # as pyradiomics' _swt3 does
        yield filtered, name, dict(kwargs)
        del filtered


def _check_roi(image: sitk.Image, roi: sitk.Image, settings: dict, prefix: str) -> None:
    """pyradiomics' own ROI checks (size, dimensions), as an :class:`InputError`."""
    from radiomics import imageoperations

    try:
        imageoperations.checkMask(image, roi, **settings)
    except ValueError as err:
        raise InputError(f"{_roi_label(prefix)}: {err}") from None


# --- shape: pyradiomics' RadiomicsShape with its mesh coefficients computed without O(V^2) -----

@lru_cache(maxsize=1)
def _mesh_shape_class():
    """The subclass, built on first use: importing this module does not import radiomics."""
    from radiomics.shape import RadiomicsShape

    class MeshShape(RadiomicsShape):
        """``RadiomicsShape`` whose surface, volume and diameters come from :func:`mesh_coefficients`."""

        def _initSegmentBasedCalculation(self):
            # As RadiomicsShape._initSegmentBasedCalculation (pyradiomics 3.1 and master): pad the
            # mask by one voxel, mesh it, and take the eigenvalues of the voxel coordinates'
            # covariance; only the mesh call differs.
            self.pixelSpacing = np.array(self.inputImage.GetSpacing()[::-1])
            self.inputMask = sitk.ConstantPad(self.inputMask, (1, 1, 1), (1, 1, 1))
            self.maskArray = sitk.GetArrayFromImage(self.inputMask) == self.label
            self.labelledVoxelCoordinates = np.where(self.maskArray != 0)
            self.SurfaceArea, self.Volume, self.diameters = mesh_coefficients(self.maskArray, self.pixelSpacing)
            count = len(self.labelledVoxelCoordinates[0])
            coordinates = np.array(self.labelledVoxelCoordinates, dtype="int").transpose((1, 0))
            physical = coordinates * self.pixelSpacing[None, :]
            physical -= np.mean(physical, axis=0)
            physical /= np.sqrt(count)
            covariance = np.dot(physical.T.copy(), physical)
            self.eigenValues = np.linalg.eigvals(covariance)
            machine_errors = np.bitwise_and(self.eigenValues < 0, self.eigenValues > -1e-10)
            self.eigenValues[machine_errors] = 0
            self.eigenValues.sort()

    return MeshShape


# Corners of a marching cube as (k, j, i) offsets, in pyradiomics' bit order (cshape.c gridAngles).
_CUBE_CORNERS = ((0, 0, 0), (0, 0, 1), (0, 1, 1), (0, 1, 0), (1, 0, 0), (1, 0, 1), (1, 1, 1), (1, 1, 0))


def mesh_coefficients(mask: np.ndarray, spacing) -> tuple[float, float, np.ndarray]:
    """pyradiomics' ``cShape.calculate_coefficients(mask, spacing)`` without the O(V^2) search.

    ``mask`` is a boolean ``[k, j, i]`` array padded with a zero border, ``spacing`` its (k, j, i)
    spacing in mm. Returns (mesh surface area, mesh volume, diameters) where the diameters are
    the maximum vertex distances within one k plane, one j plane, one i plane, and overall: the
    same four numbers in the same order as pyradiomics' C routine.
    """
    m = np.ascontiguousarray(mask, dtype=np.uint8)
    spacing = tuple(float(s) for s in spacing)
    cubes = _cube_configurations(m).ravel()
    unit_volume, unit_moment = _unit_volume_tables()
    counts = np.bincount(cubes, minlength=256).astype(float)
    surface = float(counts @ _area_table(spacing))
    # Volume: sum over cubes of (configuration term + cube position . configuration moment), all
    # in unit spacing, times the voxel volume (a determinant scales by the product of spacings).
    positions = np.indices(np.array(m.shape) - 1, sparse=True)
    moment = sum(np.bincount(cubes, weights=np.broadcast_to(p, np.array(m.shape) - 1).ravel().astype(float),
                             minlength=256) @ unit_moment[:, axis]
                 for axis, p in enumerate(positions))
    volume = float(counts @ unit_volume + moment) * spacing[0] * spacing[1] * spacing[2]
    return surface, volume, mesh.diameters(mesh.mesh_vertices(m), np.asarray(spacing))


def _cube_configurations(m: np.ndarray) -> np.ndarray:
    """The 8-bit corner configuration of every marching cube (cshape.c's ``cube_idx``)."""
    k, j, i = m.shape
    index = np.zeros((k - 1, j - 1, i - 1), dtype=np.uint8)
    for bit, (a, b, c) in enumerate(_CUBE_CORNERS):
        index |= m[a:a + k - 1, b:b + j - 1, c:c + i - 1] << bit
    return index


def _single_cube(configuration: int) -> np.ndarray:
    cube = np.zeros((2, 2, 2), dtype=bool)
    for bit, corner in enumerate(_CUBE_CORNERS):
        cube[corner] = bool(configuration >> bit & 1)
    return cube


def _c_mesh(mask: np.ndarray, spacing) -> tuple[float, float, tuple]:
    from radiomics import cShape

    return cShape.calculate_coefficients(np.ascontiguousarray(mask, dtype=bool), np.asarray(spacing, dtype=float))


@lru_cache(maxsize=1)
def _unit_volume_tables() -> tuple[np.ndarray, np.ndarray]:
    """Per configuration: its volume term at the origin and its moment per unit of position.

    pyradiomics sums signed tetrahedra ``a . (b x c) / 6`` with vertices in absolute coordinates;
    shifting a cube by ``P`` adds ``P . (a x b + b x c + c x a) / 6``. The moment along an axis is
    measured by meshing two cubes stacked along it: the configuration at position 1 behind a cube
    that repeats its first layer at position 0.
    """
    unit = (1.0, 1.0, 1.0)
    volume = np.array([_c_mesh(_single_cube(c), unit)[1] for c in range(256)])
    moment = np.zeros((256, 3))
    for c in range(256):
        cube = _single_cube(c)
        for axis in range(3):
            pair = np.concatenate([np.take(cube, [0], axis=axis), cube], axis=axis)
            lead = int(_cube_configurations(pair.astype(np.uint8)).ravel()[0])
            moment[c, axis] = _c_mesh(pair, unit)[1] - volume[lead] - volume[c]
    return volume, moment


@lru_cache(maxsize=64)
def _area_table(spacing: tuple[float, float, float]) -> np.ndarray:
    """Surface area of each configuration's triangles at this spacing (position does not matter)."""
    return np.array([_c_mesh(_single_cube(c), spacing)[0] for c in range(256)])
