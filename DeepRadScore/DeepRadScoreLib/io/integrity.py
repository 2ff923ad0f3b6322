"""Is all the voxel data a header promises really in the file? SimpleITK does not check.

ITK's readers fill a short file's missing voxels with whatever the buffer held (a ``.nii.gz``
cut to 20 kB read as "valid" with a tumour mean of 9 HU instead of 40), so before SimpleITK reads
a file, :func:`check_image_data` parses the header itself, computes the bytes of voxel data it
promises (the product of the sizes times the bytes per voxel) and compares them with what the file
(or its detached data file) holds. Compressed data is streamed through zlib/bz2 once, discarding
the output: that finds a stream cut before its end marker and, for gzip, a CRC mismatch (zlib
checks the trailer), at the cost of one decompression (benchmarks/fuzz_readers.py times it).

Formats: NIfTI-1/2 (``.nii``, ``.nii.gz``, ``.hdr``/``.img`` pairs), NRRD (``.nrrd``, ``.nhdr``,
``.seg.nrrd``; raw, gzip, bzip2, ascii, hex; attached or detached data) and MetaImage (``.mha``,
``.mhd``; raw or zlib-compressed). A header this module does not understand (a rare field, a file
list) is left to SimpleITK: the check never refuses a file it cannot reason about, it only
refuses one it can prove short. Other formats are SimpleITK's alone.
"""
from __future__ import annotations

import bz2
import logging
import math
import re
import struct
import zlib
from pathlib import Path

from DeepRadScoreLib.errors import InputError
from DeepRadScoreLib.io.plausibility import FiniteScan

logger = logging.getLogger(__name__)

# Read and decompress in pieces of this size: constant memory whatever the file (or a zip bomb).
_CHUNK = 1 << 20
# A text header (NRRD, MetaImage) longer than this is not one we parse.
_MAX_HEADER = 1 << 20
# zlib's documented limit of deflate's expansion is 1032:1; a little slack for the framing.
MAX_DEFLATE_RATIO = 1100
# The most dimensions a MetaImage header may declare (MetaIO's own limit is 10).
MAX_META_DIMS = 10
# Bytes per voxel of each NIfTI datatype code: the reader sizes the data by datatype, not bitpix.
_NIFTI_SIZE = {2: 1, 4: 2, 8: 4, 16: 4, 32: 8, 64: 8, 128: 3, 256: 1, 512: 2, 768: 4, 1024: 8, 1280: 8,
               1536: 16, 1792: 16, 2048: 32, 2304: 4}

# The float datatypes whose voxels may be NaN/inf (float128 and complex are not read as CTs).
_NIFTI_FLOAT = {16: "f4", 64: "f8"}

_NRRD_TYPES = {1: ("signed char", "int8", "int8_t", "uchar", "unsigned char", "uint8", "uint8_t"),
               2: ("short", "short int", "signed short", "signed short int", "int16", "int16_t", "ushort",
                   "unsigned short", "unsigned short int", "uint16", "uint16_t"),
               4: ("int", "signed int", "int32", "int32_t", "uint", "unsigned int", "uint32", "uint32_t",
                   "float"),
               8: ("longlong", "long long", "long long int", "signed long long", "signed long long int",
                   "int64", "int64_t", "ulonglong", "unsigned long long", "unsigned long long int",
                   "uint64", "uint64_t", "double")}
_NRRD_SIZE = {name: size for size, names in _NRRD_TYPES.items() for name in names}
_NRRD_CODECS = {"raw": None, "gzip": "zlib", "gz": "zlib", "bzip2": "bz2", "bz2": "bz2",
                "ascii": "ascii", "text": "ascii", "txt": "ascii", "hex": "hex"}
# MetaIO's sizes (metaTypes.h): its MET_LONG is 4 bytes; ITK writes 64-bit integers as MET_LONG_LONG.
_META_SIZE = {"MET_CHAR": 1, "MET_UCHAR": 1, "MET_SHORT": 2, "MET_USHORT": 2, "MET_INT": 4, "MET_UINT": 4,
              "MET_LONG": 4, "MET_ULONG": 4, "MET_LONG_LONG": 8, "MET_ULONG_LONG": 8, "MET_FLOAT": 4,
              "MET_DOUBLE": 8}


