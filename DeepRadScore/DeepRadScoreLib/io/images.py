"""Reading a CT and its tumour mask into SimpleITK images on one grid.

``load_case(image_path, mask_path)`` is the entry point: the CT as float32 HU and the tumour as a
uint8 0/1 mask on exactly the CT's grid, or an :class:`InputError` that names the file and the
problem.

Images: NIfTI, NRRD, MHA (anything SimpleITK reads) or a DICOM series (a folder, or one of its
files). Masks: a label image on the CT's grid; Slicer's ``.seg.nrrd`` (segments in one or several
layers, possibly cropped to a smaller extent than the CT); a DICOM RTSTRUCT or SEG (``io.dicom``).
Every mask format is first turned into a list of :class:`Segment` (label, name, rasteriser), and
one rule picks the tumour among them: ``roi_name``, else ``label``, else the only one there is.
"""
from __future__ import annotations

import concurrent.futures
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from DeepRadScoreLib.errors import InputError
from DeepRadScoreLib.io import dicom
from DeepRadScoreLib.io.grid import Segment, check_same_grid, place_on_grid
from DeepRadScoreLib.io.integrity import check_image_data
from DeepRadScoreLib.io.plausibility import check_values


_SEGMENT_KEY = re.compile(r"^Segment(\d+)_ID$")


@dataclass
class Case:
    """One CT with its tumour mask, both on the CT's grid."""

    image: sitk.Image
    mask: sitk.Image
    image_path: str = ""
    mask_path: str = ""


def read_image(path: str | Path) -> sitk.Image:
    """Read a CT volume (NIfTI, NRRD, MHA, DICOM series folder or file) as float32 HU."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    if path.is_dir() or _is_dicom(path):
        return check_values(dicom.read_series(path), path)
    image = _read_sitk(path, "an image")
    if image.GetDimension() != 3:
        raise InputError(f"{path}: expected a 3D image, got {image.GetDimension()}D")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"{path}: expected a scalar CT image, got {image.GetNumberOfComponentsPerPixel()} components")
    # Integer voxels cannot be NaN: only their range is scanned (the NIfTI reader's own NaN-to-0
    # is caught in the file's data by check_image_data; see io.plausibility).
    return check_values(sitk.Cast(image, sitk.sitkFloat32), path, image.GetPixelID())


def read_mask(path: str | Path, reference: sitk.Image, label: int | None = None,
              roi_name: str | None = None) -> sitk.Image:
    """Read the tumour from a mask file as uint8 0/1 on ``reference``'s grid.

    ``roi_name`` picks a named ROI/segment (RTSTRUCT, SEG, ``.seg.nrrd``), ``label`` a label value
    (label image), segment number (SEG), ROI number (RTSTRUCT) or label value (``.seg.nrrd``); with
    neither, the file must hold exactly one region. The chosen region must not be empty.
    """
    path = _mask_file(Path(path))
    segment = select_segment(mask_segments(path, reference), label, roi_name, str(path))
    return _to_image(_load_nonempty(segment, str(path)), reference)


def read_constraint(path: str | Path, reference: sitk.Image) -> sitk.Image:
    """Every region of a mask file together (e.g. left + right lung), uint8 0/1 on ``reference``."""
    path = _mask_file(Path(path))
    union = np.zeros(sitk.GetArrayViewFromImage(reference).shape, dtype=bool)
    for segment in mask_segments(path, reference):
        union |= segment.load()
    if not union.any():
        raise InputError(f"{path}: the constraint mask is empty")
    return _to_image(union, reference)


def load_case(image_path: str | Path, mask_path: str | Path, label: int | None = None,
              roi_name: str | None = None) -> Case:
    """Read a CT and its tumour mask, checked and on one grid."""
    image = read_image(image_path)
    mask = read_mask(mask_path, image, label, roi_name)
    return Case(image=image, mask=mask, image_path=str(image_path), mask_path=str(mask_path))


def mask_segments(path: str | Path, reference: sitk.Image) -> list[Segment]:
    """The candidate regions of any supported mask file, placed on ``reference``'s grid."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    if path.is_dir() or _is_dicom(path):
        return dicom.mask_segments(path, reference)
    mask = _read_sitk(path, "a mask")
    if any(_SEGMENT_KEY.match(key) for key in mask.GetMetaDataKeys()):
        return _segmentation_segments(mask, reference, str(path))
    return label_segments(mask, reference, str(path))


def label_segments(mask: sitk.Image, reference: sitk.Image, name: str) -> list[Segment]:
    """One segment per non-zero value of a label image, which must lie on ``reference``'s grid."""
    if mask.GetDimension() != 3:
        raise InputError(f"{name}: expected a 3D mask, got {mask.GetDimension()}D")
    if mask.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"{name}: expected a scalar label image, got "
                         f"{mask.GetNumberOfComponentsPerPixel()} components")
    check_same_grid(reference, mask, name)
    values = sitk.GetArrayFromImage(mask)  # a copy: the loaders outlive ``mask``
    labels = np.unique(values[values != 0])  # the tumour is small: sort only the non-zero voxels
    wrong = labels[~np.isfinite(labels) | (labels != np.round(labels))]
    if wrong.size:  # name a value that is wrong (NaN, inf, 0.5), not merely the first label
        raise InputError(f"{name}: mask values must be integer labels (found e.g. {wrong[0]:g})")
    return [Segment(label=int(v), name=None, load=lambda v=v: values == v) for v in labels]


