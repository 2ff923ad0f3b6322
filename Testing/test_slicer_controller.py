"""The module's GUI paths, driven through its Qt-free controller on real MRML (slicer-core).

The widget (DeepRadScore.py) only forwards events to ``DeepRadScoreSlicerLib.controller`` and
shows what it reports; here a recording view stands in for the widget, and each path a
radiologist takes is run on the real IBSI phantom (CT A) and a real soft-tissue-sarcoma CT
(STS_019, CT B) from ../shared/data, with real background engine processes. Each test asserts
the nodes, tables and files that result. The radiomics run on the native backend here (the same
numbers as pyradiomics; test_slicer_native.py compares them), which keeps each Run to seconds.
"""
from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "DeepRadScore"))

import slicer  # noqa: E402  (slicer-core)

from conftest import PHANTOM, STS  # noqa: E402
from DeepRadScoreLib.features.settings import SettingsRequest  # noqa: E402
from DeepRadScoreLib.io.images import load_case  # noqa: E402
from DeepRadScoreSlicerLib import background, mrml_images, scene_outputs  # noqa: E402
from DeepRadScoreSlicerLib.controller import DeepRadScoreController, RunInputs, View  # noqa: E402
from DeepRadScoreSlicerLib.logic import DeepRadScoreLogic  # noqa: E402

RUN_TIMEOUT_S = 300


class RecordingView(View):
    """What the widget would show, recorded."""

    def __init__(self):
        self.statuses: list[str] = []
        self.errors: list[tuple] = []
        self.outputs: list = []

    def setStatus(self, text):
        self.statuses.append(text)

    def showError(self, title, message, detail=""):
        self.errors.append((title, message, detail))

    def showOutput(self, output):
        self.outputs.append(output)

    def confirm(self, text):
        raise AssertionError(f"nothing should need installing here: {text}")


class Scene:
    """A scene as Slicer's application sets it up: colours and two slice views (Red, Yellow)."""

    def __init__(self):
        self.scene = slicer.vtkMRMLScene()
        self.colors = slicer.vtkMRMLColorLogic()
        self.colors.SetMRMLScene(self.scene)
        self.slice_logics = []
        for name in ("Red", "Yellow"):
            logic = slicer.vtkMRMLSliceLogic()
            logic.SetMRMLScene(self.scene)
            logic.AddSliceNode(name).SetDimensions(128, 128, 1)
            self.slice_logics.append(logic)

    def composites(self):
        return [logic.GetSliceCompositeNode() for logic in self.slice_logics]

    def add_case(self, image, mask, name):
        volume = self.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
        mrml_images.set_volume_from_image(volume, image)
        volume.CreateDefaultDisplayNodes()
        labelmap = self.scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "GTV")
        mrml_images.set_volume_from_image(labelmap, sitk.Cast(mask, sitk.sitkUInt8))
        segmentation = self.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", f"{name} segmentation")
        segmentation.SetReferenceImageGeometryParameterFromVolumeNode(volume)
        assert slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(labelmap, segmentation)
        self.scene.RemoveNode(labelmap)
        return volume, segmentation, segmentation.GetSegmentation().GetNthSegmentID(0)

    def count(self, class_name):
        return self.scene.GetNumberOfNodesByClass(class_name)

    def tables(self):
        return [self.scene.GetNthNodeByClass(i, "vtkMRMLTableNode") for i in range(self.count("vtkMRMLTableNode"))]


def read(folder: Path):
    case = load_case(folder / "image.nii.gz", folder / "mask.nii.gz")
    return case.image, case.mask


@pytest.fixture(scope="module")
def ct_a():
    return read(PHANTOM / "nifti")


@pytest.fixture(scope="module")
def ct_b():
    return read(STS / "STS_019")


@pytest.fixture()
def temp_root(tmp_path):
    root = tmp_path / "slicer-temp"
    root.mkdir()
    return root


def controller_for(temp_root, view=None, **options) -> DeepRadScoreController:
    logic = DeepRadScoreLogic()
    logic.temporaryRoot = str(temp_root)
    return DeepRadScoreController(logic, view or RecordingView(), **options)


def inputs(volume, segmentation, segment, **options) -> RunInputs:
    return RunInputs(volume, segmentation, segment, radiomicsBackend="native", **options)


