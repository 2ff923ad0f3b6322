"""What a run leaves in the scene: table nodes, the Grad-CAM volume, its colours and the views.

Every function takes the scene (or a node in it) explicitly instead of ``slicer.mrmlScene``, so
the same code runs in Slicer and in headless tests on a scene built with ``slicer-core``.
"""
from __future__ import annotations

import math

import numpy as np
import vtk

from . import mrml_images

HEAT_COLOR_TABLE_NAME = "DeepRadScore Grad-CAM"
# Grad-CAM below this share of its maximum is left transparent, so the CT shows through outside
# the regions that drive the prediction instead of the whole 160 x 160 patch turning dark.
HEAT_VISIBLE_FROM = 0.1
DEFAULT_HEAT_OPACITY = 0.4

# An inferno-like ramp (black, purple, red, orange, pale yellow): perceptually ordered and
# distinct from CT greys, so the overlay reads as "more" where it is brighter.
_HEAT_ANCHORS = (
    (0.00, (0.00, 0.00, 0.02)),
    (0.25, (0.34, 0.06, 0.43)),
    (0.50, (0.73, 0.21, 0.33)),
    (0.75, (0.98, 0.55, 0.04)),
    (1.00, (0.99, 1.00, 0.64)),
)

PREDICTION_COLUMNS = ("Endpoint", "Probability", "Predicted class", "Threshold",
                      "Radiomics probability", "Deep probability", "Fusion classifier")


def heat_color_table(scene):
    """The module's heat colour table node (created once per scene)."""
    existing = scene.GetFirstNodeByName(HEAT_COLOR_TABLE_NAME)
    if existing is not None and existing.IsA("vtkMRMLColorTableNode"):
        return existing
    table = scene.AddNewNodeByClass("vtkMRMLColorTableNode", HEAT_COLOR_TABLE_NAME)
    table.SetTypeToUser()
    table.SetNumberOfColors(256)
    positions = [p for p, _ in _HEAT_ANCHORS]
    channels = np.array([c for _, c in _HEAT_ANCHORS])
    for index in range(256):
        t = index / 255.0
        r, g, b = (float(np.interp(t, positions, channels[:, c])) for c in range(3))
        table.SetColor(index, f"{t:.3f}", r, g, b, 1.0)
    table.SetAttribute("Category", "DeepRadScore")
    return table


def _table(columns: list[tuple[str, vtk.vtkAbstractArray]]) -> vtk.vtkTable:
    table = vtk.vtkTable()
    for name, array in columns:
        array.SetName(name)
        table.AddColumn(array)
    return table


def _strings(values) -> vtk.vtkStringArray:
    array = vtk.vtkStringArray()
    for value in values:
        array.InsertNextValue(str(value))
    return array


def _doubles(values) -> vtk.vtkDoubleArray:
    array = vtk.vtkDoubleArray()
    for value in values:
        array.InsertNextValue(math.nan if value is None else float(value))
    return array


def fill_predictions_table(table_node, predictions: dict) -> None:
    """One row per endpoint: probability, class, threshold and the three models' probabilities."""
    rows = list(predictions.values())
    table_node.SetAndObserveTable(_table([
        (PREDICTION_COLUMNS[0], _strings(p.endpoint for p in rows)),
        (PREDICTION_COLUMNS[1], _doubles(p.probability for p in rows)),
        (PREDICTION_COLUMNS[2], _strings(int(p.predicted_class) for p in rows)),
        (PREDICTION_COLUMNS[3], _doubles(p.threshold for p in rows)),
        (PREDICTION_COLUMNS[4], _doubles(p.radiomics_probability for p in rows)),
        (PREDICTION_COLUMNS[5], _doubles(p.deep_probability for p in rows)),
        (PREDICTION_COLUMNS[6], _strings(p.classifier for p in rows)),
    ]))
    table_node.SetUseColumnTitleAsColumnHeader(True)
    table_node.SetLocked(True)