def select_segment(segments: list[Segment], label: int | None, roi_name: str | None,
                   name: str) -> Segment:
    """The one segment chosen by ``roi_name`` and/or ``label``, or the only one."""
    if not segments:
        raise InputError(f"{name}: the mask is empty")
    named = any(s.name is not None for s in segments)
    listing = ", ".join(s.describe() for s in segments[:20]) + (", ..." if len(segments) > 20 else "")
    chosen = segments
    if roi_name is not None:
        if not named:
            raise InputError(f"{name}: a label image has no ROI names; choose the tumour with --label N")
        chosen = [s for s in segments if s.name == roi_name]
        if not chosen:
            chosen = [s for s in segments if (s.name or "").lower() == roi_name.lower()]
        if not chosen:
            raise InputError(f"{name}: no ROI named '{roi_name}' (available: {listing})")
    if label is not None:
        chosen = [s for s in chosen if s.label == label]
        if not chosen:
            what = f"no region with label {label}" + (f" named '{roi_name}'" if roi_name else "")
            raise InputError(f"{name}: {what} (available: {listing})")
    if len(chosen) > 1:
        if roi_name is None and label is None and not named:
            raise InputError(f"{name}: the mask holds labels {listing}; choose one with --label N")
        raise InputError(f"{name}: holds {len(chosen)} candidate ROIs ({', '.join(s.describe() for s in chosen)}); "
                         "choose one with --roi-name NAME" + ("" if roi_name else " or --label N"))
    return chosen[0]


def binarise(mask: sitk.Image, reference: sitk.Image, label: int | None, name: str) -> sitk.Image:
    """Select ``label`` (or the only label) of a label image on ``reference``'s grid, as uint8 0/1."""
    segment = select_segment(label_segments(mask, reference, name), label, None, name)
    return _to_image(_load_nonempty(segment, name), reference)


def _segmentation_segments(seg: sitk.Image, reference: sitk.Image, name: str) -> list[Segment]:
    """Segments of a Slicer ``.seg.nrrd``: ``SegmentN_*`` keys; several layers arrive as components."""
    if seg.GetDimension() != 3:
        raise InputError(f"{name}: expected a 3D segmentation, got {seg.GetDimension()}D")
    layers = seg.GetNumberOfComponentsPerPixel()
    values = sitk.GetArrayFromImage(seg)  # a copy: the loaders outlive ``seg``
    if layers == 1:
        values = values[..., None]
    geometry = (seg.GetOrigin(), seg.GetSpacing(), seg.GetDirection())
    numbers = sorted(int(m.group(1)) for key in seg.GetMetaDataKeys() if (m := _SEGMENT_KEY.match(key)))
    segments = []
    for n in numbers:
        def field(key: str, default: str) -> str:
            full = f"Segment{n}_{key}"
            return seg.GetMetaData(full).strip() if seg.HasMetaDataKey(full) else default
        segment_name = field("Name", field("ID", f"Segment_{n}"))
        try:
            layer, value = int(field("Layer", "0")), int(field("LabelValue", "1"))
        except ValueError:
            raise InputError(f"{name}: segment '{segment_name}' has a malformed Layer/LabelValue") from None
        if not 0 <= layer < layers:
            raise InputError(f"{name}: segment '{segment_name}' is in layer {layer}, the file has {layers}")
        segments.append(Segment(
            label=value, name=segment_name,
            load=lambda layer=layer, value=value, s=segment_name: place_on_grid(
                values[..., layer] == value, *geometry, reference, f"{name}: segment '{s}'")))
    return segments


def _mask_file(path: Path) -> Path:
    """A folder given as a mask stands for the one RTSTRUCT/SEG file in it: name that file in errors."""
    if path.is_dir():
        return dicom.find_mask_object(path)
    return path


def _load_nonempty(segment: Segment, name: str) -> np.ndarray:
    array = segment.load()
    if not array.any():
        what = "the mask" if segment.name is None else f"ROI {segment.describe()}"
        raise InputError(f"{name}: {what} is empty")
    return array


def _to_image(array: np.ndarray, reference: sitk.Image) -> sitk.Image:
    image = sitk.GetImageFromArray(array.astype(np.uint8))
    image.CopyInformation(reference)
    return image


def _read_sitk(path: Path, what: str) -> sitk.Image:
    # SimpleITK's readers accept a file cut short and fill the missing voxels silently, so the
    # data size is checked too: the header's sizes first (before ITK allocates what they ask
    # for), then the compressed stream's end and checksum, which means decompressing once more,
    # in a thread beside SimpleITK's own read (both release the GIL): little added wall time.
    check_image_data(path, stream=False)
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="check-image") as pool:
        check = pool.submit(check_image_data, path)
        try:
            image, error = sitk.ReadImage(str(path)), None
        except RuntimeError as err:
            image, error = None, err
        check.result()  # "truncated ..." says more than ITK's message, when both fail
    if error is not None:
        raise InputError(f"{path}: cannot read as {what} ({_first_line(error)})") from None
    return image


def _is_dicom(path: Path) -> bool:
    return dicom.is_dicom_file(path)


def _first_line(err: Exception) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[-1] if lines else type(err).__name__
