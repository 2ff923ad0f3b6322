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
# Node attributes that mark our heatmaps: which CT they belong to and their endpoint.
HEATMAP_OF_ATTRIBUTE = "DeepRadScore.HeatmapOf"
HEATMAP_ENDPOINT_ATTRIBUTE = "DeepRadScore.Endpoint"
# Table attributes: which CT, segmentation and tumour segment they hold the results of, and which
# table it is, so a run reuses only the tables of its own case.
TABLE_OF_ATTRIBUTE = "DeepRadScore.ResultsOf"
TABLE_KIND_ATTRIBUTE = "DeepRadScore.Table"
FEATURES_TABLE, PREDICTIONS_TABLE = "features", "predictions"
# On a slice composite node: what it showed before our overlay ("background|foreground|opacity").
PREVIOUS_LAYERS_ATTRIBUTE = "DeepRadScore.PreviousLayers"

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


def output_key(ct_node, segmentation_node, segment_id: str) -> str:
    """What the tables of one case are tagged with: the CT's, segmentation's and segment's IDs."""
    segmentation_id = segmentation_node.GetID() if segmentation_node is not None else ""
    return f"{ct_node.GetID()}|{segmentation_id}|{segment_id or ''}"


def _nodes(scene, class_name: str):
    return [scene.GetNthNodeByClass(i, class_name) for i in range(scene.GetNumberOfNodesByClass(class_name))]


def tagged_table(scene, key: str, kind: str):
    """The table of kind ``kind`` made for the case ``key`` by an earlier run, or None."""
    for node in _nodes(scene, "vtkMRMLTableNode"):
        if node.GetAttribute(TABLE_OF_ATTRIBUTE) == key and node.GetAttribute(TABLE_KIND_ATTRIBUTE) == kind:
            return node
    return None


def table_node(scene, name: str, existing=None, key: str | None = None, kind: str = FEATURES_TABLE):
    """The table for one case's results: ``existing`` if it belongs to that case (``key``) and
    scene, else the one an earlier run made for the case, else a new one, tagged with ``key``.

    Without ``key`` (a console call that names no case) ``existing`` is reused as given.
    """
    if key is None:
        if existing is not None and existing.GetScene() is scene:
            existing.SetName(name)
            return existing
        return scene.AddNewNodeByClass("vtkMRMLTableNode", name)
    node = None
    if (existing is not None and existing.GetScene() is scene
            and existing.GetAttribute(TABLE_OF_ATTRIBUTE) == key and existing.GetAttribute(TABLE_KIND_ATTRIBUTE) == kind):
        node = existing
    node = node or tagged_table(scene, key, kind)
    if node is None:
        node = scene.AddNewNodeByClass("vtkMRMLTableNode", name)
        node.SetAttribute(TABLE_OF_ATTRIBUTE, key)
        node.SetAttribute(TABLE_KIND_ATTRIBUTE, kind)
    node.SetName(name)
    return node


