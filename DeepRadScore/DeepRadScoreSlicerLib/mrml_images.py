"""MRML volume and segment nodes <-> SimpleITK images, with IJK/RAS/LPS handled right.

Slicer keeps a volume's voxels in a ``vtkImageData`` (no geometry) and the geometry in the node's
IJK-to-RAS matrix; SimpleITK keeps origin, spacing and direction cosines in LPS. The two differ
by the sign of the first two world axes:

    IJKToRAS = diag(-1, -1, 1, 1) @ [[D * spacing, origin], [0, 1]]      (D, origin in LPS)

and both store voxels with i fastest, so a numpy array from either is ``[k, j, i]``.

Transforms (our decision, see docs/architecture.md "Slicer module"): a volume under a *linear*
parent transform is used with its world geometry (the transform folded into IJK-to-RAS, exactly
what "Harden transform" would do, without changing the user's node); the result must still be a
grid SimpleITK can hold (orthogonal axes), otherwise it is refused. A *non-linear* transform would
need resampling the CT, which changes HU values and voxel sizes the features depend on: refused
with a message saying what to do.

Imports slicer and vtk (never qt), so it runs in Slicer and under ``slicer-core`` alike.
"""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk
import vtk
from vtk.util import numpy_support

import slicer

from DeepRadScoreLib.errors import InputError


LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
# Axes must be orthogonal within this tolerance (cosine) to be a SimpleITK direction matrix.
ORTHOGONALITY_TOLERANCE = 1e-4


def ijk_to_ras_from_image(image: sitk.Image) -> np.ndarray:
    """The 4x4 IJK-to-RAS matrix of a SimpleITK image's grid."""
    direction = np.array(image.GetDirection(), dtype=float).reshape(3, 3)
    ijk_to_lps = np.eye(4)
    ijk_to_lps[:3, :3] = direction * np.array(image.GetSpacing(), dtype=float)
    ijk_to_lps[:3, 3] = image.GetOrigin()
    return LPS_TO_RAS @ ijk_to_lps


def grid_from_ijk_to_ras(ijk_to_ras: np.ndarray, name: str) -> tuple[tuple, tuple, tuple]:
    """(origin, spacing, direction) in LPS of an IJK-to-RAS matrix; refuses sheared grids."""
    ijk_to_lps = LPS_TO_RAS @ np.asarray(ijk_to_ras, dtype=float)
    axes = ijk_to_lps[:3, :3]
    spacing = np.linalg.norm(axes, axis=0)
    if np.any(spacing <= 0):
        raise InputError(f"{name}: the volume has a zero voxel size")
    direction = axes / spacing
    if np.abs(direction.T @ direction - np.eye(3)).max() > ORTHOGONALITY_TOLERANCE:
        raise InputError(f"{name}: its voxel axes are not orthogonal (a sheared grid, e.g. from a "
                         "shearing transform); resample it first (Resample Scalar Volume)")
    return tuple(ijk_to_lps[:3, 3]), tuple(spacing), tuple(direction.ravel())


def numpy_matrix(matrix: vtk.vtkMatrix4x4) -> np.ndarray:
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def vtk_matrix(array: np.ndarray) -> vtk.vtkMatrix4x4:
    matrix = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            matrix.SetElement(r, c, float(array[r, c]))
    return matrix


def world_ijk_to_ras(node) -> np.ndarray:
    """The node's IJK-to-RAS in world coordinates, its linear parent transforms folded in."""
    local = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(local)
    matrix = numpy_matrix(local)
    transform = node.GetParentTransformNode()
    if transform is None:
        return matrix
    if not transform.IsTransformToWorldLinear():
        raise InputError(f"{node.GetName()}: the volume is under the non-linear transform "
                         f"'{transform.GetName()}'; the engine needs the CT's own voxels. Harden "
                         "the transform (Data module: right-click > Harden transform) or remove it")
    to_world = vtk.vtkMatrix4x4()
    transform.GetMatrixTransformToWorld(to_world)
    return numpy_matrix(to_world) @ matrix


def _array_of(node) -> np.ndarray:
    image_data = node.GetImageData()
    if image_data is None or image_data.GetPointData().GetScalars() is None:
        raise InputError(f"{node.GetName()}: the volume holds no image data")
    if image_data.GetNumberOfScalarComponents() != 1:
        raise InputError(f"{node.GetName()}: expected a scalar volume, got "
                         f"{image_data.GetNumberOfScalarComponents()} components per voxel")
    dims = image_data.GetDimensions()
    values = numpy_support.vtk_to_numpy(image_data.GetPointData().GetScalars())
    return values.reshape(dims[2], dims[1], dims[0])


def volume_to_image(node, pixel_type=np.float32) -> sitk.Image:
    """A scalar or labelmap volume node as a SimpleITK image on its world grid (LPS).

    ``pixel_type`` None keeps the node's own type (a CT's int16 stays int16: half the memory and
    file of float32, and the same HU)."""
    origin, spacing, direction = grid_from_ijk_to_ras(world_ijk_to_ras(node), node.GetName())
    array = _array_of(node)
    if pixel_type is not None and array.dtype != np.dtype(pixel_type):
        array = array.astype(pixel_type)
    image = sitk.GetImageFromArray(array)  # copies the voxels out of the node's buffer
    image.SetOrigin(origin)
    image.SetSpacing(spacing)
    image.SetDirection(direction)
    return image


