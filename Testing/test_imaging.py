"""Reading CT + tumour mask: NIfTI/NRRD/MHA, DICOM series, RTSTRUCT, DICOM SEG, Slicer .seg.nrrd.

The real IBSI CT phantom comes twice, as NIfTI (CT + GTV mask) and as DICOM (CT series + RTSTRUCT
GTV contours); the DICOM paths must give the NIfTI voxels. Synthetic RTSTRUCT/SEG/seg.nrrd files
are written here with pydicom, highdicom and Slicer's own segmentation writer (slicer-core).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from conftest import PHANTOM, make_case
from DeepRadScoreLib.io import images as imaging
from DeepRadScoreLib.io.dicom import FRAME_OF_REFERENCE_KEY, RTSTRUCT_SOP_CLASS, rasterise_contours
from DeepRadScoreLib.errors import InputError

DICOM_CT = PHANTOM / "dicom" / "image"
DICOM_RTSTRUCT = PHANTOM / "dicom" / "mask"
NIFTI_CT = PHANTOM / "nifti" / "image.nii.gz"
NIFTI_MASK = PHANTOM / "nifti" / "mask.nii.gz"


def array(image: sitk.Image) -> np.ndarray:
    return sitk.GetArrayFromImage(image)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0, b > 0
    return 2.0 * (a & b).sum() / (a.sum() + b.sum())


@pytest.fixture(scope="module")
def dicom_ct() -> sitk.Image:
    return imaging.read_image(DICOM_CT)


@pytest.fixture(scope="module")
def nifti_mask() -> np.ndarray:
    return array(sitk.ReadImage(str(NIFTI_MASK))) > 0


# ------------------------------------------------------------------------ label images

@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd", ".mha"])
def test_label_image_formats_round_trip(tmp_path, suffix):
    image, mask = make_case(direction=(0, 1, 0, -1, 0, 0, 0, 0, 1))
    sitk.WriteImage(image, str(tmp_path / f"ct{suffix}"))
    sitk.WriteImage(mask * 3, str(tmp_path / f"mask{suffix}"))  # label value 3, not 1
    case = imaging.load_case(tmp_path / f"ct{suffix}", tmp_path / f"mask{suffix}")
    assert case.image.GetPixelID() == sitk.sitkFloat32 and case.mask.GetPixelID() == sitk.sitkUInt8
    np.testing.assert_array_equal(array(case.mask), array(mask))
    np.testing.assert_allclose(array(case.image), array(image))
    np.testing.assert_allclose(case.image.GetDirection(), (0, 1, 0, -1, 0, 0, 0, 0, 1), atol=1e-6)
    imaging.check_same_grid(case.image, case.mask, "mask")


def test_multilabel_mask_needs_label(tmp_path):
    image, mask = make_case()
    labels = array(mask).astype(np.uint8)
    labels[:3, :3, :3] = 2
    multi = sitk.GetImageFromArray(labels)
    multi.CopyInformation(mask)
    sitk.WriteImage(image, str(tmp_path / "ct.nii.gz"))
    sitk.WriteImage(multi, str(tmp_path / "mask.nii.gz"))
    with pytest.raises(InputError, match=r"mask\.nii\.gz: the mask holds labels 1, 2; choose one with --label N"):
        imaging.load_case(tmp_path / "ct.nii.gz", tmp_path / "mask.nii.gz")
    case = imaging.load_case(tmp_path / "ct.nii.gz", tmp_path / "mask.nii.gz", label=2)
    assert array(case.mask).sum() == 27
    with pytest.raises(InputError, match=r"mask\.nii\.gz: no region with label 7 \(available: 1, 2\)"):
        imaging.load_case(tmp_path / "ct.nii.gz", tmp_path / "mask.nii.gz", label=7)
    with pytest.raises(InputError, match="has no ROI names"):
        imaging.load_case(tmp_path / "ct.nii.gz", tmp_path / "mask.nii.gz", roi_name="GTV")
    # The constraint reader takes every label together.
    assert array(imaging.read_constraint(tmp_path / "mask.nii.gz", image)).sum() == (labels > 0).sum()


def test_bad_masks_are_refused_naming_the_file(tmp_path):
    image, mask = make_case()
    sitk.WriteImage(image, str(tmp_path / "ct.nii.gz"))
    empty = sitk.Image(mask.GetSize(), sitk.sitkUInt8)
    empty.CopyInformation(mask)
    sitk.WriteImage(empty, str(tmp_path / "empty.nii.gz"))
    shifted = sitk.Image(mask)
    shifted.SetOrigin((0.0, 0.0, 0.0))
    sitk.WriteImage(shifted, str(tmp_path / "shifted.nii.gz"))
    fuzzy = sitk.Cast(mask, sitk.sitkFloat32) * 0.5
    sitk.WriteImage(fuzzy, str(tmp_path / "fuzzy.nii.gz"))
    (tmp_path / "corrupt.nii.gz").write_bytes(b"\x1f\x8b not really a gzip file")
    ct = tmp_path / "ct.nii.gz"
    for name, message in [("empty.nii.gz", "the mask is empty"),
                          ("shifted.nii.gz", r"mask is not on the image's grid \(origin"),
                          ("fuzzy.nii.gz", "integer labels"),
                          ("corrupt.nii.gz", "cannot read as a mask"),
                          ("missing.nii.gz", "file not found")]:
        with pytest.raises(InputError, match=rf"{name}: .*{message}"):
            imaging.load_case(ct, tmp_path / name)
    with pytest.raises(InputError, match=r"missing\.nrrd: file not found"):
        imaging.load_case(tmp_path / "missing.nrrd", tmp_path / "empty.nii.gz")
    (tmp_path / "corrupt.mha").write_text("ObjectType = Image\nNDims = 3\nnonsense\n")
    with pytest.raises(InputError, match=r"corrupt\.mha: cannot read as an image"):
        imaging.read_image(tmp_path / "corrupt.mha")


# ------------------------------------------------------------------------ DICOM series + RTSTRUCT

def test_dicom_series_equals_the_nifti_ct(dicom_ct):
    nifti = sitk.ReadImage(str(NIFTI_CT))
    imaging.check_same_grid(nifti, dicom_ct, "DICOM CT")
    np.testing.assert_array_equal(array(dicom_ct), array(nifti))
    assert dicom_ct.GetMetaData(FRAME_OF_REFERENCE_KEY)
    # One slice file stands for its series.
    one_file = imaging.read_image(DICOM_CT / "DCM_IMG_00031.dcm")
    np.testing.assert_array_equal(array(one_file), array(dicom_ct))


def test_rtstruct_gtv_matches_the_nifti_mask(dicom_ct, nifti_mask):
    for path in (DICOM_RTSTRUCT, DICOM_RTSTRUCT / "DCM_RS_00060.dcm", PHANTOM / "dicom"):
        case = imaging.load_case(DICOM_CT if path != PHANTOM / "dicom" else PHANTOM / "dicom", path)
        value = dice(array(case.mask), nifti_mask)
        print(f"RTSTRUCT GTV vs NIfTI mask: Dice {value:.4f}, voxels {array(case.mask).sum()} vs {nifti_mask.sum()}")
        assert value >= 0.95
    assert value == 1.0  # measured: the rasterisation reproduces the reference mask voxel for voxel
    named = imaging.read_mask(DICOM_RTSTRUCT, dicom_ct, roi_name="gtv-1")  # case-insensitive fallback
    np.testing.assert_array_equal(array(named) > 0, nifti_mask)
    with pytest.raises(InputError, match=r"DCM_RS_00060\.dcm: no ROI named 'Lung' \(available: 1 'GTV-1'\)"):
        imaging.read_mask(DICOM_RTSTRUCT, dicom_ct, roi_name="Lung")


def test_rtstruct_honours_direction_cosines(dicom_ct, nifti_mask):
    """The same contours on a flipped and on an axis-permuted copy of the CT land on the same voxels."""
    flipped = sitk.Flip(dicom_ct, [True, True, False])  # same physical space, direction diag(-1,-1,1)
    permuted = sitk.PermuteAxes(dicom_ct, [1, 0, 2])  # i and j swapped
    for reference, back in ((flipped, lambda a: a[:, ::-1, ::-1]), (permuted, lambda a: a.transpose(0, 2, 1))):
        assert reference.GetDirection() != dicom_ct.GetDirection()
        mask = imaging.read_mask(DICOM_RTSTRUCT, reference)
        imaging.check_same_grid(reference, mask, "mask")
        assert dice(back(array(mask)), nifti_mask) >= 0.999


def write_rtstruct(path: Path, rois: dict[str, list[np.ndarray]], frame_uid: str) -> Path:
    """A minimal RTSTRUCT holding closed planar contours (LPS mm) per ROI name."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = RTSTRUCT_SOP_CLASS
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = RTSTRUCT_SOP_CLASS, meta.MediaStorageSOPInstanceUID, "RTSTRUCT"
    ref = Dataset()
    ref.FrameOfReferenceUID = frame_uid
    ds.ReferencedFrameOfReferenceSequence = [ref]
    ds.StructureSetROISequence, ds.ROIContourSequence = [], []
    for number, (name, polygons) in enumerate(rois.items(), start=1):
        roi = Dataset()
        roi.ROINumber, roi.ROIName, roi.ReferencedFrameOfReferenceUID = number, name, frame_uid
        ds.StructureSetROISequence.append(roi)
        contours = Dataset()
        contours.ReferencedROINumber = number
        contours.ContourSequence = []
        for points in polygons:
            c = Dataset()
            c.ContourGeometricType = "CLOSED_PLANAR"
            c.NumberOfContourPoints = len(points)
            c.ContourData = [f"{v:.6f}" for v in np.asarray(points).ravel()]
            contours.ContourSequence.append(c)
        ds.ROIContourSequence.append(contours)
    ds.save_as(str(path), enforce_file_format=True)
    return path


