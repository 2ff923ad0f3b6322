"""The Slicer module's Logic on real MRML nodes (slicer-core: MRML, segmentations, slice logic).

The IBSI CT phantom is loaded as a volume node and a segmentation node as Slicer would hold
them; the Logic's ring segment, tables and Grad-CAM overlay are checked against the engine and
against ``deepradscore predict`` on the same files.

slicer-core has no ``slicer.ScriptedLoadableModule`` and no Qt, so the module file
(DeepRadScore.py: Module, Widget, Test) cannot be imported here; these tests use the Logic from
``DeepRadScoreSlicerLib.logic``, which is the very class the module file re-exports, and
Testing/test_slicer_static.py checks the module file statically.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import vtk

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "DeepRadScore"))

import slicer  # noqa: E402  (slicer-core)

from conftest import make_case  # noqa: E402
from DeepRadScoreLib.errors import InputError  # noqa: E402
from DeepRadScoreLib.io.images import load_case  # noqa: E402
from DeepRadScoreLib.regions import peritumoral_ring  # noqa: E402
from DeepRadScoreSlicerLib import logic as module  # noqa: E402
from DeepRadScoreSlicerLib import mrml_images, scene_outputs  # noqa: E402

# A direction with axes swapped and flipped (LPS): i runs posterior, j runs right-to-left...
PERMUTED = (0.0, -1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, -1.0)


class Scene:
    """A scene as Slicer's application sets it up: colours and an axial ("Red") slice view."""

    def __init__(self):
        self.scene = slicer.vtkMRMLScene()
        self.colors = slicer.vtkMRMLColorLogic()
        self.colors.SetMRMLScene(self.scene)
        self.slice_logic = slicer.vtkMRMLSliceLogic()
        self.slice_logic.SetMRMLScene(self.scene)
        self.slice_node = self.slice_logic.AddSliceNode("Red")
        self.slice_node.SetDimensions(256, 256, 1)

    def add_case(self, image: sitk.Image, mask: sitk.Image, name: str = "CT"):
        """Volume node + segmentation node (segment "Tumour") from SimpleITK images."""
        volume = self.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
        mrml_images.set_volume_from_image(volume, sitk.Cast(image, sitk.sitkFloat32))
        volume.CreateDefaultDisplayNodes()
        labelmap = self.scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "Tumour")
        mrml_images.set_volume_from_image(labelmap, sitk.Cast(mask, sitk.sitkUInt8))
        segmentation = self.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", f"{name} segmentation")
        segmentation.SetReferenceImageGeometryParameterFromVolumeNode(volume)
        assert slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(labelmap, segmentation)
        self.scene.RemoveNode(labelmap)
        return volume, segmentation, segmentation.GetSegmentation().GetNthSegmentID(0)

    def blended_slice(self) -> np.ndarray:
        """The RGBA image the Red view shows (background and foreground layers blended)."""
        self.slice_logic.UpdatePipeline()
        blend = self.slice_logic.GetBlend()
        blend.Update()
        output = blend.GetOutput()
        dims = output.GetDimensions()
        from vtk.util import numpy_support

        return numpy_support.vtk_to_numpy(output.GetPointData().GetScalars()).reshape(dims[1], dims[0], -1).copy()

    def slice_pixel(self, ras) -> tuple[int, int]:
        """(row, column) of a world RAS point in the Red view's image."""
        inverse = vtk.vtkMatrix4x4()
        vtk.vtkMatrix4x4.Invert(self.slice_node.GetXYToRAS(), inverse)
        x, y, _, _ = inverse.MultiplyPoint((*ras, 1.0))
        return int(round(y)), int(round(x))


def with_direction(image: sitk.Image, direction) -> sitk.Image:
    """Same voxels, another direction matrix."""
    out = sitk.Image(image)
    out.SetDirection(direction)
    return out


@pytest.fixture(scope="module")
def phantom(phantom_paths):
    case = load_case(*phantom_paths)
    scene = Scene()
    volume, segmentation, tumour = scene.add_case(case.image, case.mask, "Phantom")
    return scene, volume, segmentation, tumour, case


