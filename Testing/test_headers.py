"""Header fields that readers took silently, found by the fuzz oracle (Testing/fuzz_oracle.py,
benchmarks/fuzz_readers.py): each is refused with one line before ITK reads the file."""
from __future__ import annotations

import re

import pytest
import SimpleITK as sitk

from conftest import make_case
from DeepRadScoreLib.errors import InputError
from DeepRadScoreLib.io import images

TRUNCATED = r"truncated image data \(expected (\d+) bytes, found (\d+)\)"


@pytest.fixture(scope="module")
def small_case():
    return make_case(shape=(12, 24, 24), radius_mm=5.0)


def test_a_compressed_metaimage_without_its_compressed_size_is_refused(tmp_path, small_case):
    # Found by the fuzz oracle: ITK printed "Uncompress failed" and returned junk and zeros as the
    # image, with no error.
    path = tmp_path / "ct.mha"
    sitk.WriteImage(small_case[0], str(path), useCompression=True)
    data = path.read_bytes()
    path.write_bytes(re.sub(rb"CompressedDataSize = \d+\n", b"", data, count=1))
    with pytest.raises(InputError, match=r"ct\.mha: malformed MetaImage header \(compressed data without "
                                         r"CompressedDataSize\)"):
        images.read_image(path)


def test_a_nifti_with_a_damaged_sizeof_hdr_is_still_size_checked(tmp_path, small_case):
    # Found by the fuzz oracle: ITK reads a sizeof_hdr of 349 as NIfTI-1 (by its magic), but the
    # size check skipped such a header, so a dimension raised to 17 read past the data, silently.
    import struct

    path = tmp_path / "ct.nii"
    sitk.WriteImage(sitk.Cast(small_case[0], sitk.sitkInt16), str(path))
    data = bytearray(path.read_bytes())
    data[0:4] = struct.pack("<i", 349)
    data[42:44] = struct.pack("<h", struct.unpack("<h", data[42:44])[0] + 1)
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match=TRUNCATED):
        images.read_image(path)


def test_a_nifti_dimension_of_zero_is_refused_not_read_as_one(tmp_path, small_case):
    # Found by the fuzz oracle: ITK read dim[2] = 0 as 1 and returned one row of the image.
    import struct

    path = tmp_path / "ct.nii"
    sitk.WriteImage(sitk.Cast(small_case[0], sitk.sitkInt16), str(path))
    data = bytearray(path.read_bytes())
    data[44:46] = struct.pack("<h", 0)
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"ct\.nii: malformed NIfTI header \(dim = \[24, 0, 12\]: a size below 1\)"):
        images.read_image(path)


@pytest.mark.parametrize("offset", [0.0, -2.0 ** 31, float("nan")])
def test_a_nifti_vox_offset_that_cannot_be_is_refused(tmp_path, small_case, offset):
    # Found by the fuzz oracle: ITK read the voxels from some other offset, silently.
    import struct

    path = tmp_path / "ct.nii"
    sitk.WriteImage(sitk.Cast(small_case[0], sitk.sitkInt16), str(path))
    data = bytearray(path.read_bytes())
    data[108:112] = struct.pack("<f", offset)
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"ct\.nii: malformed NIfTI header \(vox_offset = "):
        images.read_image(path)


def test_a_metaimage_header_with_a_nul_byte_is_refused(tmp_path, small_case):
    # Found by the fuzz oracle: MetaIO skipped the rest of the line and the next, reading the
    # spacing 1 1 2 as 1 1 1.
    path = tmp_path / "ct.mha"
    sitk.WriteImage(small_case[0], str(path))
    data = path.read_bytes()
    assert b"AnatomicalOrientation = " in data
    path.write_bytes(data.replace(b"AnatomicalOrientation = ", b"AnatomicalOrientat\0\0\0\0\0 ", 1))
    with pytest.raises(InputError, match=r"ct\.mha: malformed MetaImage header \(a NUL byte in the header\)"):
        images.read_image(path)


def test_a_metaimage_header_line_without_equals_is_refused(tmp_path, small_case):
    # MetaIO read such a line's key on into the next line, losing the ElementSpacing after it.
    path = tmp_path / "ct.mha"
    sitk.WriteImage(small_case[0], str(path))
    data = path.read_bytes()
    path.write_bytes(data.replace(b"AnatomicalOrientation = ", b"AnatomicalOrientat\1\1\1\1\1 ", 1))
    with pytest.raises(InputError, match=r"ct\.mha: malformed MetaImage header \(line \d+ is not KEY = VALUE\)"):
        images.read_image(path)


@pytest.mark.parametrize("declared", [b"0", b"100"])
def test_a_metaimage_compressed_size_below_its_data_is_refused(tmp_path, small_case, declared):
    # Found by the fuzz oracle: ITK decompressed only that many bytes and returned junk voxels.
    path = tmp_path / "ct.mha"
    sitk.WriteImage(small_case[0], str(path), useCompression=True)
    path.write_bytes(re.sub(rb"CompressedDataSize = \d+", b"CompressedDataSize = " + declared, path.read_bytes()))
    with pytest.raises(InputError, match=rf"ct\.mha: malformed MetaImage header \(CompressedDataSize = {int(declared)}, "):
        images.read_image(path)


def test_a_metaimage_boolean_that_is_neither_is_refused(tmp_path, small_case):
    path = tmp_path / "ct.mha"
    sitk.WriteImage(small_case[0], str(path), useCompression=True)
    path.write_bytes(path.read_bytes().replace(b"BinaryData = True", b"BinaryData = Tsue", 1))
    with pytest.raises(InputError, match=r"ct\.mha: malformed MetaImage header \(BinaryData = 'Tsue'\)"):
        images.read_image(path)