def to_lps(reference: sitk.Image, index_points) -> np.ndarray:
    return np.array([reference.TransformContinuousIndexToPhysicalPoint([float(v) for v in p]) for p in index_points])


def square(i0, j0, i1, j1, k):
    return [(i0, j0, k), (i1, j0, k), (i1, j1, k), (i0, j1, k)]


@pytest.mark.parametrize("direction", [
    (1, 0, 0, 0, 1, 0, 0, 0, 1),
    # rotated 30 degrees about z
    (np.cos(0.5236), -np.sin(0.5236), 0, np.sin(0.5236), np.cos(0.5236), 0, 0, 0, 1),
    # a sagittal acquisition: k runs along patient x (left-right)
    (0, 0, 1, 1, 0, 0, 0, 1, 0),
])
def test_rtstruct_holes_islands_and_roi_choice(tmp_path, direction):
    reference, _ = make_case(shape=(6, 14, 16), spacing=(0.7, 1.1, 2.5), direction=direction)
    outer = to_lps(reference, square(1.5, 1.5, 10.5, 8.5, 2))   # centres i 2..10, j 2..8
    hole = to_lps(reference, square(4.5, 3.5, 6.5, 5.5, 2))     # minus i 5..6, j 4..5
    island = to_lps(reference, square(12.2, 10.2, 14.8, 12.8, 2))  # plus i 13..14, j 11..12
    other = to_lps(reference, square(0.5, 0.5, 3.5, 3.5, 4))
    path = write_rtstruct(tmp_path / "rs.dcm", {"GTV": [outer, hole, island], "Lung": [other]}, "1.2.3")
    expected = np.zeros((6, 14, 16), dtype=bool)
    expected[2, 2:9, 2:11] = True
    expected[2, 4:6, 5:7] = False
    expected[2, 11:13, 13:15] = True
    np.testing.assert_array_equal(array(imaging.read_mask(path, reference, roi_name="GTV")) > 0, expected)
    np.testing.assert_array_equal(array(imaging.read_mask(path, reference, label=2))[4, 1:4, 1:4], 1)
    with pytest.raises(InputError, match=r"rs\.dcm: holds 2 candidate ROIs \(1 'GTV', 2 'Lung'\); choose one with --roi-name"):
        imaging.read_mask(path, reference)
    with pytest.raises(InputError, match=r"rs\.dcm: no region with label 3 \(available: 1 'GTV', 2 'Lung'\)"):
        imaging.read_mask(path, reference, label=3)


