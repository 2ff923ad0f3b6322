"""The fuzz oracle of Testing/test_fuzz.py and benchmarks/fuzz_readers.py: what a mutated file
*means*, decoded here independently of ITK, so that a read can be judged.

Every read of a mutated file is one of three outcomes (anything else fails):

* ``refused``: an InputError of one line;
* ``same``: voxels and geometry identical to the original's;
* ``meaning``: the read differs, and exactly as the mutated file says: its voxels are those this
  module decodes from the mutated bytes (raw or gzip payload, sizes, type, byte order, offset and
  NIfTI scaling from the mutated header; a DICOM slice through pydicom), and a changed geometry
  comes from a mutated geometry field, whose declared spacing the read must carry.

A mutation the decoder cannot interpret may only give ``refused`` or ``same``.
"""
from __future__ import annotations

import gzip
import math
import re
import zlib
from pathlib import Path

import numpy as np
import SimpleITK as sitk

_NRRD_DTYPES = {"short": "i2", "int16": "i2", "int16_t": "i2", "signed short": "i2", "ushort": "u2",
                "uint16": "u2", "uchar": "u1", "unsigned char": "u1", "uint8": "u1", "uint8_t": "u1",
                "float": "f4", "double": "f8", "int": "i4", "int32": "i4", "char": "i1", "int8": "i1"}
_META_DTYPES = {"MET_SHORT": "i2", "MET_USHORT": "u2", "MET_UCHAR": "u1", "MET_CHAR": "i1", "MET_FLOAT": "f4",
                "MET_DOUBLE": "f8", "MET_INT": "i4", "MET_UINT": "u4"}
_NIFTI_DTYPES = {2: "u1", 4: "i2", 8: "i4", 16: "f4", 64: "f8", 256: "i1", 512: "u2", 768: "u4"}
NRRD_GEOMETRY = ("space directions", "space origin", "spacings", "space", "thicknesses", "measurement frame")
META_GEOMETRY = ("Offset", "Origin", "Position", "ElementSpacing", "ElementSize", "TransformMatrix", "Rotation",
                 "Orientation", "CenterOfRotation", "AnatomicalOrientation")
# NIfTI-1 header bytes that hold geometry: pixdim, qform/sform codes, quaternion, offsets, srow.
NIFTI_GEOMETRY = [(76, 108), (252, 348)]


def geometry(image: sitk.Image) -> tuple:
    return image.GetOrigin(), image.GetSpacing(), image.GetDirection()


def decode(kind: str, data: bytes, folder: Path) -> np.ndarray | None:
    """The voxels (k, j, i) the mutated file ``data`` means, or None where that is not clear."""
    try:
        if kind == "nifti":
            return _nifti(data)
        if kind in ("nrrd", "seg"):
            return _nrrd(data, folder)
        if kind == "meta":
            return _meta(data)
    except (ValueError, KeyError, IndexError, TypeError, OSError, EOFError, zlib.error, OverflowError):
        return None
    return None


def _array(payload: bytes, dtype: str, sizes: list[int], offset: int = 0) -> np.ndarray | None:
    count = math.prod(sizes)
    if len(sizes) != 3 or any(s <= 0 for s in sizes) or offset < 0 or len(payload) < offset + count * np.dtype(dtype).itemsize:
        return None
    return np.frombuffer(payload, dtype, count, offset).reshape(sizes[::-1]).astype(np.float64)


def _nifti(data: bytes) -> np.ndarray | None:
    import struct

    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    if data[344:348] != b"n+1\x00":  # nifti1_io goes by the magic (it reads a sizeof_hdr of 349)
        return None
    dims = struct.unpack("<8h", data[40:56])
    datatype = struct.unpack("<h", data[70:72])[0]
    vox_offset = struct.unpack("<f", data[108:112])[0]
    slope, inter = struct.unpack("<2f", data[112:120])
    if not 3 <= dims[0] <= 7 or any(d != 1 for d in dims[4:dims[0] + 1]) or datatype not in _NIFTI_DTYPES:
        return None
    if not math.isfinite(vox_offset):  # nifti1_io truncates a fractional offset to an integer
        return None
    values = _array(data, "<" + _NIFTI_DTYPES[datatype], list(dims[1:4]), int(vox_offset))
    # The standard: a slope of 0 (or NaN, nibabel's "unset") means no scaling; any other slope
    # scales, an infinite one to infinite voxels. A 0 slope beside an intercept is ambiguous.
    if slope == 0 and inter != 0 and not math.isnan(inter):
        return None
    if values is not None and not math.isnan(slope) and slope != 0:
        with np.errstate(all="ignore"):
            values = values * slope + inter
    return values