class _Unknown(Exception):
    """The header is not one we can reason about: leave the file to SimpleITK."""


def check_image_data(path: str | Path, stream: bool = True) -> None:
    """Raise :class:`InputError` when ``path`` holds less voxel data than its header promises.

    :param path: an image or mask file about to be read with SimpleITK.
    :param stream: also decompress compressed data to check its end and checksum; without it, only
        the header and the sizes (milliseconds), which is what must pass before SimpleITK may
        allocate what the header asks for: a mangled size field then never reaches ITK.
    :raises InputError: ``FILE: truncated image data (expected N bytes, found M)``, or a cut or
        corrupt compressed stream; nothing for a complete file or a format not checked here.
    """
    path = Path(path)
    name = path.name.lower()
    try:
        if name.endswith((".nii", ".nii.gz", ".hdr", ".hdr.gz", ".img", ".img.gz")):
            _check_nifti(path, stream)
        elif name.endswith((".nrrd", ".nhdr")):
            _check_nrrd(path, stream)
        elif name.endswith((".mha", ".mhd")):
            _check_meta(path, stream)
    except (_Unknown, ValueError) as why:  # ValueError: e.g. a NUL byte in a data file's name
        logger.debug("%s: size check skipped (%s)", path, why)
    except OSError as err:
        raise InputError(f"{path}: cannot read ({err.strerror or err})") from None


def _truncated(path: Path, expected: int, found: int) -> InputError:
    return InputError(f"{path}: truncated image data (expected {expected} bytes, found {max(found, 0)})")


def _scan(path: Path, offset: int, codec: str | None, sink: FiniteScan | None = None) -> int:
    """The payload's size from ``offset`` on, decompressed; :class:`_Cut` if the stream stops early.
    ``sink`` is fed every piece of the payload (raw data is then read once, too)."""
    if codec is None:
        if sink is not None:
            with open(path, "rb") as f:
                f.seek(offset)
                while data := f.read(_CHUNK):
                    sink.feed(data)
        return max(path.stat().st_size - offset, 0)
    total = 0
    decoder = _decoder(codec)
    with open(path, "rb") as f:
        f.seek(offset)
        while data := f.read(_CHUNK):
            while True:
                try:
                    piece = decoder.decompress(data, _CHUNK)
                except (zlib.error, OSError, EOFError, ValueError) as err:
                    raise InputError(f"{path}: corrupt compressed image data ({err})") from None
                total += len(piece)
                if sink is not None:
                    sink.feed(piece)
                if decoder.eof:
                    rest = decoder.unused_data
                    # A further gzip member continues the data; anything else after the end is padding.
                    if codec == "zlib" and rest[:2] == b"\x1f\x8b":
                        decoder, data = _decoder(codec), rest
                        continue
                    return total
                if codec == "zlib":
                    data = decoder.unconsumed_tail  # input left because the output reached _CHUNK
                    if not data:
                        break
                else:
                    if decoder.needs_input:
                        break
                    data = b""  # bz2 keeps the input it has not decoded yet
    raise _Cut(total)


class _Cut(Exception):
    """The compressed stream stops before its end marker (and checksum): the file was cut."""

    def __init__(self, total: int):
        super().__init__("cut")
        self.total = total


def _decoder(codec: str):
    # 32 + MAX_WBITS: zlib or gzip framing, detected from the header; the trailer's CRC is checked.
    return zlib.decompressobj(32 + zlib.MAX_WBITS) if codec == "zlib" else bz2.BZ2Decompressor()