def test_rtstruct_refusals(tmp_path, dicom_ct):
    reference, _ = make_case(shape=(6, 14, 16), spacing=(0.7, 1.1, 2.5))
    between = to_lps(reference, square(1.5, 1.5, 5.5, 5.5, 2.5))
    with pytest.raises(InputError, match="lies between CT slices"):
        rasterise_contours([between], reference, "GTV")
    outside = to_lps(reference, square(1.5, 1.5, 5.5, 5.5, 9))
    with pytest.raises(InputError, match="lies outside the CT"):
        rasterise_contours([outside], reference, "GTV")
    tilted = to_lps(reference, [(1, 1, 1), (5, 1, 1), (5, 5, 3)])
    with pytest.raises(InputError, match="not parallel"):
        rasterise_contours([tilted], reference, "GTV")
    # An RTSTRUCT drawn in another frame of reference than the DICOM CT.
    contour = to_lps(dicom_ct, square(50, 50, 60, 60, 20))
    path = write_rtstruct(tmp_path / "other.dcm", {"GTV": [contour]}, "9.9.9")
    with pytest.raises(InputError, match=r"other\.dcm: its Frame of Reference UID 9\.9\.9 is not the CT's"):
        imaging.load_case(DICOM_CT, path)
    with pytest.raises(InputError, match="no DICOM RTSTRUCT or SEG"):
        imaging.read_mask(DICOM_CT, dicom_ct)