def _text_fields(header: str, separator: str) -> dict[str, str] | None:
    fields: dict[str, str] = {}
    for line in header.split("\n"):
        if line.startswith("#") or ":=" in line:
            continue
        key, sep, value = line.partition(separator)
        if sep:
            key = key.strip()
            if key in fields:
                return None  # a duplicated field: which one a reader takes is not ours to guess
            fields[key] = value.strip()
    return fields


def _nrrd(data: bytes, folder: Path) -> np.ndarray | None:
    end = data.find(b"\n\n")
    if end < 0 or not data.startswith(b"NRRD"):
        return None
    fields = _text_fields(data[:end].decode("latin-1").split("\n", 1)[1], ": ")
    if fields is None:
        return None
    fields = {k.lower(): v for k, v in fields.items()}
    payload = data[end + 2:]
    if "data file" in fields:
        payload = (folder / fields["data file"]).read_bytes()
    encoding = fields["encoding"]
    if encoding in ("gzip", "gz"):
        payload = gzip.decompress(payload)
    elif encoding != "raw":
        return None
    order = ">" if fields.get("endian", "little") == "big" else "<"
    sizes = [int(v) for v in fields["sizes"].split()]
    return _array(payload, order + _NRRD_DTYPES[fields["type"]], sizes, int(fields.get("byte skip", 0)))


def _meta(data: bytes) -> np.ndarray | None:
    marker = re.search(rb"ElementDataFile\s*=\s*LOCAL\r?\n", data)
    if marker is None:
        return None
    fields = _text_fields(data[:marker.start()].decode("latin-1"), "=")
    if fields is None:
        return None
    payload = data[marker.end():]
    def true(key, default):
        value = fields.get(key, default).lower()
        if value not in ("true", "false", "1", "0"):
            raise ValueError(f"{key} = {value!r}")  # readers disagree: not a meaning we decode
        return value in ("true", "1")
    if true("CompressedData", "False"):
        payload = zlib.decompress(payload)
    msb = true("ElementByteOrderMSB", "False") if "ElementByteOrderMSB" in fields else \
        true("BinaryDataByteOrderMSB", "False")
    if not true("BinaryData", "True"):
        return None
    if int(fields.get("ElementNumberOfChannels", "1")) != 1 or int(fields.get("HeaderSize", "0")) != 0:
        return None
    sizes = [int(v) for v in fields["DimSize"].split()]
    return _array(payload, (">" if msb else "<") + _META_DTYPES[fields["ElementType"]], sizes)


def describe(mutated: bytes, source: bytes) -> str:
    """Where ``mutated`` differs from ``source`` (for a failing example's message)."""
    if mutated[:2] == b"\x1f\x8b" == source[:2]:
        try:
            mutated, source = gzip.decompress(mutated), gzip.decompress(source)
        except (OSError, EOFError, zlib.error):
            pass
    n = min(len(mutated), len(source))
    changed = np.flatnonzero(np.frombuffer(mutated[:n], np.uint8) != np.frombuffer(source[:n], np.uint8))
    return (f"{len(source)} -> {len(mutated)} bytes, changed at {changed[:8].tolist()}: "
            f"{source[changed[0]:changed[0] + 8] if changed.size else b''!r} -> "
            f"{mutated[changed[0]:changed[0] + 8] if changed.size else b''!r}")