def _payload(path: Path, offset: int, codec: str | None, expected: int, skip: int = 0,
             stream: bool = True, sink: FiniteScan | None = None) -> None:
    """Check that ``path`` holds ``expected`` payload bytes after ``offset`` (+ ``skip`` of payload)."""
    if codec == "zlib":
        # Deflate expands at most ~1032 times: a header promising more cannot be satisfied.
        bound = MAX_DEFLATE_RATIO * max(path.stat().st_size - offset, 0)
        if expected + skip > bound:
            raise InputError(f"{path}: truncated image data (expected {expected} bytes, found at most "
                             f"{max(bound - skip, 0)})")
    if not stream:
        return
    try:
        total = _scan(path, offset, codec, sink)
    except _Cut as cut:
        if cut.total - skip < expected:
            raise _truncated(path, expected, cut.total - skip) from None
        raise InputError(f"{path}: truncated image data (the compressed stream ends before its end "
                         "marker and checksum)") from None
    if total - skip < expected:
        raise _truncated(path, expected, total - skip)
    if sink is not None:
        sink.finish()


# --- NIfTI ----------------------------------------------------------------------------------

def _check_nifti(path: Path, stream: bool) -> None:
    header_file = path
    if path.name.lower().endswith((".img", ".img.gz")):
        header_file = _sibling(path, ".img", ".hdr")
        if header_file is None:
            raise _Unknown("no .hdr beside the .img")
    ndim, dims, datatype, vox_offset, single, endian, slope, inter = _nifti_head(header_file)
    _check_nifti_scaling(header_file, slope, inter)
    if 1 <= ndim <= 7 and any(d <= 0 for d in dims[1:ndim + 1]):
        # nifti1_io reads a size of 0 or less as 1: a slab of the data, silently (fuzz oracle).
        raise InputError(f"{header_file}: malformed NIfTI header (dim = {dims[1:ndim + 1]}: a size below 1)")
    if not 1 <= ndim <= 7 or any(d <= 0 for d in dims[1:ndim + 1]) or datatype not in _NIFTI_SIZE:
        raise _Unknown("dimensions or datatype out of range")
    expected = math.prod(dims[1:ndim + 1]) * _NIFTI_SIZE[datatype]
    if single:
        data_file, offset = header_file, vox_offset
    else:
        data_file = _sibling(header_file, ".hdr", ".img")
        if data_file is None:
            raise InputError(f"{header_file}: its data file (.img) is missing")
        offset = vox_offset
    data_codec = "zlib" if data_file.name.lower().endswith(".gz") else None
    # ITK's NIfTI reader turns NaN and infinite voxels into 0: float data is checked here, as it
    # streams past (the voxels the file holds), and the count stops at the data's end.
    sink = None
    if stream and datatype in _NIFTI_FLOAT:
        sink = FiniteScan(data_file, endian + _NIFTI_FLOAT[datatype], dims[1:ndim + 1],
                          skip=offset if data_codec else 0, count=math.prod(dims[1:ndim + 1]))
    if data_codec is None:
        found = data_file.stat().st_size - offset
        if found < expected:
            raise _truncated(data_file, expected, found)
        if sink is not None:
            _scan(data_file, offset, None, sink)
            sink.finish()
        return
    _payload(data_file, 0, data_codec, expected, skip=offset, stream=stream, sink=sink)


def _check_nifti_scaling(path: Path, slope: float, inter: float) -> None:
    """Refuse a ``scl_slope``/``scl_inter`` pair whose meaning readers disagree on.

    A NaN or 0 slope means "no scaling" (nibabel writes NaN so; nifti1_io reads it so). An infinite
    slope, or an intercept that is not finite beside a valid slope, has no meaning, and ITK ignores
    it silently; ITK also adds the intercept when the slope is 0, which the standard says to ignore.
    """
    if math.isinf(slope):
        raise InputError(f"{path}: the NIfTI scl_slope is {slope} (not a usable scaling of the voxel values)")
    if math.isnan(slope) or slope == 0:
        if math.isfinite(inter) and inter != 0 and slope == 0:
            raise InputError(f"{path}: the NIfTI scl_slope is 0 (no scaling) but scl_inter is {inter:g}; "
                             "readers disagree on such a file")
        return
    if not math.isfinite(inter):
        raise InputError(f"{path}: the NIfTI scl_slope is {slope:g} but scl_inter is {inter} "
                         "(not a usable scaling of the voxel values)")


