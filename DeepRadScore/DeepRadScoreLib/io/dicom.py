"""DICOM input: a CT series, an RTSTRUCT rasterised onto the CT, and a DICOM SEG.

Everything here ends as numpy/SimpleITK data on the CT's voxel grid, positioned by the patient
coordinates (LPS, mm) that DICOM stores, so direction cosines are honoured throughout:

* a CT series is the image files of one ``SeriesInstanceUID``, sorted along the slice normal and
  checked for a regular stack (no gantry tilt, no missing or duplicate slices);
* an RTSTRUCT ROI is a set of planar contours in LPS mm; each point goes to a continuous voxel
  index of the CT, every contour must lie on one CT slice, and a voxel is inside when its centre is
  inside by the even-odd rule over all contours of the slice (so a contour inside another is a
  hole);
* a DICOM SEG frame is a 2D bitmap with its own position; its pixels must fall on CT voxel
  centres (same lattice), which :func:`imaging.place_on_grid` checks.

The CT's Frame of Reference UID travels on the image as the metadata key
:data:`FRAME_OF_REFERENCE_KEY`; an RTSTRUCT or SEG in another frame of reference is refused.
"""
from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from DeepRadScoreLib.errors import InputError
from DeepRadScoreLib.io.grid import Segment, place_on_grid


FRAME_OF_REFERENCE_KEY = "0020|0052"
PIXEL_DATA_TAG = 0x7FE00010
# Float Pixel Data and Double Float Pixel Data (parametric maps, not CTs): refused by name.
FLOAT_PIXEL_TAGS = (0x7FE00008, 0x7FE00009)
RTSTRUCT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"
SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
MASK_MODALITIES = ("RTSTRUCT", "SEG")

# A contour must lie within this many slices of a CT slice centre: contours drawn on the CT itself
# sit on it to rounding error; anything further was drawn on another image and is refused rather
# than silently moved to the nearest slice.
CONTOUR_SLICE_TOLERANCE = 0.25
# Slice gaps of a series may differ from their median by this fraction before it is refused.
SLICE_GAP_TOLERANCE = 0.05

_SCAN_TAGS = ["SOPClassUID", "Modality", "SeriesInstanceUID", "SeriesDescription",
              "ImagePositionPatient", "ImageOrientationPatient", "Rows", "NumberOfFrames",
              "FrameOfReferenceUID", "RescaleSlope", "RescaleIntercept", "PixelSpacing"]


def is_dicom_file(path: str | Path) -> bool:
    """True when ``path`` is a file with the DICOM Part 10 preamble ("DICM" at byte 128)."""
    path = Path(path)
    if not path.is_file():
        return False
    with open(path, "rb") as f:
        head = f.read(132)
    return len(head) == 132 and head[128:] == b"DICM"


def _pydicom():
    import pydicom  # imported here: NIfTI/NRRD users never pay for it
    return pydicom


def _read_header(path: Path):
    pydicom = _pydicom()
    try:
        return pydicom.dcmread(str(path), stop_before_pixels=True, specific_tags=_SCAN_TAGS)
    except Exception:  # noqa: BLE001 - any unreadable file is simply not part of a series
        return None


def _dicom_files(folder: Path) -> list[Path]:
    files = []
    for root, _, names in os.walk(folder):
        for name in sorted(names):
            path = Path(root) / name
            if is_dicom_file(path):
                files.append(path)
    return files