def geometry_only(image: sitk.Image) -> sitk.Image:
    """A one-voxel image with ``image``'s origin, spacing and direction: what placing the results
    needs (index -> physical point), without keeping the voxels."""
    small = sitk.Image([1, 1, 1], sitk.sitkUInt8)
    small.SetOrigin(image.GetOrigin())
    small.SetSpacing(image.GetSpacing())
    small.SetDirection(image.GetDirection())
    return small


def set_volume_from_image(node, image: sitk.Image) -> None:
    """Put a SimpleITK image's voxels and grid into a volume node (local = image geometry)."""
    array = np.ascontiguousarray(sitk.GetArrayViewFromImage(image))
    image_data = vtk.vtkImageData()
    image_data.SetDimensions(array.shape[2], array.shape[1], array.shape[0])
    scalars = numpy_support.numpy_to_vtk(array.ravel(), deep=True)
    image_data.GetPointData().SetScalars(scalars)
    node.SetIJKToRASMatrix(vtk_matrix(ijk_to_ras_from_image(image)))
    node.SetAndObserveImageData(image_data)


def set_volume_array(node, array: np.ndarray) -> None:
    """Replace a volume node's voxels with ``array`` ([k, j, i]), keeping its geometry."""
    array = np.ascontiguousarray(array)
    image_data = vtk.vtkImageData()
    image_data.SetDimensions(array.shape[2], array.shape[1], array.shape[0])
    image_data.GetPointData().SetScalars(numpy_support.numpy_to_vtk(array.ravel(), deep=True))
    node.SetAndObserveImageData(image_data)


def export_segment(segmentation_node, segment_id: str, reference_volume_node=None):
    """A temporary labelmap node holding one segment (1 inside, 0 outside).

    With a reference volume the labelmap lies on exactly that volume's voxel grid (Slicer
    resamples the segment if the segmentation has another geometry or transform); without one it
    uses the segmentation's own reference geometry, full extent, so a ring around the segment fits.
    The caller removes it with :func:`discard_labelmap`.
    """
    segmentation = segmentation_node.GetSegmentation()
    if segmentation.GetSegment(segment_id) is None:
        raise InputError(f"{segmentation_node.GetName()}: no segment with ID '{segment_id}'")
    scene = segmentation_node.GetScene()
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", f"{segment_id} export")
    ids = vtk.vtkStringArray()
    ids.InsertNextValue(segment_id)
    colours_before = _node_ids(scene, "vtkMRMLColorNode")
    ok = slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(
        segmentation_node, ids, labelmap, reference_volume_node, slicer.vtkSegmentation.EXTENT_REFERENCE_GEOMETRY)
    # The export adds a "<segmentation>_ColorTable" node to the scene (saved with it); only the
    # voxels are used here, so it goes at once.
    for colour_id in _node_ids(scene, "vtkMRMLColorNode") - colours_before:
        scene.RemoveNode(scene.GetNodeByID(colour_id))
    if not ok or labelmap.GetImageData() is None:
        discard_labelmap(labelmap)
        raise InputError(f"{segmentation_node.GetName()}: could not export segment "
                         f"'{segmentation.GetSegment(segment_id).GetName()}' as a labelmap")
    return labelmap


def _node_ids(scene, class_name: str) -> set[str]:
    return {scene.GetNthNodeByClass(i, class_name).GetID() for i in range(scene.GetNumberOfNodesByClass(class_name))}


def discard_labelmap(labelmap) -> None:
    """Remove a temporary labelmap and the display/storage nodes it brought into the scene."""
    scene = labelmap.GetScene()
    if scene is None:
        return
    helpers = [labelmap.GetNthDisplayNode(i) for i in range(labelmap.GetNumberOfDisplayNodes())]
    helpers += [labelmap.GetNthStorageNode(i) for i in range(labelmap.GetNumberOfStorageNodes())]
    scene.RemoveNode(labelmap)
    for node in helpers:
        if node is not None and node.GetScene() is scene:
            scene.RemoveNode(node)


def segment_to_mask(segmentation_node, segment_id: str, reference_volume_node=None) -> sitk.Image:
    """One segment as a uint8 0/1 SimpleITK mask (on the reference volume's grid if given)."""
    labelmap = export_segment(segmentation_node, segment_id, reference_volume_node)
    try:
        mask = volume_to_image(labelmap, np.uint8)
    finally:
        discard_labelmap(labelmap)
    binary = sitk.GetImageFromArray((sitk.GetArrayViewFromImage(mask) > 0).astype(np.uint8))
    binary.CopyInformation(mask)
    if not sitk.GetArrayViewFromImage(binary).any():
        name = segmentation_node.GetSegmentation().GetSegment(segment_id).GetName()
        raise InputError(f"{segmentation_node.GetName()}: segment '{name}' is empty"
                         + (f" within volume '{reference_volume_node.GetName()}'" if reference_volume_node else ""))
    return binary