def geometry_changed_by(kind: str, mutated: bytes, source: bytes) -> bool:
    """Did the mutation touch a field that sets the geometry?"""
    if kind == "nifti":
        if mutated[:2] == b"\x1f\x8b":
            mutated, source = gzip.decompress(mutated), gzip.decompress(source)
        if len(mutated) != len(source):
            return False
        changed = np.flatnonzero(np.frombuffer(mutated, np.uint8) != np.frombuffer(source, np.uint8))
        return any(lo <= c < hi for c in changed for lo, hi in NIFTI_GEOMETRY)
    keys = NRRD_GEOMETRY if kind == "nrrd" else META_GEOMETRY
    separator = ":" if kind == "nrrd" else "="
    end = b"\n\n" if kind == "nrrd" else b"ElementDataFile"
    def lines(data):  # a detached .nhdr may hold no blank line: then all of it is header
        head = data[:data.find(end) if end in data else len(data)].decode("latin-1").split("\n")
        return [line for line in head if line.partition(separator)[0].strip().lower() in [k.lower() for k in keys]]
    return lines(mutated) != lines(source)


def declared_spacing(kind: str, data: bytes) -> tuple[float, ...] | None:
    """The voxel spacing a (mutated) text header declares, where it says it plainly."""
    try:
        if kind == "nrrd":
            end = data.find(b"\n\n")
            fields = _text_fields(data[:end].decode("latin-1").split("\n", 1)[1], ": ") or {}
            fields = {k.lower(): v for k, v in fields.items()}
            if "space directions" in fields:
                vectors = re.findall(r"\(([^)]*)\)", fields["space directions"])
                return tuple(float(np.linalg.norm([float(v) for v in vec.split(",")])) for vec in vectors)
        if kind == "meta":
            fields = _text_fields(data[:data.find(b"ElementDataFile")].decode("latin-1"), "=") or {}
            if "ElementSpacing" in fields:
                return tuple(float(v) for v in fields["ElementSpacing"].split())
    except (ValueError, TypeError):
        return None
    return None


def judge(image: sitk.Image, original: sitk.Image, kind: str, mutated: bytes, source: bytes,
          folder: Path) -> str:
    """``same`` or ``meaning`` for a read ``image`` of the mutated file; AssertionError otherwise."""
    got = sitk.GetArrayFromImage(image)
    want = sitk.GetArrayFromImage(original)
    same_voxels = got.shape == want.shape and np.array_equal(got, want)
    same_geometry = geometry(image) == geometry(original)
    if same_voxels and same_geometry:
        return "same"
    expected = decode(kind, mutated, folder) if not same_voxels else want
    assert expected is not None, (f"{kind}: a mutation the oracle cannot read changed the voxels silently "
                                  f"({describe(mutated, source)}; read {got.shape}, was {want.shape})")
    assert np.isfinite(expected).all(), f"{kind}: the file holds non-finite voxels, read as finite ones"
    assert got.shape == expected.shape and np.allclose(got, expected.astype(got.dtype), rtol=1e-6, atol=1e-3), \
        f"{kind}: the voxels read are not those the mutated file holds ({describe(mutated, source)})"
    if not same_geometry:
        assert geometry_changed_by(kind, mutated, source), \
            f"{kind}: the geometry changed ({geometry(original)} -> {geometry(image)}) but no geometry field did"
        spacing = declared_spacing(kind, mutated)
        if spacing is not None and len(spacing) == 3:
            assert np.allclose(image.GetSpacing(), spacing), (f"{kind}: the spacing read, {image.GetSpacing()}, is not "
                                                              f"the one the header declares, {spacing} "
                                                              f"({describe(mutated, source)})")
    return "meaning"


def _origin_shift(mutated: bytes, original: sitk.Image) -> tuple[int, int, int] | None:
    """The whole-voxel (k, j, i) shift a mutated NRRD ``space origin`` declares, else None."""
    end = mutated.find(b"\n\n")
    found = re.search(r"\nspace origin: *\(([^)]*)\)", mutated[:end].decode("latin-1"))
    if found is None:
        return None
    try:
        origin = np.array([float(v) for v in found.group(1).split(",")])
    except ValueError:
        return None
    steps = (origin - np.array(original.GetOrigin())) / np.array(original.GetSpacing())
    if len(steps) != 3 or not np.allclose(steps, np.round(steps)) or not steps.any():
        return None
    return tuple(int(v) for v in np.round(steps)[::-1])