def read_series(path: str | Path) -> sitk.Image:
    """Read a CT series (a folder, or one of its slice files) as float32 HU.

    A folder may hold other things too (an RTSTRUCT, other files); it must hold exactly one image
    series. The slices are sorted along the normal of their orientation, so the result's third
    direction column is that normal and its origin is the first slice's position.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    folder = path if path.is_dir() else path.parent
    wanted_series = None
    if path.is_file():
        header = _read_header(path)
        if header is None or "SeriesInstanceUID" not in header:
            raise InputError(f"{path}: cannot read as a DICOM image")
        wanted_series = header.SeriesInstanceUID
    series: dict[str, list] = defaultdict(list)
    unplaced: dict[str, list] = defaultdict(list)  # files of a series without a slice position
    _refuse_damaged_slices(folder)
    for file in _dicom_files(folder):
        header = _read_header(file)
        if header is None:
            # A DICOM file whose header cannot be read is a damaged slice (cut, overwritten): left
            # out, the series would silently lose a slice (an end slice passes the gap check).
            raise InputError(f"{file}: cannot read the DICOM header (damaged or cut file?)")
        if "SOPClassUID" not in header or "SeriesInstanceUID" not in header:
            # Both are mandatory in every DICOM object: a header without them was cut short.
            raise InputError(f"{file}: the DICOM header is incomplete (no SOP class or series UID: "
                             "a damaged or cut file?)")
        if header.get("Modality", "") in MASK_MODALITIES:
            continue
        if wanted_series is None or header.SeriesInstanceUID == wanted_series:
            if "ImagePositionPatient" not in header:
                unplaced[header.SeriesInstanceUID].append(file)
                continue
            _check_rescale(header, file)
            if "PixelSpacing" in header and min(_numbers(header, "PixelSpacing", 2, file)) <= 0:
                # a damaged value GDCM would read as some other spacing (found by the fuzz oracle)
                raise InputError(f"{file}: PixelSpacing is not positive")
            series[header.SeriesInstanceUID].append((file, header))
    if not series:
        raise InputError(f"{path}: no DICOM image series found")
    if len(series) > 1:
        found = "; ".join(f"{uid} ({items[0][1].get('SeriesDescription', '') or 'no description'}, "
                          f"{len(items)} files)" for uid, items in series.items())
        raise InputError(f"{path}: holds {len(series)} image series ({found}); give the folder or a "
                         "file of one series")
    uid, items = next(iter(series.items()))
    if unplaced.get(uid):
        # Another file of this very series has no position: a slice whose header was cut.
        raise InputError(f"{unplaced[uid][0]}: a file of this series has no ImagePositionPatient "
                         "(a damaged or cut slice?)")
    if any(_frames(h, f) > 1 for f, h in items):
        if len(items) > 1:
            raise InputError(f"{path}: a series of several multi-frame files is not supported")
        return _read_with_sitk([items[0][0]], path, items[0][1])
    files = _sorted_slices(items, path)
    return _read_with_sitk(files, path, items[0][1])


def _refuse_damaged_slices(folder: Path) -> None:
    """A ``.dcm``/``.ima`` file without the DICOM preamble is a slice cut to (nearly) nothing."""
    for root, _, names in os.walk(folder):
        for name in sorted(names):
            path = Path(root) / name
            if path.suffix.lower() in (".dcm", ".ima") and not is_dicom_file(path):
                raise InputError(f"{path}: not a DICOM file (no 'DICM' preamble: a damaged or cut slice?)")


def _numbers(header, keyword: str, count: int, file: Path) -> list[float]:
    """``count`` finite numbers of a geometry attribute, or an InputError naming the file (a
    damaged header gives a missing value, junk such as ",174.39" or NaN)."""
    try:
        values = [float(v) for v in header.get(keyword)]
    except (TypeError, ValueError):
        values = []
    if len(values) != count or not np.all(np.isfinite(values)):
        raise InputError(f"{file}: {keyword} is missing or not {count} numbers")
    return values


def _check_rescale(header, file: Path) -> None:
    """GDCM reads a Rescale Slope/Intercept of NaN, inf or junk as if it were absent (slope 1,
    intercept 0): a silent change of every voxel. Present, each must be one finite number."""
    for keyword in ("RescaleSlope", "RescaleIntercept"):
        if keyword not in header or header.get(keyword) in (None, ""):
            continue
        try:
            value = float(header.get(keyword))
        except (TypeError, ValueError):
            value = float("nan")
        if not np.isfinite(value) or (keyword == "RescaleSlope" and value == 0):
            raise InputError(f"{file}: {keyword} is {str(header.get(keyword))[:40]!r}, not a usable "
                             "scaling of the voxel values")


def _frames(header, file: Path) -> int:
    try:
        return int(header.get("NumberOfFrames", 1) or 1)
    except (TypeError, ValueError):
        raise InputError(f"{file}: NumberOfFrames is not a whole number") from None


def _sorted_slices(items: list, name: Path) -> list[str]:
    """The slice files ordered along the slice normal, after checking they form a regular stack."""
    if len(items) < 2:
        raise InputError(f"{name}: a DICOM series of one slice is not a 3D image")
    orientations = np.array([_numbers(h, "ImageOrientationPatient", 6, f) for f, h in items])
    if np.abs(orientations - orientations[0]).max() > 1e-4:
        raise InputError(f"{name}: the slices of the series have different orientations")
    row, col = orientations[0, :3], orientations[0, 3:]
    normal = np.cross(row, col)
    positions = np.array([_numbers(h, "ImagePositionPatient", 3, f) for f, h in items])
    along = positions @ normal
    order = np.argsort(along)
    along, positions = along[order], positions[order]
    gaps = np.diff(along)
    if gaps.min() <= 1e-3:
        raise InputError(f"{name}: two slices share the position {along[np.argmin(gaps)]:.2f} mm")
    median = float(np.median(gaps))
    if np.abs(gaps - median).max() > SLICE_GAP_TOLERANCE * median:
        raise InputError(f"{name}: slice gaps range {gaps.min():.3g}-{gaps.max():.3g} mm (missing "
                         "slices or variable spacing); resample it to a regular grid first")
    stack = positions[-1] - positions[0]
    if np.linalg.norm(np.cross(stack / np.linalg.norm(stack), normal)) > 1e-3:
        raise InputError(f"{name}: the slices are stacked obliquely to their plane (gantry tilt); "
                         "resample it to a regular grid first")
    return [str(items[i][0]) for i in order]


def _read_with_sitk(files: list, name: Path, header) -> sitk.Image:
    for file in files:
        check_pixel_data(Path(file))
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(f) for f in files])
    try:
        image = reader.Execute()
    except RuntimeError as err:
        # GDCM names no file: find the slice it cannot read, so the user knows which to replace.
        for file in files:
            try:
                sitk.ReadImage(str(file))
            except RuntimeError as one:
                raise InputError(f"{file}: cannot read this DICOM slice ({_last_line(one)})") from None
        raise InputError(f"{name}: cannot read the DICOM series ({_last_line(err)})") from None
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"{name}: the DICOM series is not a scalar 3D image")
    image = sitk.Cast(image, sitk.sitkFloat32)
    if "FrameOfReferenceUID" in header:
        image.SetMetaData(FRAME_OF_REFERENCE_KEY, str(header.FrameOfReferenceUID))
    return image


def check_pixel_data(file: Path) -> None:
    """Refuse a slice whose Pixel Data element is cut short: pydicom reads it without complaint
    (a shorter value) and GDCM's message names no file.

    Native (uncompressed) pixel data must hold Rows x Columns x SamplesPerPixel x NumberOfFrames
    voxels of BitsAllocated bits, and the element must end inside the file. Encapsulated
    (compressed) data is left to the decoder, whose failure is reported per file.
    """
    pydicom = _pydicom()
    try:
        # defer_size: the pixel data is not read, only its declared length and position.
        ds = pydicom.dcmread(str(file), defer_size=1024)
        element = ds.get_item(PIXEL_DATA_TAG, keep_deferred=True)
    except Exception as err:  # noqa: BLE001 - pydicom raises many types for broken files
        raise InputError(f"{file}: cannot read as DICOM ({_last_line(err)})") from None
    if element is None:
        if any(tag in ds for tag in FLOAT_PIXEL_TAGS):
            raise InputError(f"{file}: float pixel data (Float/Double Float Pixel Data) is not read as a CT")
        raise InputError(f"{file}: the DICOM image has no pixel data")
    meta = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if syntax is None or not getattr(syntax, "is_transfer_syntax", False):
        # A damaged file meta group: pydicom guesses the encoding, GDCM misreads lengths (a fuzzed
        # file made it allocate ~1 GB per slice before failing).
        raise InputError(f"{file}: the DICOM file meta information has no valid transfer syntax "
                         f"({syntax or 'missing'}): a damaged file?")
    length, tell = getattr(element, "length", None), getattr(element, "value_tell", None)
    value = getattr(element, "value", None)
    if length == 0xFFFFFFFF or getattr(element, "is_undefined_length", False):
        return  # encapsulated (compressed): the decoder's failure is reported per file
    if isinstance(value, (bytes, bytearray)):
        found = len(value)  # small enough to have been read: pydicom keeps what the file had
    elif length is not None and tell is not None:
        available = file.stat().st_size - tell
        if length > available:
            # The element promises more than the file holds: a cut file, or a damaged length that
            # GDCM would allocate as asked (a fuzzed length of ~2**31 took 20 GB before this).
            raise InputError(f"{file}: truncated image data (expected {length} bytes of pixel data, "
                             f"found {max(available, 0)})")
        found = length
    else:
        return
    try:
        expected = (int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1) or 1)
                    * int(ds.get("NumberOfFrames", 1) or 1) * int(ds.BitsAllocated) + 7) // 8
    except (AttributeError, TypeError, ValueError):
        return  # no geometry to compare with: GDCM will refuse it with its own message
    if found < expected:
        raise InputError(f"{file}: truncated image data (expected {expected} bytes of pixel data, "
                         f"found {max(found, 0)})")


def find_mask_object(path: str | Path) -> Path:
    """The one RTSTRUCT or SEG file at ``path`` (a file, or a folder searched recursively)."""
    path = Path(path)
    if path.is_file():
        return path
    found = []
    for file in _dicom_files(path):
        header = _read_header(file)
        if header is not None and header.get("Modality", "") in MASK_MODALITIES:
            found.append((file, header.Modality))
    if not found:
        raise InputError(f"{path}: no DICOM RTSTRUCT or SEG file in this folder")
    if len(found) > 1:
        listed = ", ".join(f"{f.name} ({m})" for f, m in found)
        raise InputError(f"{path}: holds {len(found)} RTSTRUCT/SEG files ({listed}); give one file")
    return found[0][0]


def mask_segments(path: str | Path, reference: sitk.Image) -> list[Segment]:
    """The ROIs of an RTSTRUCT or the segments of a SEG, each rasterised on demand on ``reference``."""
    file = find_mask_object(path)
    pydicom = _pydicom()
    try:
        ds = pydicom.dcmread(str(file))
        modality, sop_class = ds.get("Modality", ""), ds.get("SOPClassUID", "")  # parsed lazily: may fail here
    except Exception as err:  # noqa: BLE001 - pydicom raises many types for broken files
        raise InputError(f"{file}: cannot read as DICOM ({_last_line(err)})") from None
    if modality == "RTSTRUCT" or sop_class == RTSTRUCT_SOP_CLASS:
        segments = _guarded(_rtstruct_segments, file, "RTSTRUCT")(ds, file, reference)
    elif modality == "SEG" or sop_class == SEG_SOP_CLASS:
        segments = _guarded(_seg_segments, file, "SEG")(ds, file, reference)
    else:
        raise InputError(f"{file}: a DICOM {modality or 'object'} is not a mask (expected RTSTRUCT or SEG)")
    # The loaders run later (only the chosen ROI is rasterised): guard them the same way.
    return [Segment(s.label, s.name, _guarded(s.load, file, modality or "mask")) for s in segments]


def _guarded(function, file: Path, what: str):
    """``function``, with a missing or malformed attribute of a damaged DICOM object (pydicom's
    AttributeError/KeyError, junk numbers) turned into an InputError naming the file."""
    def call(*args):
        try:
            return function(*args)
        except (AttributeError, KeyError, TypeError, ValueError, IndexError, NotImplementedError, OSError,
                EOFError) as err:
            # pydicom parses a sequence lazily: a damaged VR or length surfaces here, as
            # NotImplementedError ("Unknown Value Representation") or OSError (found by fuzzing).
            raise InputError(f"{file}: malformed {what} ({_last_line(err)})") from None
    return call


def _check_frame_of_reference(uid: str | None, reference: sitk.Image, file: Path) -> None:
    if uid and reference.HasMetaDataKey(FRAME_OF_REFERENCE_KEY):
        ct_uid = reference.GetMetaData(FRAME_OF_REFERENCE_KEY)
        if ct_uid and ct_uid != uid:
            raise InputError(f"{file}: its Frame of Reference UID {uid} is not the CT's ({ct_uid}); "
                             "it was drawn on another scan")


# ---------------------------------------------------------------------------------------- RTSTRUCT

def _rtstruct_segments(ds, file: Path, reference: sitk.Image) -> list[Segment]:
    frames = [item.get("FrameOfReferenceUID", None)
              for item in ds.get("ReferencedFrameOfReferenceSequence", [])]
    _check_frame_of_reference(frames[0] if len(frames) == 1 else None, reference, file)
    contours_by_roi = {}
    for item in ds.get("ROIContourSequence", []):
        contours_by_roi[int(item.ReferencedROINumber)] = item.get("ContourSequence", [])
    segments = []
    for roi in ds.get("StructureSetROISequence", []):
        number, name = int(roi.ROINumber), str(roi.get("ROIName", ""))
        contours = contours_by_roi.get(number, [])
        segments.append(Segment(label=number, name=name,
                                load=lambda c=contours, n=name: _rasterise_roi(c, n, reference, file)))
    if not segments:
        raise InputError(f"{file}: the RTSTRUCT holds no ROI")
    return segments


def _rasterise_roi(contour_items, roi_name: str, reference: sitk.Image, file: Path) -> np.ndarray:
    polygons = []
    for item in contour_items:
        if item.get("ContourGeometricType", "CLOSED_PLANAR") != "CLOSED_PLANAR":
            continue  # points and open polylines enclose nothing
        data = np.asarray([float(v) for v in item.ContourData], dtype=float)
        if data.size < 9 or data.size % 3:
            raise InputError(f"{file}: ROI '{roi_name}' has a contour with {data.size} coordinates")
        polygons.append(data.reshape(-1, 3))
    if not polygons:
        raise InputError(f"{file}: ROI '{roi_name}' has no closed contour")
    return rasterise_contours(polygons, reference, f"{file}: ROI '{roi_name}'")


def rasterise_contours(polygons: list[np.ndarray], reference: sitk.Image, name: str = "contours") -> np.ndarray:
    """Closed planar contours (each ``(n, 3)`` LPS mm) -> bool array ``[k, j, i]`` on ``reference``.

    Each point is mapped to a continuous voxel index through the CT's origin, spacing and direction
    cosines. A contour must lie on one axial slice (index ``k``) of the CT. On each slice, a voxel is
    inside when a ray from its centre crosses the slice's contours an odd number of times (even-odd
    rule: nested contours are holes, disjoint ones are islands).
    """
    origin = np.array(reference.GetOrigin())
    matrix = np.array(reference.GetDirection()).reshape(3, 3) * np.array(reference.GetSpacing())
    to_index = np.linalg.inv(matrix)
    size_i, size_j, size_k = reference.GetSize()
    by_slice: dict[int, list[np.ndarray]] = defaultdict(list)
    for points in polygons:
        index = (points - origin) @ to_index.T  # rows (i, j, k)
        k_mean = float(index[:, 2].mean())
        k = int(np.floor(k_mean + 0.5))
        if np.abs(index[:, 2] - k).max() > CONTOUR_SLICE_TOLERANCE:
            if np.ptp(index[:, 2]) > CONTOUR_SLICE_TOLERANCE:
                raise InputError(f"{name}: a contour is not parallel to the CT's slices")
            raise InputError(f"{name}: a contour lies between CT slices (slice index {k_mean:.2f}); "
                             "it was drawn on another image grid")
        if not 0 <= k < size_k:
            raise InputError(f"{name}: a contour lies outside the CT (slice index {k})")
        by_slice[k].append(index[:, :2])
    mask = np.zeros((size_k, size_j, size_i), dtype=bool)
    for k, slice_polygons in by_slice.items():
        for polygon in slice_polygons:
            mask[k] ^= _fill_polygon(polygon, size_j, size_i)
    return mask


def _fill_polygon(polygon: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Voxel centres inside one polygon (continuous ``(i, j)`` vertices), by ray crossing parity.

    An edge counts for row ``j`` when ``j`` lies in ``[min(y0, y1), max(y0, y1))`` (half-open, so a
    vertex on the row is counted once); a centre is inside when an odd number of crossings lie
    strictly to its right.
    """
    filled = np.zeros((rows, cols), dtype=bool)
    x0, y0 = polygon[:, 0], polygon[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    j_lo = max(int(np.ceil(y0.min())), 0)
    j_hi = min(int(np.floor(y0.max())), rows - 1)
    if j_lo > j_hi:
        return filled
    centres_i = np.arange(cols, dtype=float)
    for j in range(j_lo, j_hi + 1):
        crosses = (y0 <= j) != (y1 <= j)
        if not crosses.any():
            continue
        xs = x0[crosses] + (j - y0[crosses]) * (x1[crosses] - x0[crosses]) / (y1[crosses] - y0[crosses])
        xs.sort()
        right = len(xs) - np.searchsorted(xs, centres_i, side="right")
        filled[j] = (right % 2) == 1
    return filled


# ---------------------------------------------------------------------------------------- SEG

def _seg_segments(ds, file: Path, reference: sitk.Image) -> list[Segment]:
    _check_frame_of_reference(str(ds.get("FrameOfReferenceUID", "")) or None, reference, file)
    descriptions = ds.get("SegmentSequence", [])
    if not descriptions:
        raise InputError(f"{file}: the SEG holds no segment")
    segmentation_type = str(ds.get("SegmentationType", "BINARY"))
    cache: dict = {}

    def frames():
        if "frames" not in cache:
            cache["frames"] = _seg_frames(ds, file, segmentation_type)
        return cache["frames"]

    segments = []
    for item in descriptions:
        number = int(item.SegmentNumber)
        name = str(item.get("SegmentLabel", ""))
        segments.append(Segment(label=number, name=name,
                                load=lambda n=number: _seg_volume(frames(), n, segmentation_type,
                                                                  reference, file)))
    return segments


def _seg_frames(ds, file: Path, segmentation_type: str):
    """Per frame: (segment number or None for LABELMAP, position, orientation, spacing, pixels)."""
    try:
        pixels = ds.pixel_array
    except Exception as err:  # noqa: BLE001 - decoder errors come in many types
        raise InputError(f"{file}: cannot decode the SEG pixel data ({_last_line(err)})") from None
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    pixels = pixels.reshape(n_frames, int(ds.Rows), int(ds.Columns))
    shared = ds.get("SharedFunctionalGroupsSequence", [None])[0]
    per_frame = ds.get("PerFrameFunctionalGroupsSequence", [])
    if len(per_frame) != n_frames:
        raise InputError(f"{file}: the SEG has {n_frames} frames but {len(per_frame)} frame descriptions")
    if segmentation_type == "FRACTIONAL":
        threshold = 0.5 * float(ds.get("MaximumFractionalValue", 255))
    frames = []
    for f, group in enumerate(per_frame):
        position = _functional(group, shared, "PlanePositionSequence", "ImagePositionPatient", file)
        orientation = _functional(group, shared, "PlaneOrientationSequence", "ImageOrientationPatient", file)
        spacing = _functional(group, shared, "PixelMeasuresSequence", "PixelSpacing", file)
        if segmentation_type == "LABELMAP":
            number, bitmap = None, pixels[f]
        else:
            number = int(_functional(group, shared, "SegmentIdentificationSequence",
                                     "ReferencedSegmentNumber", file))
            bitmap = pixels[f] > threshold if segmentation_type == "FRACTIONAL" else pixels[f] > 0
        frames.append((number, np.array([float(v) for v in position]),
                       np.array([float(v) for v in orientation]), np.array([float(v) for v in spacing]),
                       bitmap))
    return frames


def _functional(group, shared, sequence: str, keyword: str, file: Path):
    for source in (group, shared):
        if source is not None and sequence in source and keyword in source[sequence][0]:
            return source[sequence][0][keyword].value
    raise InputError(f"{file}: a SEG frame lacks {keyword}")


def _seg_volume(frames, number: int, segmentation_type: str, reference: sitk.Image, file: Path) -> np.ndarray:
    volume = np.zeros(sitk.GetArrayViewFromImage(reference).shape, dtype=bool)
    for frame_number, position, orientation, spacing, bitmap in frames:
        if segmentation_type == "LABELMAP":
            bitmap = bitmap == number
        elif frame_number != number:
            continue
        if not bitmap.any():
            continue
        row, col = orientation[:3], orientation[3:]
        direction = np.column_stack([row, col, np.cross(row, col)]).ravel()
        # PixelSpacing is (between rows, between columns): i runs along the row cosine.
        volume |= place_on_grid(bitmap[None], position, (spacing[1], spacing[0], 1.0), direction,
                                reference, f"{file}: segment {number}")
    return volume


def _last_line(err: Exception) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[-1] if lines else type(err).__name__