@pytest.fixture(scope="module")
def small_case():
    return make_case()


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory, small_case):
    """A real bundle from the real training code, on 20 synthetic rows (seconds, not hours).

    The rows are one generated case's 1702 features and deep-ROI patch with noise, the label
    planted in one feature and in the patch brightness: enough for every model to be fitted
    and saved; the numbers mean nothing, and the bundle is marked synthetic.
    """
    from DeepRadScoreLib.pipelines.case import analyse_case
    from DeepRadScoreLib.deep.ensemble import DeepConfig
    from DeepRadScoreLib.pipelines.train import fit_bundle

    base = analyse_case(*small_case)
    rng = np.random.default_rng(0)
    n = 20
    names = list(base.features)
    values = np.array([base.features[k] for k in names], dtype=float)
    y = np.array([0.0, 1.0] * (n // 2))
    rows = values[None, :] * (1 + 0.1 * rng.standard_normal((n, len(values))))
    rows[:, names.index("tumor_original_firstorder_Mean")] += 40 * y
    features = pd.DataFrame(rows, columns=names, index=[f"case{i}" for i in range(n)])
    patches = np.repeat(base.patch.hu[None], n, axis=0) + rng.normal(0, 30, (n, 160, 160)).astype(np.float32)
    patches[y == 1] += 60
    labels = pd.DataFrame({"EGFR": y, "KRAS": 1 - y}, index=features.index)
    config = DeepConfig(backbone="resnet50", mode="multitask", folds=1, epochs=1, batch_size=8, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no ImageNet weights offline: random init, as warned
        bundle = fit_bundle(features, patches, labels, config.check(), cv_repeats=1, data={"synthetic": True})
    path = tmp_path_factory.mktemp("bundle") / "tiny"
    bundle.save(path)
    return path


def test_volume_node_geometry_round_trip_with_rotated_direction():
    """IJK->RAS of the node maps voxels where SimpleITK (LPS) puts them, for a non-identity grid."""
    image, _ = make_case(shape=(6, 7, 8), spacing=(0.7, 0.9, 2.0), origin=(10.0, -20.0, 30.0))
    c, s = np.cos(np.radians(30)), np.sin(np.radians(30))
    image = with_direction(image, (c, -s, 0.0, s, c, 0.0, 0.0, 0.0, -1.0))
    scene = Scene()
    node = scene.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "rotated")
    mrml_images.set_volume_from_image(node, image)
    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    for index in ((0, 0, 0), (7, 6, 5), (3, 1, 4)):
        ras = matrix.MultiplyPoint((*index, 1.0))[:3]
        lps = image.TransformIndexToPhysicalPoint(index)
        np.testing.assert_allclose(ras, (-lps[0], -lps[1], lps[2]), atol=1e-9)
    back = mrml_images.volume_to_image(node)
    np.testing.assert_allclose(back.GetOrigin(), image.GetOrigin(), atol=1e-9)
    np.testing.assert_allclose(back.GetSpacing(), image.GetSpacing(), atol=1e-9)
    np.testing.assert_allclose(back.GetDirection(), image.GetDirection(), atol=1e-9)
    assert np.array_equal(sitk.GetArrayViewFromImage(back), sitk.GetArrayViewFromImage(image))


def test_ring_segment_is_the_engines_ring(phantom):
    scene, volume, segmentation, tumour, case = phantom
    logic = module.DeepRadScoreLogic()
    ring_id = logic.createPeritumoralRing(segmentation, tumour, 3.0)
    ring_segment = segmentation.GetSegmentation().GetSegment(ring_id)
    assert ring_segment.GetName() == "Tumour peritumoral 3 mm"
    assert ring_segment.GetColor() != segmentation.GetSegmentation().GetSegment(tumour).GetColor()
    ring = mrml_images.segment_to_mask(segmentation, ring_id, volume)
    expected = peritumoral_ring(case.mask, 3.0)
    assert sitk.GetArrayViewFromImage(expected).sum() > 1000
    assert np.array_equal(sitk.GetArrayViewFromImage(ring), sitk.GetArrayViewFromImage(expected))
    # Running it again replaces the ring instead of adding a second one.
    count = segmentation.GetSegmentation().GetNumberOfSegments()
    logic.createPeritumoralRing(segmentation, tumour, 3.0)
    assert segmentation.GetSegmentation().GetNumberOfSegments() == count


def test_ring_with_flipped_direction_is_the_same_voxels(phantom):
    _, _, _, _, case = phantom
    scene = Scene()
    image, mask = with_direction(case.image, PERMUTED), with_direction(case.mask, PERMUTED)
    volume, segmentation, tumour = scene.add_case(image, mask)
    ring_id = module.DeepRadScoreLogic().createPeritumoralRing(segmentation, tumour, 3.0, referenceVolumeNode=volume)
    ring = mrml_images.segment_to_mask(segmentation, ring_id, volume)
    assert np.array_equal(sitk.GetArrayViewFromImage(ring), sitk.GetArrayViewFromImage(peritumoral_ring(mask, 3.0)))
    assert np.array_equal(sitk.GetArrayViewFromImage(ring),
                          sitk.GetArrayViewFromImage(peritumoral_ring(case.mask, 3.0)))
    np.testing.assert_allclose(mrml_images.volume_to_image(volume).GetDirection(), PERMUTED, atol=1e-9)


def test_linear_transform_is_folded_in_and_non_linear_refused(small_case):
    image, mask = small_case
    scene = Scene()
    volume, segmentation, tumour = scene.add_case(image, mask)
    rotation = scene.scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "rotation")
    matrix = vtk.vtkMatrix4x4()
    matrix.SetElement(0, 0, 0.0), matrix.SetElement(0, 1, -1.0), matrix.SetElement(1, 0, 1.0), matrix.SetElement(1, 1, 0.0)
    matrix.SetElement(2, 3, 12.5)
    rotation.SetMatrixTransformToParent(matrix)
    volume.SetAndObserveTransformNodeID(rotation.GetID())
    segmentation.SetAndObserveTransformNodeID(rotation.GetID())
    moved = mrml_images.volume_to_image(volume)
    assert moved.GetOrigin()[2] == pytest.approx(image.GetOrigin()[2] + 12.5)
    assert not np.allclose(moved.GetDirection(), image.GetDirection())
    ct, tumour_mask = module.DeepRadScoreLogic().caseImages(volume, segmentation, tumour)
    assert np.array_equal(sitk.GetArrayViewFromImage(tumour_mask), sitk.GetArrayViewFromImage(mask))

    warp = scene.scene.AddNewNodeByClass("vtkMRMLTransformNode", "warp")
    spline = vtk.vtkThinPlateSplineTransform()
    source, target = vtk.vtkPoints(), vtk.vtkPoints()
    for p in ((0, 0, 0), (50, 0, 0), (0, 50, 0), (0, 0, 50)):
        source.InsertNextPoint(p)
        target.InsertNextPoint(p[0] + 2, p[1], p[2] + 1)
    spline.SetSourceLandmarks(source)
    spline.SetTargetLandmarks(target)
    spline.SetBasisToR()
    warp.SetAndObserveTransformToParent(spline)
    volume.SetAndObserveTransformNodeID(warp.GetID())
    with pytest.raises(InputError, match="non-linear transform 'warp'"):
        module.DeepRadScoreLogic().caseImages(volume, segmentation, tumour)


def test_process_matches_cli_and_overlays_heatmap(phantom, phantom_paths, tiny_bundle, tmp_path):
    scene, volume, segmentation, tumour, case = phantom
    cli_json = tmp_path / "result.json"
    # The CLI runs in parallel with the Logic (2 cores): same files, same bundle.
    cli = subprocess.Popen([sys.executable, "-m", "DeepRadScoreLib.cli.main", "predict", str(tiny_bundle),
                            str(phantom_paths[0]), str(phantom_paths[1]), "-o", str(cli_json), "--device", "cpu"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    fractions = []
    output = module.DeepRadScoreLogic().process(volume, segmentation, tumour, tiny_bundle, device="cpu",
                                                progressCallback=lambda f, m: fractions.append(f))
    cli_output = cli.communicate(timeout=300)[0]
    assert cli.returncode == 0, cli_output
    assert fractions[-1] == 1.0 and fractions == sorted(fractions)
    # The radiomics, the longest step, report their own progress between 5 % and 80 %.
    assert any(0.05 < f < 0.8 for f in fractions)

    expected = json.loads(cli_json.read_text())["predictions"]
    table = output.predictionsTableNode.GetTable()
    assert table.GetNumberOfRows() == len(expected) == 2
    columns = [table.GetColumnName(c) for c in range(table.GetNumberOfColumns())]
    assert columns == list(scene_outputs.PREDICTION_COLUMNS)
    for row in range(table.GetNumberOfRows()):
        endpoint = table.GetValue(row, 0).ToString()
        want = expected[endpoint]
        assert table.GetValue(row, 1).ToDouble() == pytest.approx(want["probability"], rel=1e-6, abs=1e-9)
        assert table.GetValue(row, 2).ToString() == str(want["predicted_class"])
        assert table.GetValue(row, 3).ToDouble() == pytest.approx(want["threshold"], rel=1e-9)
        assert table.GetValue(row, 4).ToDouble() == pytest.approx(want["radiomics_probability"], rel=1e-6, abs=1e-9)
        assert table.GetValue(row, 5).ToDouble() == pytest.approx(want["deep_probability"], rel=1e-6, abs=1e-9)
        assert table.GetValue(row, 6).ToString() == want["classifier"]
    assert output.featuresTableNode.GetNumberOfRows() == 1702
    assert "SYNTHETIC" in output.message

    # The heatmap is one 160 x 160 slice on the CT's grid where the patch lies.
    heat_node = output.heatmapNodes["EGFR"]
    patch = output.caseResult.patch
    ct_matrix, heat_matrix = vtk.vtkMatrix4x4(), vtk.vtkMatrix4x4()
    volume.GetIJKToRASMatrix(ct_matrix)
    heat_node.GetIJKToRASMatrix(heat_matrix)
    shift = np.eye(4)
    shift[:3, 3] = (patch.column0, patch.row0, patch.slice_index)
    np.testing.assert_allclose(mrml_images.numpy_matrix(heat_matrix), mrml_images.numpy_matrix(ct_matrix) @ shift,
                               atol=1e-9)
    assert heat_node.GetImageData().GetDimensions() == (160, 160, 1)
    heat_slice = sitk.GetArrayFromImage(output.caseResult.heatmaps["EGFR"])
    assert np.array_equal(sitk.GetArrayViewFromImage(mrml_images.volume_to_image(heat_node)), heat_slice)
    assert heat_slice.max() == pytest.approx(1.0)
    # The same values where the engine puts them on the whole CT grid (predict --gradcam).
    from DeepRadScoreLib.regions import patch_to_volume

    heat = sitk.GetArrayFromImage(patch_to_volume(patch, heat_slice[0], case.image))
    world = mrml_images.volume_to_image(heat_node)
    np.testing.assert_allclose(world.GetOrigin(), case.image.TransformIndexToPhysicalPoint(
        (patch.column0, patch.row0, patch.slice_index)), atol=1e-6)

    # Views: CT in the background, heatmap in front at 0.4, centred on the deep-ROI slice.
    composite = scene.slice_logic.GetSliceCompositeNode()
    assert composite.GetBackgroundVolumeID() == volume.GetID()
    assert composite.GetForegroundVolumeID() == heat_node.GetID()
    assert composite.GetForegroundOpacity() == pytest.approx(0.4)
    centre = scene_outputs.patch_centre_ras(patch, case.image)
    assert scene.slice_node.GetSliceOffset() == pytest.approx(centre[2], abs=1e-3)

    # Blend the Red view: heat colours where the heatmap is high, plain grey CT with opacity 0.
    scene.slice_logic.FitSliceToAll()
    scene.slice_node.JumpSliceByCentering(*centre)
    shown = scene.blended_slice()
    composite.SetForegroundOpacity(0.0)
    plain = scene.blended_slice()
    composite.SetForegroundOpacity(0.4)
    assert (plain[..., 0] == plain[..., 2]).all(), "the CT alone is grey"
    hottest = np.unravel_index(np.argmax(heat[patch.slice_index]), heat.shape[1:])
    lps = case.image.TransformIndexToPhysicalPoint((int(hottest[1]), int(hottest[0]), patch.slice_index))
    row, col = scene.slice_pixel((-lps[0], -lps[1], lps[2]))
    assert shown[row, col, 0] != shown[row, col, 2], "heat colour at the heatmap's maximum"
    tumour_row, tumour_col = scene.slice_pixel(centre)
    tumour_heat = heat[patch.slice_index, int(round(patch.centroid_index[1])), int(round(patch.centroid_index[0]))]
    tumour_coloured = not np.array_equal(shown[tumour_row, tumour_col], plain[tumour_row, tumour_col])
    assert tumour_coloured == (tumour_heat >= scene_outputs.HEAT_VISIBLE_FROM)
    if os.environ.get("DEEPRADSCORE_WRITE_SCREENSHOT"):
        write_screenshot(scene, centre, ROOT / "docs" / "images" / "slicer-screenshot.png")


def write_screenshot(scene: Scene, centre, path: Path) -> None:
    """The Red view's blended slice (CT + Grad-CAM), rendered offscreen by vtkMRMLSliceLogic,
    as the Extensions Index screenshot (DEEPRADSCORE_WRITE_SCREENSHOT=1 regenerates it)."""
    from PIL import Image

    scene.slice_node.SetDimensions(720, 720, 1)
    scene.slice_logic.FitSliceToAll()
    scene.slice_node.SetFieldOfView(240.0, 240.0, scene.slice_node.GetFieldOfView()[2])
    scene.slice_node.JumpSliceByCentering(*centre)
    rgba = scene.blended_slice()
    scene.slice_node.SetDimensions(256, 256, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.flipud(rgba[..., :3]).astype(np.uint8)).save(path)


def test_same_result_with_a_non_identity_direction(small_case, tiny_bundle):
    image, mask = small_case
    results = []
    for direction in (None, PERMUTED):
        scene = Scene()
        img, msk = (image, mask) if direction is None else (with_direction(image, direction), with_direction(mask, direction))
        volume, segmentation, tumour = scene.add_case(img, msk)
        output = module.DeepRadScoreLogic().process(volume, segmentation, tumour, tiny_bundle, device="cpu")
        ring = mrml_images.segment_to_mask(segmentation, output.ringSegmentId, volume)
        results.append((output, sitk.GetArrayFromImage(ring)))
    (first, ring_a), (second, ring_b) = results
    assert np.array_equal(ring_a, ring_b)
    for endpoint, prediction in first.caseResult.predictions.items():
        other = second.caseResult.predictions[endpoint]
        assert other.probability == pytest.approx(prediction.probability, rel=1e-6)
        assert other.predicted_class == prediction.predicted_class
    np.testing.assert_allclose(sitk.GetArrayViewFromImage(second.caseResult.heatmaps["EGFR"]),
                               sitk.GetArrayViewFromImage(first.caseResult.heatmaps["EGFR"]), atol=1e-5)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob(module.TEMP_PREFIX + "*"))


def colour_tables(scene) -> list[str]:
    return sorted(scene.GetNthNodeByClass(i, "vtkMRMLColorTableNode").GetName()
                  for i in range(scene.GetNumberOfNodesByClass("vtkMRMLColorTableNode")))


def test_second_run_reuses_small_heatmaps_and_touches_only_our_views(small_case, tiny_bundle):
    image, mask = small_case
    scene = Scene()
    volume, segmentation, tumour = scene.add_case(image, mask)
    colours_before = colour_tables(scene.scene)
    logic = module.DeepRadScoreLogic()
    first = logic.process(volume, segmentation, tumour, tiny_bundle, device="cpu", heatmapOpacity=0.65)
    composite = scene.slice_logic.GetSliceCompositeNode()
    assert composite.GetForegroundOpacity() == pytest.approx(0.65)  # the parameter, not 0.4
    second = logic.process(volume, segmentation, tumour, tiny_bundle, device="cpu")
    # One set of heatmap nodes, reused, each one 160 x 160 slice.
    assert scene_outputs.heatmap_nodes(volume) == second.heatmapNodes == first.heatmapNodes
    assert sorted(second.heatmapNodes) == ["EGFR", "KRAS"]
    volumes = [scene.scene.GetNthNodeByClass(i, "vtkMRMLScalarVolumeNode")
               for i in range(scene.scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode"))]
    assert len(volumes) == 3  # the CT and two heatmaps
    ct_voxels = int(np.prod(volume.GetImageData().GetDimensions()))
    for node in second.heatmapNodes.values():
        assert node.GetImageData().GetDimensions() == (160, 160, 1)
        assert 160 * 160 < ct_voxels
    # No "<segmentation>_ColorTable" per export: only the module's one heat colour table.
    assert colour_tables(scene.scene) == sorted(colours_before + [scene_outputs.HEAT_COLOR_TABLE_NAME])
    # Segments as outlines while the heatmap is shown.
    display = segmentation.GetDisplayNode()
    assert not display.GetVisibility2DFill() and display.GetVisibility2DOutline()
    # A user's own fusion view (a second view with another foreground) keeps its opacity.
    pet = scene.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "PET")
    mrml_images.set_volume_from_image(pet, image)
    yellow_logic = slicer.vtkMRMLSliceLogic()
    yellow_logic.SetMRMLScene(scene.scene)
    yellow_logic.AddSliceNode("Yellow")
    yellow = yellow_logic.GetSliceCompositeNode()
    yellow.SetForegroundVolumeID(pet.GetID())
    yellow.SetForegroundOpacity(0.7)
    assert logic.setHeatmapOpacity(scene.scene, 0.2) == 1
    assert composite.GetForegroundOpacity() == pytest.approx(0.2)
    assert yellow.GetForegroundOpacity() == pytest.approx(0.7)


def test_background_worker_without_bundle_gives_features(small_case, tmp_path):
    from DeepRadScoreLib.features.radiomics import extract_case_features

    image, mask = small_case
    scene = Scene()
    volume, segmentation, tumour = scene.add_case(image, mask)
    logic = module.DeepRadScoreLogic()
    logic.temporaryRoot = str(tmp_path)
    job = logic.startBackground(volume, segmentation, tumour, None)
    assert len(leftovers(tmp_path)) == 1
    assert job.wait(timeout=300) == 0, job.error_message()
    assert job.fraction == 1.0
    output = logic.finishBackground(job)
    logic.closeEngine()
    assert leftovers(tmp_path) == []  # the CT and mask are gone
    # The worker's ring (computed once) is the ring segment, equal to the engine's ring.
    ring_segment = segmentation.GetSegmentation().GetSegment(output.ringSegmentId)
    assert ring_segment.GetName() == "Tumour peritumoral 3 mm"
    ring = mrml_images.segment_to_mask(segmentation, output.ringSegmentId, volume)
    assert np.array_equal(sitk.GetArrayViewFromImage(ring), sitk.GetArrayViewFromImage(peritumoral_ring(mask, 3.0)))
    assert output.predictionsTableNode is None and not output.heatmapNodes
    assert "deepradscore train" in output.message
    # auto in the worker's Python: the native backend ran (even where pyradiomics imports), and it
    # is said.
    assert output.radiomicsBackend.startswith("native (")
    assert output.message.endswith("radiomics: DeepRadScore's native backend (the default; the same numbers "
                                   "as pyradiomics).")
    table = output.featuresTableNode.GetTable()
    assert table.GetNumberOfRows() == 1702
    expected = extract_case_features(image, mask, peritumoral_ring(mask, 3.0))
    got = {table.GetValue(r, 0).ToString(): table.GetValue(r, 1).ToDouble() for r in range(table.GetNumberOfRows())}
    assert list(got) == list(expected)
    for name in ("tumor_original_shape_MeshVolume", "peritumoral_original_firstorder_Mean"):
        assert got[name] == pytest.approx(expected[name], rel=1e-9)


def test_worker_result_is_the_predict_json_format(small_case, tiny_bundle, tmp_path):
    """One result format: the worker's result.json holds what ``deepradscore predict -o`` writes
    for the same files (run both), and reads back as the same result."""
    from DeepRadScoreLib.pipelines.case import analyse_case
    from DeepRadScoreLib.model.bundle import Bundle
    from DeepRadScoreSlicerLib import worker

    image_path, mask_path = tmp_path / "image.nrrd", tmp_path / "mask.nrrd"
    sitk.WriteImage(small_case[0], str(image_path))
    sitk.WriteImage(small_case[1], str(mask_path))
    cli_json = tmp_path / "predict.json"
    cli = subprocess.Popen([sys.executable, "-m", "DeepRadScoreLib.cli.main", "predict", str(tiny_bundle),
                            str(image_path), str(mask_path), "-o", str(cli_json), "--device", "cpu"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    request = worker.RunRequest(image=str(image_path), mask=str(mask_path), output=str(tmp_path / "out"),
                                bundle=str(tiny_bundle), device="cpu")
    assert worker.run(request) == 0
    assert cli.wait(timeout=300) == 0, cli.stdout.read()
    document = json.loads((tmp_path / "out" / worker.RESULT_FILE).read_text())
    predicted = json.loads(cli_json.read_text())
    for key in ("predictions", "patch", "bundle", "note"):
        assert document[key] == predicted[key], key
    back, synthetic, thickness = worker.load_result(tmp_path / "out")
    assert thickness == 3.0 and synthetic is True
    bundle = Bundle.load(str(tiny_bundle), device="cpu")
    result = analyse_case(*small_case, bundle=bundle, device="cpu", heatmap_grid="patch")
    assert back.predictions == result.predictions
    assert back.features == pytest.approx(result.features)
    assert back.patch.to_dict() == result.patch.to_dict()
    for endpoint, heat in result.heatmaps.items():
        assert np.array_equal(sitk.GetArrayViewFromImage(back.heatmaps[endpoint]), sitk.GetArrayViewFromImage(heat))


def test_cancel_kills_the_worker_and_removes_its_files(phantom, tmp_path):
    scene, volume, segmentation, tumour, _ = phantom
    logic = module.DeepRadScoreLogic()
    logic.temporaryRoot = str(tmp_path)
    # The phantom's feature extraction alone takes tens of seconds: cancel it once it has begun.
    job = logic.startBackground(volume, segmentation, tumour, None)
    deadline = time.time() + 120
    while job.message == "starting the engine" and time.time() < deadline:
        time.sleep(0.1)
    assert job.poll() is None, "still running when cancelled"
    started = time.time()
    logic.discardBackground(job)
    assert job.poll() is not None and time.time() - started < 5
    assert job.process.returncode < 0  # killed by a signal, not finished
    assert leftovers(tmp_path) == []


def test_failed_start_leaves_no_files(small_case, tmp_path):
    image, mask = small_case
    scene = Scene()
    volume, segmentation, tumour = scene.add_case(image, mask)
    logic = module.DeepRadScoreLogic()
    logic.temporaryRoot = str(tmp_path)
    logic.enginePrefix = [str(tmp_path / "no-such-python")]
    with pytest.raises(OSError):
        logic.startBackground(volume, segmentation, tumour, None)
    assert leftovers(tmp_path) == []


def test_closing_the_scene_cancels_and_discards_the_job(phantom_paths, tmp_path):
    case = load_case(*phantom_paths)
    scene = Scene()
    volume, segmentation, tumour = scene.add_case(case.image, case.mask)
    logic = module.DeepRadScoreLogic()
    logic.temporaryRoot = str(tmp_path)
    job = logic.startBackground(volume, segmentation, tumour, None)
    scene.scene.Clear(0)  # what File > Close Scene does: StartCloseEvent first
    assert job.context["discarded"] and job.cancelled
    assert job.poll() is not None and job.process.returncode < 0
    assert leftovers(tmp_path) == []
    with pytest.raises(RuntimeError, match="discarded"):
        logic.finishBackground(job)


def test_second_background_run_reuses_the_engine_with_its_bundle(small_case, tiny_bundle, tmp_path):
    """One engine process stays alive across Runs with the bundle loaded; another
    bundle gets a new engine (the old one exits); closing ends it."""
    import shutil

    image, mask = small_case
    scene = Scene()
    volume, segmentation, tumour = scene.add_case(image, mask)
    logic = module.DeepRadScoreLogic()
    logic.temporaryRoot = str(tmp_path / "tmp")
    timings, engines = [], []
    for _ in range(2):
        started = time.monotonic()
        job = logic.startBackground(volume, segmentation, tumour, tiny_bundle, device="cpu")
        assert job.wait(timeout=300) == 0, job.error_message()
        timings.append(time.monotonic() - started)
        engines.append(job.engine)
        output = logic.finishBackground(job)
        assert sorted(output.heatmapNodes) == ["EGFR", "KRAS"]
        assert job.bundle_loads == 1  # loaded once, by the first run
        assert "load_bundle" not in output.caseResult.seconds
    assert engines[0] is engines[1] and engines[0].alive()
    print(f"background runs on the same bundle: {timings[0]:.1f} s, then {timings[1]:.1f} s")
    # A bundle rewritten in place (bundle.json changed) is reloaded, never served stale.
    meta = Path(tiny_bundle) / "bundle.json"
    stat = meta.stat()
    os.utime(meta, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    job = logic.startBackground(volume, segmentation, tumour, tiny_bundle, device="cpu")
    assert job.engine is engines[0]
    assert job.wait(timeout=300) == 0, job.error_message()
    assert job.bundle_loads == 2
    logic.finishBackground(job)

    other = tmp_path / "other-bundle"
    shutil.copytree(tiny_bundle, other)
    job = logic.startBackground(volume, segmentation, tumour, other, device="cpu")
    assert job.engine is not engines[0]
    assert engines[0].process.poll() == 0  # the old engine exited when its bundle was replaced
    assert job.wait(timeout=300) == 0, job.error_message()
    logic.finishBackground(job)
    engine = job.engine
    logic.closeEngine()
    assert engine.process.poll() == 0
    assert leftovers(tmp_path / "tmp") == []


def test_cancel_reaches_the_radiomics(small_case):
    """``cancel`` is looked at inside the radiomics, not only between the engine's steps."""
    from DeepRadScoreLib.errors import Cancelled

    image, mask = small_case
    scene = Scene()
    volume, segmentation, tumour = scene.add_case(image, mask)
    seen = []
    with pytest.raises(Cancelled):
        module.DeepRadScoreLogic().process(volume, segmentation, tumour, None,
                                           progressCallback=lambda f, m: seen.append((f, m)),
                                           cancel=lambda: any(0.05 < f < 0.8 for f, _ in seen))
    assert 0.05 < seen[-1][0] < 0.8, seen[-3:]  # stopped inside the radiomics
    assert segmentation.GetSegmentation().GetNumberOfSegments() == 1  # nothing added


def test_an_old_slicer_is_refused_up_front(monkeypatch):
    """Before anything is checked or installed. slicer-core has no ``slicer.app``; the one
    attribute the Logic reads from it is given here as Slicer 5.8 would report it."""
    import types

    monkeypatch.setattr(slicer, "app", types.SimpleNamespace(majorVersion=5, minorVersion=8), raising=False)
    logic = module.DeepRadScoreLogic()
    assert "5.10 or later" in logic.slicerVersionProblem()
    with pytest.raises(RuntimeError, match="5.10 or later"):
        logic.setupPythonRequirements(confirm=False)
    monkeypatch.setattr(slicer.app, "minorVersion", 10)
    assert logic.slicerVersionProblem() is None
    assert logic.setupPythonRequirements(confirm=False) is True  # everything is installed here