def _nifti_head(path: Path) -> tuple[int, list[int], int, int, bool, str, float, float]:
    """(ndim, dim[0..7], datatype, vox_offset, single file, byte order, scl_slope, scl_inter) from
    a NIfTI-1/2 or Analyze header (an Analyze header has no scaling: 0, 0)."""
    codec = "zlib" if path.name.lower().endswith(".gz") else None
    if codec is None:
        with open(path, "rb") as f:
            raw = f.read(540)
    else:
        # The whole stream is checked later, when it is the data file too; here only the header.
        decoder = zlib.decompressobj(32 + zlib.MAX_WBITS)
        with open(path, "rb") as f:
            try:
                raw = decoder.decompress(f.read(65536), 540)
            except zlib.error as err:
                raise _Unknown(f"header not decompressible ({err})") from None
    if len(raw) < 348:
        raise _Unknown("header shorter than 348 bytes")
    for endian in "<>":
        sizeof_hdr = struct.unpack(endian + "i", raw[:4])[0]
        # nifti1_io goes by the magic and reads a damaged sizeof_hdr (349) as NIfTI-1: so do we.
        nifti1 = raw[344:348] in (b"n+1\x00", b"ni1\x00") and 1 <= struct.unpack(endian + "h", raw[40:42])[0] <= 7
        if sizeof_hdr == 348 or (nifti1 and sizeof_hdr != 540):
            sizeof_hdr = 348
            dims = list(struct.unpack(endian + "8h", raw[40:56]))
            datatype = struct.unpack(endian + "h", raw[70:72])[0]
            vox_offset = struct.unpack(endian + "f", raw[108:112])[0]
            magic = raw[344:348]
            single = magic == b"n+1\x00"
            slope, inter = struct.unpack(endian + "2f", raw[112:120]) if magic in (b"n+1\x00", b"ni1\x00") \
                else (0.0, 0.0)
            break
        if sizeof_hdr == 540 and len(raw) >= 540:
            magic = raw[4:8]
            dims = list(struct.unpack(endian + "8q", raw[16:80]))
            datatype = struct.unpack(endian + "h", raw[12:14])[0]
            vox_offset = struct.unpack(endian + "q", raw[168:176])[0]
            single = magic == b"n+2\x00"
            slope, inter = struct.unpack(endian + "2d", raw[176:192])
            break
    else:
        raise _Unknown("not a NIfTI/Analyze header")
    # nifti1_io reads such an offset as some other one: the voxels come from elsewhere, silently
    # (found by the fuzz oracle).
    if not math.isfinite(vox_offset) or vox_offset < 0 or (single and vox_offset < sizeof_hdr):
        raise InputError(f"{path}: malformed NIfTI header (vox_offset = {vox_offset:g}"
                         + (", inside the header)" if math.isfinite(vox_offset) and vox_offset >= 0 else ")"))
    return dims[0], dims, datatype, int(vox_offset), single, endian, slope, inter


def _sibling(path: Path, old: str, new: str) -> Path | None:
    """``x.hdr`` <-> ``x.img`` (keeping ``.gz`` and the case of the suffix), if it exists."""
    name = path.name
    lower = name.lower()
    gz = lower.endswith(".gz")
    base = name[:-3] if gz else name
    stem = base[:-len(old)]
    for suffix in (new, new.upper()):
        for tail in ((".gz", "") if gz else ("", ".gz")):
            candidate = path.with_name(stem + suffix + tail)
            if candidate.is_file():
                return candidate
    return None


# --- NRRD -----------------------------------------------------------------------------------

def _text_header(path: Path, first_line: bytes) -> tuple[str, int]:
    """The start of a text-header file (as text) and how many bytes of it were read."""
    with open(path, "rb") as f:
        raw = f.read(_MAX_HEADER)
    if not raw.startswith(first_line):
        raise _Unknown("no magic line")
    return raw.decode("latin-1"), len(raw)