def test_dicom_series_refusals(tmp_path):
    gappy = tmp_path / "gappy"
    shutil.copytree(DICOM_CT, gappy)
    (gappy / "DCM_IMG_00030.dcm").unlink()
    with pytest.raises(InputError, match=r"gappy: slice gaps range 3-6 mm \(missing slices"):
        imaging.read_image(gappy)
    two = tmp_path / "two"
    shutil.copytree(DICOM_CT, two)
    other = pydicom.dcmread(str(DICOM_CT / "DCM_IMG_00000.dcm"))
    other.SeriesInstanceUID = generate_uid()
    other.save_as(str(two / "other_series.dcm"))
    with pytest.raises(InputError, match=r"two: holds 2 image series"):
        imaging.read_image(two)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"empty: no DICOM image series found"):
        imaging.read_image(tmp_path / "empty")


# ------------------------------------------------------------------------ DICOM SEG

@pytest.fixture(scope="module")
def ct_datasets() -> list:
    return sorted((pydicom.dcmread(str(f)) for f in DICOM_CT.glob("*.dcm")),
                  key=lambda d: float(d.ImagePositionPatient[2]))


def write_seg(path: Path, sources: list, pixels: np.ndarray, segmentation_type: str, names: list[str]) -> Path:
    """A DICOM SEG written by highdicom; ``pixels`` is ``(slices, rows, cols[, segments])``."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    descriptions = [hd.seg.SegmentDescription(
        segment_number=n, segment_label=name,
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Neoplasm, algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL)
        for n, name in enumerate(names, start=1)]
    seg = hd.seg.Segmentation(
        source_images=sources, pixel_array=pixels, segmentation_type=segmentation_type,
        segment_descriptions=descriptions, series_instance_uid=hd.UID(), series_number=2,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer="DeepRadScore tests",
        manufacturer_model_name="test", software_versions="0", device_serial_number="0")
    seg.save_as(str(path))
    return path


@pytest.mark.filterwarnings("ignore:The string \"PAT1\" is unlikely")
def test_dicom_seg_binary_segments(tmp_path, dicom_ct, nifti_mask, ct_datasets):
    box = np.zeros_like(nifti_mask)
    box[20:30, 50:60, 50:70] = True
    path = write_seg(tmp_path / "seg.dcm", ct_datasets, np.stack([nifti_mask, box], axis=-1).astype(np.uint8),
                     "BINARY", ["GTV", "Box"])
    gtv = imaging.read_mask(path, dicom_ct, roi_name="GTV")
    np.testing.assert_array_equal(array(gtv) > 0, nifti_mask)
    np.testing.assert_array_equal(array(imaging.read_mask(path, dicom_ct, label=2)) > 0, box)
    # The NIfTI CT has no frame of reference to check, and the SEG frames land on its voxels too.
    nifti_ct = imaging.read_image(NIFTI_CT)
    np.testing.assert_array_equal(array(imaging.read_mask(path, nifti_ct, label=1)) > 0, nifti_mask)
    with pytest.raises(InputError, match=r"seg\.dcm: holds 2 candidate ROIs \(1 'GTV', 2 'Box'\)"):
        imaging.read_mask(path, dicom_ct)
    # A CT grid the SEG's pixels do not fall on is refused, not interpolated.
    half_shift = sitk.Image(nifti_ct)
    half_shift.SetOrigin(np.array(nifti_ct.GetOrigin()) + (0.4885, 0, 0))
    with pytest.raises(InputError, match="do not fall on the CT's voxels"):
        imaging.read_mask(path, half_shift, label=1)


@pytest.mark.filterwarnings("ignore:The string \"PAT1\" is unlikely")
def test_dicom_seg_fractional_and_labelmap(tmp_path, dicom_ct, ct_datasets):
    shape = sitk.GetArrayViewFromImage(dicom_ct).shape
    probability = np.zeros(shape, dtype=np.float32)
    probability[10:20, 30:40, 30:40] = 0.3
    probability[12:15, 32:36, 33:37] = 0.8
    # One segment: highdicom puts its Segment Identification in the shared functional groups.
    fractional = write_seg(tmp_path / "fractional.dcm", ct_datasets, probability, "FRACTIONAL", ["P"])
    expected_core = probability > 0.5
    np.testing.assert_array_equal(array(imaging.read_mask(fractional, dicom_ct)) > 0, expected_core)
    labels = np.zeros(shape, dtype=np.uint8)
    labels[10:20, 30:40, 30:40] = 1
    labels[12:15, 32:36, 33:37] = 2
    labelmap = write_seg(tmp_path / "labelmap.dcm", ct_datasets, labels, "LABELMAP", ["Outer", "Core"])
    np.testing.assert_array_equal(array(imaging.read_mask(labelmap, dicom_ct, roi_name="Core")) > 0, expected_core)
    np.testing.assert_array_equal(array(imaging.read_mask(labelmap, dicom_ct, label=1)) > 0, labels == 1)


# ------------------------------------------------------------------------ Slicer .seg.nrrd

def slicer_seg_nrrd(path: Path, reference: sitk.Image, segments: dict[str, np.ndarray]) -> Path:
    """Write ``segments`` (bool arrays on ``reference``) with Slicer's own segmentation storage node.

    Overlapping segments go to separate layers and the file is cropped to their extent, as Slicer
    saves them.
    """
    import slicer
    import vtk
    from vtk.util import numpy_support

    factory = slicer.vtkSegmentationConverterFactory.GetInstance()
    factory.RegisterConverterRule(slicer.vtkBinaryLabelmapToClosedSurfaceConversionRule())
    factory.RegisterConverterRule(slicer.vtkClosedSurfaceToBinaryLabelmapConversionRule())
    scene = slicer.vtkMRMLScene()
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    # vtkOrientedImageData lives in RAS: flip the first two axes of LPS.
    lps_to_ras = np.diag([-1.0, -1.0, 1.0])
    origin = lps_to_ras @ np.array(reference.GetOrigin())
    direction = lps_to_ras @ np.array(reference.GetDirection()).reshape(3, 3)
    for name, values in segments.items():
        labelmap = slicer.vtkOrientedImageData()
        labelmap.SetDimensions(*reference.GetSize())
        labelmap.SetSpacing(*reference.GetSpacing())
        labelmap.SetOrigin(*origin)
        matrix = vtk.vtkMatrix4x4()
        for r in range(3):
            for c in range(3):
                matrix.SetElement(r, c, direction[r, c])
        labelmap.SetDirectionMatrix(matrix)
        labelmap.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
        numpy_support.vtk_to_numpy(labelmap.GetPointData().GetScalars())[:] = values.astype(np.uint8).ravel()
        segment_id = node.GetSegmentation().AddEmptySegment(name, name)
        assert slicer.vtkSlicerSegmentationsModuleLogic.SetBinaryLabelmapToSegment(labelmap, node, segment_id)
    storage = scene.AddNewNodeByClass("vtkMRMLSegmentationStorageNode")
    storage.SetFileName(str(path))
    assert storage.WriteData(node)
    return path


def test_slicer_seg_nrrd_layers_and_cropped_extent(tmp_path):
    reference, mask = make_case(shape=(20, 30, 34), spacing=(0.8, 0.9, 2.5), radius_mm=5.0,
                                direction=(0, -1, 0, 1, 0, 0, 0, 0, 1))
    tumour = array(mask) > 0
    nodule = np.zeros_like(tumour)
    nodule[9:12, 14:18, 15:21] = True  # overlaps the tumour: Slicer puts it in a second layer
    path = slicer_seg_nrrd(tmp_path / "case.seg.nrrd", reference, {"Tumour": tumour, "Nodule": nodule})
    raw = sitk.ReadImage(str(path))
    assert raw.GetNumberOfComponentsPerPixel() == 2, "expected two layers"
    assert raw.GetSize() != reference.GetSize(), "expected Slicer to crop to the segments' extent"
    got = imaging.read_mask(path, reference, roi_name="Tumour")
    imaging.check_same_grid(reference, got, "seg")
    np.testing.assert_array_equal(array(got) > 0, tumour)
    np.testing.assert_array_equal(array(imaging.read_mask(path, reference, roi_name="nodule")) > 0, nodule)
    with pytest.raises(InputError, match=r"holds 2 candidate ROIs \(1 'Tumour', 1 'Nodule'\); choose one with --roi-name NAME"):
        imaging.read_mask(path, reference, label=1)  # both segments have label value 1, in different layers
    np.testing.assert_array_equal(array(imaging.read_constraint(path, reference)) > 0, tumour | nodule)


def test_hand_written_seg_nrrd_sub_grid_rules(tmp_path):
    """One layer, two label values, cropped; then a half-voxel shift and an overhang are refused."""
    reference, _ = make_case(shape=(12, 20, 24), spacing=(0.7, 0.7, 2.0))
    crop = np.zeros((4, 6, 8), dtype=np.uint8)  # [k, j, i]
    crop[1:3, 1:4, 1:5] = 1
    crop[3, 5, 7] = 2
    seg = sitk.GetImageFromArray(crop)
    seg.SetSpacing(reference.GetSpacing())
    seg.SetDirection(reference.GetDirection())
    seg.SetOrigin(reference.TransformIndexToPhysicalPoint((10, 5, 3)))
    for key, value in {"Segment0_ID": "s0", "Segment0_Name": "GTV", "Segment0_LabelValue": "1",
                       "Segment0_Layer": "0", "Segment1_ID": "s1", "Segment1_Name": "Vessel",
                       "Segment1_LabelValue": "2", "Segment1_Layer": "0"}.items():
        seg.SetMetaData(key, value)
    sitk.WriteImage(seg, str(tmp_path / "ok.seg.nrrd"))
    expected = np.zeros((12, 20, 24), dtype=bool)
    expected[4:6, 6:9, 11:15] = True
    np.testing.assert_array_equal(array(imaging.read_mask(tmp_path / "ok.seg.nrrd", reference, roi_name="GTV")) > 0,
                                  expected)
    vessel = array(imaging.read_mask(tmp_path / "ok.seg.nrrd", reference, label=2))
    assert vessel.sum() == 1 and vessel[6, 10, 17] == 1
    seg.SetOrigin(reference.TransformContinuousIndexToPhysicalPoint((10.5, 5, 3)))
    sitk.WriteImage(seg, str(tmp_path / "shifted.seg.nrrd"))
    with pytest.raises(InputError, match=r"shifted\.seg\.nrrd: segment 'GTV': the segmentation's voxels do not fall"):
        imaging.read_mask(tmp_path / "shifted.seg.nrrd", reference, roi_name="GTV")
    seg.SetOrigin(reference.TransformIndexToPhysicalPoint((20, 5, 3)))  # i 21..27 overhang i < 24
    sitk.WriteImage(seg, str(tmp_path / "overhang.seg.nrrd"))
    with pytest.raises(InputError, match=r"overhang\.seg\.nrrd: segment 'GTV': 6 segmented voxels lie outside the CT"):
        imaging.read_mask(tmp_path / "overhang.seg.nrrd", reference, roi_name="GTV")