def judge_mask(mask: sitk.Image, original: sitk.Image, kind: str, mutated: bytes, folder: Path,
               label: int = 1) -> str:
    """``same``, or ``meaning`` when the tumour read is the mutated label image's ``label`` voxels
    (the only non-zero value of a plain label image)."""
    got = sitk.GetArrayFromImage(mask) > 0
    if np.array_equal(got, sitk.GetArrayViewFromImage(original) > 0):
        return "same"
    values = decode(kind, mutated, folder)
    assert values is not None, f"{kind} mask: a mutation the oracle cannot read changed the tumour silently"
    shift = _origin_shift(mutated, original) if kind in ("nrrd", "seg") else None
    if shift is not None:  # a mutated space origin moves the region by whole voxels on the CT's grid
        moved = np.zeros_like(values)
        src = tuple(slice(max(-d, 0), values.shape[a] - max(d, 0)) for a, d in enumerate(shift))
        dst = tuple(slice(max(d, 0), values.shape[a] - max(-d, 0)) for a, d in enumerate(shift))
        moved[dst] = values[src]
        values = moved
    assert values.shape == got.shape and np.array_equal(got, values == label if kind == "seg" else values != 0), \
        f"{kind} mask: the tumour read is not the one the mutated file holds"
    return "meaning"


def judge_dicom(image: sitk.Image, original: sitk.Image, folder: Path) -> str:
    """``same``, or ``meaning`` when the series read is what pydicom decodes of the mutated slices."""
    import pydicom

    got = sitk.GetArrayFromImage(image)
    if got.shape == sitk.GetArrayViewFromImage(original).shape and np.array_equal(
            got, sitk.GetArrayViewFromImage(original)) and geometry(image) == geometry(original):
        return "same"
    slices = []
    for file in sorted(folder.iterdir()):
        try:
            ds = pydicom.dcmread(str(file))
            # The stored pixels themselves (uncompressed 16-bit), not pydicom's pixel handlers,
            # which want every image attribute intact.
            pixels = np.frombuffer(ds.PixelData, "<i2" if ds.get("PixelRepresentation", 0) else "<u2",
                                   int(ds.Rows) * int(ds.Columns)).reshape(int(ds.Rows), int(ds.Columns))
            # Only BitsStored bits are the pixel (the standard; GDCM masks the others).
            bits = int(ds.get("BitsStored", 16))
            pixels = pixels.astype(np.int64) & ((1 << bits) - 1)
            if ds.get("PixelRepresentation", 0):
                pixels = np.where(pixels >= 1 << (bits - 1), pixels - (1 << bits), pixels)
            slices.append((float(ds.ImagePositionPatient[2]), pixels * float(ds.get("RescaleSlope", 1))
                           + float(ds.get("RescaleIntercept", 0))))
        except Exception as err:  # noqa: BLE001 - pydicom cannot decode it: the read is unexplained
            raise AssertionError(f"dicom: {file.name} read differently, and pydicom cannot decode it ({err})")
    expected = np.stack([s for _, s in sorted(slices, key=lambda s: s[0])])
    assert got.shape == expected.shape and np.allclose(got, expected), (
        "dicom: the series read is not what its (mutated) slices hold ("
        + (f"{int((~np.isclose(got, expected)).sum())} voxels differ, e.g. read {got[~np.isclose(got, expected)][:3]} "
           f"for {expected[~np.isclose(got, expected)][:3]})" if got.shape == expected.shape else
           f"read {got.shape}, decoded {expected.shape})"))
    if geometry(image) != geometry(original):
        try:
            declared = [float(v) for v in ds.PixelSpacing][::-1]
        except (ValueError, TypeError, AttributeError) as err:
            raise AssertionError(f"dicom: the geometry changed, and the PixelSpacing cannot be read ({err})")
        assert np.allclose(image.GetSpacing()[:2], declared), \
            "dicom: the spacing read is not the PixelSpacing the slices declare"
    return "meaning"