def heatmap_nodes(ct_node) -> dict:
    """The Grad-CAM volume nodes made for ``ct_node`` by earlier runs: endpoint -> node."""
    scene = ct_node.GetScene()
    found = {}
    for index in range(scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode")):
        node = scene.GetNthNodeByClass(index, "vtkMRMLScalarVolumeNode")
        if node.GetAttribute(HEATMAP_OF_ATTRIBUTE) == ct_node.GetID():
            found[node.GetAttribute(HEATMAP_ENDPOINT_ATTRIBUTE)] = node
    return found


def add_heatmap_volume(ct_node, heatmap_image, patch, endpoint: str, name: str):
    """A one-slice ``size`` x ``size`` volume holding the heatmap where the patch lies, heat-coloured.

    The patch is on the CT's voxel grid at index ``(column0, row0, slice_index)``: the node gets
    the CT's own (local) IJK-to-RAS shifted there and the CT's parent transform, so it overlays
    the CT voxel for voxel wherever the CT is moved, at 100 kB instead of a whole CT-sized volume.
    A node made for the same CT and endpoint by an earlier run is reused.
    """
    import SimpleITK as sitk

    scene = ct_node.GetScene()
    node = heatmap_nodes(ct_node).get(endpoint)
    if node is None:
        node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
        node.SetAttribute(HEATMAP_OF_ATTRIBUTE, ct_node.GetID())
        node.SetAttribute(HEATMAP_ENDPOINT_ATTRIBUTE, endpoint)
    node.SetName(name)
    values = sitk.GetArrayFromImage(heatmap_image).astype(np.float32)
    if values.shape != (1, patch.size, patch.size):
        raise ValueError(f"expected a 1 x {patch.size} x {patch.size} heatmap, got {values.shape}")
    mrml_images.set_volume_array(node, values)
    local = vtk.vtkMatrix4x4()
    ct_node.GetIJKToRASMatrix(local)
    shift = np.eye(4)
    shift[:3, 3] = (patch.column0, patch.row0, patch.slice_index)
    node.SetIJKToRASMatrix(mrml_images.vtk_matrix(mrml_images.numpy_matrix(local) @ shift))
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


def is_heatmap(node) -> bool:
    return node is not None and node.GetAttribute(HEATMAP_OF_ATTRIBUTE) is not None


def _remember_layers(composite) -> None:
    if composite.GetAttribute(PREVIOUS_LAYERS_ATTRIBUTE) is None:
        composite.SetAttribute(PREVIOUS_LAYERS_ATTRIBUTE, "|".join((
            composite.GetBackgroundVolumeID() or "", composite.GetForegroundVolumeID() or "",
            repr(float(composite.GetForegroundOpacity())))))


def show_overlay(scene, background_node, foreground_node, opacity: float = DEFAULT_HEAT_OPACITY) -> list:
    """Heatmap as foreground at ``opacity`` over the CT, in the slice views that show this CT as
    their background; where no view shows it, in every view (with the CT as background). Each
    view changed remembers what it showed, for :func:`hide_overlay`. Returns the views changed.

    A view showing another volume (a PET fusion, a compare layout's other CT) is left alone.
    ``foreground_node`` None: the same as :func:`hide_overlay`.
    """
    if foreground_node is None:
        hide_overlay(scene)
        return []
    composites = _nodes(scene, "vtkMRMLSliceCompositeNode")
    targets = [c for c in composites if c.GetBackgroundVolumeID() == background_node.GetID()]
    if not targets:
        targets = composites
    for composite in targets:
        _remember_layers(composite)
        composite.SetBackgroundVolumeID(background_node.GetID())
        composite.SetForegroundVolumeID(foreground_node.GetID())
        composite.SetForegroundOpacity(opacity)
    # Views that showed one of our heatmaps over another CT keep it (they show that CT's result).
    return targets


def hide_overlay(scene) -> int:
    """Take our heatmaps out of every view and restore what each showed before our overlay;
    returns how many views changed."""
    changed = 0
    for composite in _nodes(scene, "vtkMRMLSliceCompositeNode"):
        previous = composite.GetAttribute(PREVIOUS_LAYERS_ATTRIBUTE)
        showing = is_heatmap(scene.GetNodeByID(composite.GetForegroundVolumeID() or ""))
        if previous is None and not showing:
            continue
        if previous is not None:
            background, foreground, opacity = previous.split("|")
            if scene.GetNodeByID(background) is not None or not background:
                composite.SetBackgroundVolumeID(background or None)
            foreground_node = scene.GetNodeByID(foreground) if foreground else None
            composite.SetForegroundVolumeID(foreground if foreground_node is not None and not is_heatmap(foreground_node)
                                            else None)
            composite.SetForegroundOpacity(float(opacity))
            composite.RemoveAttribute(PREVIOUS_LAYERS_ATTRIBUTE)
        else:
            composite.SetForegroundVolumeID(None)
        changed += 1
    return changed


def set_overlay_opacity(scene, opacity: float) -> int:
    """The foreground opacity of the views that show one of our heatmaps (no other view);
    returns how many views changed."""
    changed = 0
    for index in range(scene.GetNumberOfNodesByClass("vtkMRMLSliceCompositeNode")):
        composite = scene.GetNthNodeByClass(index, "vtkMRMLSliceCompositeNode")
        if is_heatmap(scene.GetNodeByID(composite.GetForegroundVolumeID() or "")):
            composite.SetForegroundOpacity(opacity)
            changed += 1
    return changed


def segments_as_outlines(segmentation_node) -> None:
    """Show the segmentation as outlines in the slice views: a filled tumour would hide the
    heatmap over it."""
    if segmentation_node.GetDisplayNode() is None:
        segmentation_node.CreateDefaultDisplayNodes()
    display = segmentation_node.GetDisplayNode()
    if display is not None:
        display.SetVisibility2DFill(False)
        display.SetVisibility2DOutline(True)


def jump_slices(scene, ras) -> None:
    """Centre every slice view on a world RAS point (e.g. the deep-ROI patch centre)."""
    for index in range(scene.GetNumberOfNodesByClass("vtkMRMLSliceNode")):
        scene.GetNthNodeByClass(index, "vtkMRMLSliceNode").JumpSliceByCentering(*[float(v) for v in ras])


def patch_centre_ras(patch, ct_image) -> tuple[float, float, float]:
    """World RAS of the tumour centroid on the deep-ROI slice (the centre of the patch)."""
    cx, cy, _ = patch.centroid_index
    lps = ct_image.TransformContinuousIndexToPhysicalPoint((float(cx), float(cy), float(patch.slice_index)))
    return (-lps[0], -lps[1], lps[2])