def _check_nrrd(path: Path, stream: bool) -> None:
    text, read = _text_header(path, b"NRRD")
    end = re.search(r"\r?\n\r?\n", text)
    header = text[:end.start()] if end else text
    offset = end.end() if end else None
    fields: dict[str, str] = {}
    for line in header.splitlines()[1:]:
        if line.startswith("#") or (":=" in line and (": " not in line or line.index(":=") < line.index(": "))):
            continue  # a comment or a key:=value pair, not a field
        key, sep, value = line.partition(": ")
        if sep:
            fields[key.strip().lower()] = value.strip()
    try:
        sizes = [int(v) for v in fields["sizes"].split()]
        size = _NRRD_SIZE[fields.get("type", "").lower()]
        codec = _NRRD_CODECS[fields.get("encoding", "").lower()]
        line_skip = int(fields.get("line skip", fields.get("lineskip", "0")))
        byte_skip = int(fields.get("byte skip", fields.get("byteskip", "0")))
    except (KeyError, ValueError):
        raise _Unknown("sizes/type/encoding not understood") from None
    if not sizes or any(s <= 0 for s in sizes) or line_skip != 0 or byte_skip < -1:
        raise _Unknown("sizes or skips out of range")
    count = math.prod(sizes)
    expected = count * size
    detached = fields.get("data file", fields.get("datafile"))
    if detached is not None:
        if detached.startswith("LIST") or "%" in detached or " " in detached.strip():
            raise _Unknown("a list of data files")
        data_file, offset = (path.parent / detached), 0
        if not data_file.is_file():
            raise InputError(f"{path}: its data file {detached} is missing")
    else:
        if offset is None:
            if read >= _MAX_HEADER:
                raise _Unknown("header too long")
            raise _truncated(path, expected, 0)
        data_file = path
    if codec in ("ascii", "hex"):
        if stream:
            _check_text_data(data_file, offset, codec, count, expected)
        return
    if byte_skip == -1:
        if codec is not None:
            raise _Unknown("byte skip -1 with compression")
        found = data_file.stat().st_size - offset
        if found < expected:
            raise _truncated(data_file, expected, found)
        return
    if codec is None:
        found = data_file.stat().st_size - offset - byte_skip
        if found < expected:
            raise _truncated(data_file, expected, found)
        return
    _payload(data_file, offset, codec, expected, skip=byte_skip, stream=stream)


def _check_text_data(path: Path, offset: int, codec: str, count: int, expected: int) -> None:
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read()
    if codec == "ascii":
        found = len(data.split())
        if found < count:
            raise InputError(f"{path}: truncated image data (expected {count} values, found {found})")
    else:
        found = len(re.findall(rb"[0-9a-fA-F]", data)) // 2
        if found < expected:
            raise _truncated(path, expected, found)


# --- MetaImage ------------------------------------------------------------------------------