def finish(controller: DeepRadScoreController, timeout=RUN_TIMEOUT_S) -> None:
    """What the widget's timer does: poll until the job ends."""
    deadline = time.monotonic() + timeout
    while controller.poll():
        assert time.monotonic() < deadline, f"the run did not finish: {controller.job.message}"
        time.sleep(0.05)


def features_of(table) -> dict:
    values = table.GetTable().GetColumn(1)
    return {table.GetCellText(r, 0): values.GetValue(r) for r in range(table.GetNumberOfRows())}


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory):
    """A real bundle from the real training code, on 12 rows made from CT B's features and
    patch with noise (seconds): enough for every model to be fitted and saved; marked synthetic."""
    from DeepRadScoreLib.pipelines.case import analyse_case
    from DeepRadScoreLib.deep.ensemble import DeepConfig
    from DeepRadScoreLib.pipelines.train import fit_bundle

    base = analyse_case(*read(STS / "STS_019"), settings=SettingsRequest(backend="native"))
    rng = np.random.default_rng(0)
    n = 12
    names = list(base.features)
    values = np.array([base.features[k] for k in names], dtype=float)
    y = np.array([0.0, 1.0] * (n // 2))
    rows = values[None, :] * (1 + 0.1 * rng.standard_normal((n, len(values))))
    rows[:, names.index("tumor_original_firstorder_Mean")] += 40 * y
    features = pd.DataFrame(rows, columns=names, index=[f"case{i}" for i in range(n)])
    patches = np.repeat(base.patch.hu[None], n, axis=0) + rng.normal(0, 30, (n, 160, 160)).astype(np.float32)
    patches[y == 1] += 60
    labels = pd.DataFrame({"EGFR": y}, index=features.index)
    config = DeepConfig(backbone="densenet121", mode="multitask", folds=1, epochs=1, batch_size=6, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no ImageNet weights offline: random init, as warned
        bundle = fit_bundle(features, patches, labels, config.check(), cv_repeats=1, data={"synthetic": True})
    path = tmp_path_factory.mktemp("bundle") / "tiny"
    bundle.save(path)
    return path


# -- the paths ----------------------------------------------------------------------------------


def test_a_run_shows_the_features_and_leaves_no_files(ct_a, temp_root):
    scene = Scene()
    volume, segmentation, segment = scene.add_case(*ct_a, "Phantom")
    view = RecordingView()
    controller = controller_for(temp_root, view)
    controller.enter()
    assert controller.run(inputs(volume, segmentation, segment))
    assert controller.running and list(temp_root.iterdir())  # the CT went to the temp folder
    finish(controller)
    output = view.outputs[-1]
    assert output.featuresTableNode.GetNumberOfRows() == 1702
    assert output.featuresTableNode.GetName() == "Phantom Deep-RadScore features"
    assert output.featuresTableNode.GetAttribute(scene_outputs.TABLE_OF_ATTRIBUTE) == \
        scene_outputs.output_key(volume, segmentation, segment)
    assert output.predictionsTableNode is None
    ring = segmentation.GetSegmentation().GetSegment(output.ringSegmentId)
    assert ring.GetName().endswith("peritumoral 3 mm")
    assert "native backend" in view.statuses[-1] and view.errors == []
    assert list(temp_root.iterdir()) == []
    controller.cleanup()


def test_leaving_the_module_during_a_run_keeps_its_result(ct_a, temp_root):
    scene = Scene()
    volume, segmentation, segment = scene.add_case(*ct_a, "Phantom")
    view = RecordingView()
    controller = controller_for(temp_root, view)
    controller.enter()
    assert controller.run(inputs(volume, segmentation, segment))
    controller.exit()  # the user opens another module; the widget's timer keeps ticking
    finish(controller)
    controller.enter()
    assert view.errors == []
    assert controller.output is not None and controller.output.featuresTableNode.GetNumberOfRows() == 1702
    assert controller.output.featuresTableNode.GetScene() is scene.scene
    assert list(temp_root.iterdir()) == []  # the patient's CT is not left behind
    # Coming back to the same case shows that result.
    assert controller.inputsChanged(inputs(volume, segmentation, segment)) is controller.output
    controller.cleanup()


def test_runs_on_two_cts_keep_each_cts_own_tables(ct_a, ct_b, temp_root):
    scene = Scene()
    a = scene.add_case(*ct_a, "Phantom")
    b = scene.add_case(*ct_b, "STS_019")
    view = RecordingView()
    controller = controller_for(temp_root, view)
    controller.run(inputs(*a))
    finish(controller)
    table_a = view.outputs[-1].featuresTableNode
    features_a = features_of(table_a)
    controller.inputsChanged(inputs(*b))
    assert view.outputs[-1] is None  # B has no results yet: A's are not shown as B's
    controller.run(inputs(*b))
    finish(controller)
    table_b = view.outputs[-1].featuresTableNode
    assert table_b is not table_a
    assert table_a.GetName() == "Phantom Deep-RadScore features"
    assert table_b.GetName() == "STS_019 Deep-RadScore features"
    assert features_of(table_a) == features_a
    assert features_of(table_b) != features_a
    # Choosing A again shows A's table.
    assert controller.inputsChanged(inputs(*a)).featuresTableNode is table_a
    # A console caller (or the old widget) handing A's table to B's run does not get it renamed.
    logic = controller.logic
    job = logic.startBackground(*b, radiomicsBackend="native")
    assert job.wait(RUN_TIMEOUT_S) == 0, job.error_message()
    again = logic.finishBackground(job, featuresTableNode=table_a)
    assert again.featuresTableNode is table_b
    assert table_a.GetName() == "Phantom Deep-RadScore features" and features_of(table_a) == features_a
    assert len(scene.tables()) == 2
    controller.cleanup()


def test_choosing_another_ct_during_a_run_keeps_each_result_with_its_ct(ct_a, ct_b, temp_root):
    scene = Scene()
    a = scene.add_case(*ct_a, "Phantom")
    b = scene.add_case(*ct_b, "STS_019")
    view = RecordingView()
    controller = controller_for(temp_root, view)
    controller.inputsChanged(inputs(*b))
    controller.run(inputs(*b))
    controller.inputsChanged(inputs(*a))  # the user looks at A while B runs
    finish(controller)
    assert view.outputs[-1] is None  # A has no results; B's are not shown as A's
    assert "The Run on STS_019 has finished" in view.statuses[-1]
    table_b = controller.inputsChanged(inputs(*b)).featuresTableNode
    assert table_b.GetName() == "STS_019 Deep-RadScore features" and table_b.GetNumberOfRows() == 1702
    assert scene.count("vtkMRMLTableNode") == 1 and list(temp_root.iterdir()) == []
    controller.cleanup()


def test_two_runs_on_the_same_ct_reuse_their_nodes(ct_b, temp_root):
    scene = Scene()
    case = scene.add_case(*ct_b, "STS_019")
    view = RecordingView()
    controller = controller_for(temp_root, view)
    controller.run(inputs(*case))
    finish(controller)
    first = view.outputs[-1]
    counts = {c: scene.count(c) for c in ("vtkMRMLTableNode", "vtkMRMLScalarVolumeNode", "vtkMRMLColorTableNode")}
    segments = case[1].GetSegmentation().GetNumberOfSegments()
    nodes = scene.scene.GetNumberOfNodes()
    controller.run(inputs(*case))
    finish(controller)
    second = view.outputs[-1]
    assert second.featuresTableNode is first.featuresTableNode
    assert case[1].GetSegmentation().GetNumberOfSegments() == segments
    assert {c: scene.count(c) for c in counts} == counts
    assert scene.scene.GetNumberOfNodes() == nodes
    assert controller.logic._engine.runs == 2  # the kept engine served both
    controller.cleanup()


def test_closing_the_scene_during_a_run_cancels_it_cleanly(ct_a, temp_root):
    scene = Scene()
    case = scene.add_case(*ct_a, "Phantom")
    view = RecordingView()
    controller = controller_for(temp_root, view)
    # What the widget does: the scene's StartCloseEvent goes to the controller.
    tag = scene.scene.AddObserver(slicer.vtkMRMLScene.StartCloseEvent, lambda caller, event: controller.sceneStartClose())
    controller.run(inputs(*case))
    engine = controller.logic._engine
    scene.scene.Clear(0)
    assert not controller.running
    assert controller.poll() is False  # a later timer tick finds nothing to do
    assert view.errors == []
    assert view.statuses[-1] == "Cancelled: the scene was closed."
    assert list(temp_root.iterdir()) == []
    assert scene.count("vtkMRMLTableNode") == 0
    assert engine.process.poll() is not None  # the engine running the job is gone
    scene.scene.RemoveObserver(tag)  # as the widget's cleanup does (VTKObservationMixin)
    controller.cleanup()


def test_cancel_stops_the_engine_and_leaves_nothing(ct_a, temp_root):
    scene = Scene()
    case = scene.add_case(*ct_a, "Phantom")
    view = RecordingView()
    controller = controller_for(temp_root, view)
    tables = scene.count("vtkMRMLTableNode")
    controller.run(inputs(*case))
    engine = controller.logic._engine
    controller.cancel()
    assert not controller.running and view.statuses[-1] == "Cancelled."
    assert engine.process.poll() is not None
    assert list(temp_root.iterdir()) == []
    assert scene.count("vtkMRMLTableNode") == tables and view.errors == []
    assert controller.poll() is False
    # The next Run starts a new engine and works.
    controller.run(inputs(*case))
    finish(controller)
    assert view.outputs[-1].featuresTableNode.GetNumberOfRows() == 1702
    controller.cleanup()


def test_changing_the_bundle_between_runs(ct_b, tiny_bundle, temp_root):
    scene = Scene()
    case = scene.add_case(*ct_b, "STS_019")
    view = RecordingView()
    controller = controller_for(temp_root, view)
    controller.run(inputs(*case, bundlePath=str(tiny_bundle)))
    finish(controller)
    assert view.errors == []
    with_bundle = view.outputs[-1]
    assert with_bundle.predictionsTableNode.GetNumberOfRows() == 1
    assert set(with_bundle.heatmapNodes) == {"EGFR"}
    engine = controller.logic._engine
    assert engine.bundle_path == str(tiny_bundle)
    controller.bundleChanged("")  # the user clears the bundle box: the engine holding it goes
    assert controller.logic._engine is None and engine.process.poll() is not None
    controller.run(inputs(*case, bundlePath=""))
    finish(controller)
    features_only = view.outputs[-1]
    assert features_only.featuresTableNode is with_bundle.featuresTableNode
    assert features_only.predictionsTableNode is None
    # The first bundle's predictions are not left looking like this run's.
    assert with_bundle.predictionsTableNode.GetScene() is None
    assert controller.inputsChanged(inputs(*case)).predictionsTableNode is None
    assert list(temp_root.iterdir()) == []
    controller.cleanup()


def block_in_the_engine(folder: Path, monkeypatch, names) -> None:
    """Packages whose import raises ImportError in the engine processes started from now on."""
    import subprocess

    for name in names:
        (folder / name).mkdir(parents=True)
        (folder / name / "__init__.py").write_text(f"raise ImportError('{name} is blocked in this test')\n")
    monkeypatch.syspath_prepend(str(folder))  # the worker's PYTHONPATH is this sys.path
    probe = subprocess.run([sys.executable, "-c", f"import {names[0]}"], env=background.child_environment(),
                           capture_output=True, text=True)
    assert f"{names[0]} is blocked" in probe.stderr  # the block works in a child process


def test_a_features_only_run_needs_neither_torch_nor_scikit_learn(ct_b, temp_root, tmp_path, monkeypatch):
    """The worker process cannot import torch, torchvision, scikit-learn, skops or onnxruntime."""
    block_in_the_engine(tmp_path / "blocked", monkeypatch, ["torch", "torchvision", "sklearn", "skops", "onnxruntime"])
    scene = Scene()
    case = scene.add_case(*ct_b, "STS_019")
    view = RecordingView()
    controller = controller_for(temp_root, view)
    assert controller.run(inputs(*case))  # nothing to install for a features-only Run
    finish(controller)
    assert view.errors == [], view.errors
    assert view.outputs[-1].featuresTableNode.GetNumberOfRows() == 1702
    controller.cleanup()


def test_a_run_with_an_onnx_bundle_needs_no_torch(ct_b, tiny_bundle, temp_root, tmp_path, monkeypatch):
    """A bundle whose bundle.json lists ONNX networks runs with torch (and scikit-learn, where
    every classifier has its numpy inference file) blocked in the engine."""
    from DeepRadScoreSlicerLib import dependencies as deps

    needs = deps.run_needs(tiny_bundle)
    assert deps.ONNX in needs.groups and deps.TORCH not in needs.groups, needs
    blocked = ["torch", "torchvision"] + ([] if deps.SKLEARN in needs.groups else ["sklearn", "skops"])
    block_in_the_engine(tmp_path / "blocked", monkeypatch, blocked)
    scene = Scene()
    case = scene.add_case(*ct_b, "STS_019")
    view = RecordingView()
    controller = controller_for(temp_root, view)
    assert controller.run(inputs(*case, bundlePath=str(tiny_bundle)))
    finish(controller)
    assert view.errors == [], view.errors
    assert view.outputs[-1].predictionsTableNode.GetNumberOfRows() == 1
    controller.cleanup()


def test_what_the_tiny_bundle_run_installs(tiny_bundle):
    """Read from the real bundle.json the engine wrote: numpy inference files for every
    classifier (no scikit-learn), and torch exactly when it lists no ONNX network."""
    from DeepRadScoreSlicerLib import dependencies as deps

    needs = deps.run_needs(tiny_bundle)
    assert deps.SKLEARN not in needs.groups and not needs.torchvision  # densenet121 is the engine's own
    onnx = any(name.endswith(".onnx") for name in deps.bundle_files(tiny_bundle)["files"])
    assert needs.groups == ((deps.FEATURES, deps.ONNX) if onnx else (deps.FEATURES, deps.TORCH))


def test_an_idle_engine_is_released(ct_b, temp_root):
    scene = Scene()
    case = scene.add_case(*ct_b, "STS_019")
    now = [0.0]
    controller = controller_for(temp_root, idleReleaseS=60.0, clock=lambda: now[0])
    controller.run(inputs(*case))
    finish(controller)
    engine = controller.logic._engine
    assert engine.alive()
    engine.idle_since = time.monotonic() - 30  # half the idle time: kept
    now[0] += 10
    controller.poll()
    assert controller.logic._engine is engine
    engine.idle_since = time.monotonic() - 61
    now[0] += 10
    controller.poll()
    assert controller.logic._engine is None and engine.process.poll() is not None
    # "Release engine" with none running says so; after a Run it ends that one.
    assert controller.releaseEngine() is False
    controller.run(inputs(*case))
    finish(controller)
    engine = controller.logic._engine
    assert controller.releaseEngine() is True and engine.process.poll() is not None
    controller.cleanup()


def test_an_engine_exception_is_shown_with_its_message(temp_root, tmp_path):
    """An exception inside the kept engine: its message is shown, its traceback logged."""
    from DeepRadScoreSlicerLib.worker import RunRequest

    engine = background.EngineProcess()
    try:
        image = tmp_path / "image.nrrd"
        sitk.WriteImage(sitk.Image([8, 8, 8], sitk.sitkInt16), str(image))
        folder = tmp_path / "not-a-mask"  # SimpleITK raises a RuntimeError reading a folder
        folder.mkdir()
        job = background.EngineJob(engine, RunRequest(image=str(image), mask=str(folder), output=str(tmp_path / "o")))
        assert job.wait(RUN_TIMEOUT_S) == 1
        message = job.error_message()
        assert message.startswith("RuntimeError: ") and "out of memory" not in message
        assert job.traceback().startswith("Traceback (most recent call last)")
        assert engine.alive()  # the engine survives a failed request
    finally:
        engine.close()


def test_an_engine_that_dies_is_one_error_and_the_next_run_works(ct_b, temp_root):
    import os
    import signal

    scene = Scene()
    case = scene.add_case(*ct_b, "STS_019")
    view = RecordingView()
    controller = controller_for(temp_root, view)
    controller.run(inputs(*case))
    os.kill(controller.logic._engine.process.pid, signal.SIGKILL)  # e.g. out of memory
    finish(controller)
    assert len(view.errors) == 1, (view.statuses, view.outputs)
    title, message, detail = view.errors[0]
    assert title == "Deep-RadScore failed." and "killed by signal 9" in message
    assert view.statuses[-1].startswith("Failed: ") and list(temp_root.iterdir()) == []
    assert scene.count("vtkMRMLTableNode") == 0
    controller.run(inputs(*case))
    finish(controller)
    assert view.outputs[-1].featuresTableNode.GetNumberOfRows() == 1702
    controller.cleanup()


def test_the_ct_goes_to_the_engine_in_its_own_type_compressed(ct_b, temp_root):
    image, mask = ct_b
    hu = sitk.Cast(sitk.Round(image), sitk.sitkInt16)
    scene = Scene()
    volume, segmentation, segment = scene.add_case(hu, mask, "STS_019 int16")
    logic = DeepRadScoreLogic()
    logic.temporaryRoot = str(temp_root)
    logic.keepEngine = False
    job = logic.startBackground(volume, segmentation, segment, radiomicsBackend="native")
    try:
        written = Path(job.request.image)
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(written))
        reader.ReadImageInformation()
        assert reader.GetPixelID() == sitk.sitkInt16
        header = written.read_bytes()[:400].split(b"\n\n")[0].decode()
        assert "encoding: gzip" in header and "type: short" in header
        assert written.stat().st_size < int(np.prod(hu.GetSize())) * 2  # under the raw int16 size
        assert "image" not in job.context and job.context["geometry"].GetSize() == (1, 1, 1)
        assert job.wait(RUN_TIMEOUT_S) == 0, job.error_message()
        output = logic.finishBackground(job)
    finally:
        logic.discardAll()
    # The same features as the float32 CT of the same HU values.
    from DeepRadScoreLib.pipelines.case import analyse_case

    expected = analyse_case(sitk.Cast(hu, sitk.sitkFloat32), mask, settings=SettingsRequest(backend="native")).features
    got = features_of(output.featuresTableNode)
    assert got.keys() == expected.keys()
    assert all(got[k] == expected[k] or (np.isnan(got[k]) and np.isnan(expected[k])) for k in got)
    assert list(temp_root.iterdir()) == []


def test_the_overlay_goes_only_to_views_of_this_ct_and_is_restored(ct_a, ct_b):
    scene = Scene()
    a, _, _ = scene.add_case(*ct_a, "Phantom")
    b, _, _ = scene.add_case(*ct_b, "STS_019")
    pet = scene.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "PET")
    red, yellow = scene.composites()
    red.SetBackgroundVolumeID(a.GetID())       # a PET fusion over A in Red
    red.SetForegroundVolumeID(pet.GetID())
    red.SetForegroundOpacity(0.7)
    yellow.SetBackgroundVolumeID(b.GetID())    # B in Yellow, nothing over it
    heat = scene.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "STS_019 Grad-CAM EGFR")
    heat.SetAttribute(scene_outputs.HEATMAP_OF_ATTRIBUTE, b.GetID())
    changed = scene_outputs.show_overlay(scene.scene, b, heat, 0.4)
    assert changed == [yellow]
    assert (red.GetBackgroundVolumeID(), red.GetForegroundVolumeID(), red.GetForegroundOpacity()) == \
        (a.GetID(), pet.GetID(), 0.7)
    assert (yellow.GetBackgroundVolumeID(), yellow.GetForegroundVolumeID()) == (b.GetID(), heat.GetID())
    assert scene_outputs.hide_overlay(scene.scene) == 1
    assert (yellow.GetBackgroundVolumeID(), yellow.GetForegroundVolumeID()) == (b.GetID(), None)
    assert red.GetForegroundVolumeID() == pet.GetID()
    # A CT no view shows gets every view, and each gets back what it showed.
    c = scene.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "other")
    heat.SetAttribute(scene_outputs.HEATMAP_OF_ATTRIBUTE, c.GetID())
    assert scene_outputs.show_overlay(scene.scene, c, heat, 0.4) == [red, yellow]
    scene_outputs.hide_overlay(scene.scene)
    assert (red.GetBackgroundVolumeID(), red.GetForegroundVolumeID(), red.GetForegroundOpacity()) == \
        (a.GetID(), pet.GetID(), 0.7)
    assert yellow.GetBackgroundVolumeID() == b.GetID() and yellow.GetForegroundVolumeID() is None