def fill_features_table(table_node, features: dict) -> None:
    """The radiomics features as rows (name, value): 1,702 rows for tumour + ring."""
    table_node.SetAndObserveTable(_table([
        ("Feature", _strings(features.keys())),
        ("Value", _doubles(features.values())),
    ]))
    table_node.SetUseColumnTitleAsColumnHeader(True)
    table_node.SetLocked(True)


def table_node(scene, name: str, existing=None):
    """Reuse ``existing`` (same scene) or add a new table node."""
    if existing is not None and existing.GetScene() is scene:
        existing.SetName(name)
        return existing
    return scene.AddNewNodeByClass("vtkMRMLTableNode", name)


def add_heatmap_volume(ct_node, heatmap_image, name: str, existing=None):
    """A scalar volume on exactly the CT's voxel grid holding the heatmap, heat-coloured.

    The heatmap comes from the engine on the CT's world grid; its voxels go into a node with the
    CT's own (local) IJK-to-RAS and the same parent transform, so it overlays the CT voxel for
    voxel wherever the CT is moved.
    """
    scene = ct_node.GetScene()
    node = existing if existing is not None and existing.GetScene() is scene else \
        scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    node.SetName(name)
    import SimpleITK as sitk

    mrml_images.set_volume_array(node, sitk.GetArrayFromImage(heatmap_image).astype(np.float32))
    local = vtk.vtkMatrix4x4()
    ct_node.GetIJKToRASMatrix(local)
    node.SetIJKToRASMatrix(local)
    node.SetAndObserveTransformNodeID(ct_node.GetTransformNodeID())
    if node.GetDisplayNode() is None:
        node.CreateDefaultDisplayNodes()
    display = node.GetDisplayNode()
    display.SetAndObserveColorNodeID(heat_color_table(scene).GetID())
    display.AutoWindowLevelOff()
    display.SetWindowLevelMinMax(0.0, 1.0)
    display.AutoThresholdOff()
    display.SetApplyThreshold(1)
    display.SetLowerThreshold(HEAT_VISIBLE_FROM)
    display.SetUpperThreshold(1.0e6)
    display.SetInterpolate(0)
    return node


def show_overlay(scene, background_node, foreground_node, opacity: float = DEFAULT_HEAT_OPACITY) -> None:
    """CT as background and heatmap as foreground at ``opacity`` in every slice view."""
    for index in range(scene.GetNumberOfNodesByClass("vtkMRMLSliceCompositeNode")):
        composite = scene.GetNthNodeByClass(index, "vtkMRMLSliceCompositeNode")
        composite.SetBackgroundVolumeID(background_node.GetID())
        composite.SetForegroundVolumeID(foreground_node.GetID() if foreground_node else None)
        composite.SetForegroundOpacity(opacity)


def set_overlay_opacity(scene, opacity: float) -> None:
    for index in range(scene.GetNumberOfNodesByClass("vtkMRMLSliceCompositeNode")):
        scene.GetNthNodeByClass(index, "vtkMRMLSliceCompositeNode").SetForegroundOpacity(opacity)


def jump_slices(scene, ras) -> None:
    """Centre every slice view on a world RAS point (e.g. the deep-ROI patch centre)."""
    for index in range(scene.GetNumberOfNodesByClass("vtkMRMLSliceNode")):
        scene.GetNthNodeByClass(index, "vtkMRMLSliceNode").JumpSliceByCentering(*[float(v) for v in ras])


def patch_centre_ras(patch, ct_image) -> tuple[float, float, float]:
    """World RAS of the tumour centroid on the deep-ROI slice (the centre of the patch)."""
    cx, cy, _ = patch.centroid_index
    lps = ct_image.TransformContinuousIndexToPhysicalPoint((float(cx), float(cy), float(patch.slice_index)))
    return (-lps[0], -lps[1], lps[2])