def _check_meta(path: Path, stream: bool) -> None:
    with open(path, "rb") as f:
        raw = f.read(_MAX_HEADER)
    fields: dict[str, str] = {}
    offset = None
    position = 0
    for line in raw.split(b"\n"):
        position += len(line) + 1
        key, sep, value = line.decode("latin-1").partition("=")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        fields[key] = value
        if key == "ElementDataFile":
            offset = position
            break
    _check_meta_ndims(path, raw)
    if offset is not None:
        # MetaIO stops reading a line at a NUL, and reads a key up to the next '=' even across a
        # newline: either way the next field is lost (an ElementSpacing read as 1 1 1, found by
        # the fuzz oracle).
        if b"\x00" in raw[:offset]:
            raise InputError(f"{path}: malformed MetaImage header (a NUL byte in the header)")
        for number, line in enumerate(raw[:offset].split(b"\n"), start=1):
            if line.strip() and b"=" not in line:
                raise InputError(f"{path}: malformed MetaImage header (line {number} is not KEY = VALUE)")
    if offset is None:
        raise _Unknown("no ElementDataFile")
    try:
        dims = [int(v) for v in fields["DimSize"].split()]
        size = _META_SIZE[fields["ElementType"]]
        channels = int(fields.get("ElementNumberOfChannels", "1"))
        header_size = int(fields.get("HeaderSize", "0"))
    except (KeyError, ValueError):
        raise _Unknown("DimSize/ElementType not understood") from None
    if not dims or any(d <= 0 for d in dims) or channels <= 0 or header_size < -1:
        raise _Unknown("sizes out of range")
    for key in ("BinaryData", "CompressedData", "ElementByteOrderMSB", "BinaryDataByteOrderMSB"):
        # MetaIO's readers disagree on anything else ("Tsue" was binary to one, text to another).
        if key in fields and fields[key].lower() not in ("true", "false", "1", "0"):
            raise InputError(f"{path}: malformed MetaImage header ({key} = {fields[key][:40]!r})")
    if fields.get("BinaryData", "True").lower() not in ("true", "1"):
        raise _Unknown("ASCII data")
    compressed = fields.get("CompressedData", "False").lower() in ("true", "1")
    expected = math.prod(dims) * channels * size
    target = fields["ElementDataFile"]
    if not target.isprintable() or (target.upper().startswith("LOCAL") and target.upper() != "LOCAL"):
        # ITK takes "LOCAL<junk>" for LOCAL and then reads past its buffers (a crash, found by
        # benchmarks/fuzz_readers.py): refuse a data-file name that cannot be one.
        raise InputError(f"{path}: malformed MetaImage header (ElementDataFile = {target[:40]!r})")
    if target.upper() == "LOCAL":
        data_file = path
    else:
        if target.upper().startswith("LIST") or "%" in target or " " in target:
            raise _Unknown("a list of data files")
        data_file, offset = path.parent / target, 0
        if not data_file.is_file():
            raise InputError(f"{path}: its data file {target} is missing")
    if compressed:
        declared = fields.get("CompressedDataSize")
        if declared is None:
            # Without it ITK's MetaIO prints "Uncompress failed" and returns a buffer of junk and
            # zeros as the image (found by the fuzz oracle of Testing/test_fuzz.py).
            raise InputError(f"{path}: malformed MetaImage header (compressed data without CompressedDataSize)")
        if declared is not None:
            # ITK reads exactly this many compressed bytes; fewer in the file is a cut file, and
            # ITK's reader misbehaves on it (fuzzing found heap corruption near such files).
            available = data_file.stat().st_size - offset
            if not re.fullmatch(r"\+?\d+", declared):
                raise InputError(f"{path}: malformed MetaImage header (CompressedDataSize = {declared[:40]!r})")
            if int(declared) > available:
                raise InputError(f"{data_file}: truncated image data (expected {int(declared)} compressed "
                                 f"bytes, found {max(available, 0)})")
            if int(declared) < available:
                # ITK decompresses only that many bytes, and returns a cut stream's junk as voxels
                # (a CompressedDataSize of 0, found by the fuzz oracle).
                raise InputError(f"{path}: malformed MetaImage header (CompressedDataSize = {int(declared)}, "
                                 f"but {available} bytes of compressed data follow)")
        _payload(data_file, offset, "zlib", expected, stream=stream)
        return
    if header_size == -1:
        found = data_file.stat().st_size - offset
    else:
        found = data_file.stat().st_size - offset - header_size
    if found < expected:
        raise _truncated(data_file, expected, found)


def _check_meta_ndims(path: Path, raw: bytes) -> None:
    """ITK's MetaImage reader crashes the process (a segfault, found by benchmarks/fuzz_readers.py)
    on an NDims that is negative or large (``NDims = -1``, ``99``, ``1e9``): accept a plain integer
    of 1..MAX_META_DIMS only, on every NDims line, before ITK sees the file."""
    for line in raw.split(b"\n"):
        key, sep, value = line.decode("latin-1").partition("=")
        if sep and key.strip() == "NDims":
            if not re.fullmatch(r"\s*\+?0*[1-9]\d*\s*", value) or int(value) > MAX_META_DIMS:
                raise InputError(f"{path}: malformed MetaImage header (NDims = {value.strip()[:40]!r}; "
                                 f"expected 1 to {MAX_META_DIMS})")
        if sep and key.strip() == "ElementDataFile":
            return
