"""Deep-RadScore 3D Slicer module: Module, parameter node, Widget and Test.

The work is done by :class:`DeepRadScoreSlicerLib.logic.DeepRadScoreLogic` (slicer and vtk,
no qt), re-exported here because ``import DeepRadScore; DeepRadScore.DeepRadScoreLogic()`` is
the documented console API. The run state and every decision of the GUI live in
:class:`DeepRadScoreSlicerLib.controller.DeepRadScoreController` (no qt either, tested on real
MRML): the Widget is a thin view that wires the .ui to it, forwards events (enter, exit, Run,
Cancel, Release engine, scene close, a change of CT, segment or bundle, its timer's tick) and
shows what it reports. The engine runs in a background process that the controller polls from
the Widget's QTimer, so Slicer stays responsive and Cancel really stops it.

Supported: 3D Slicer 5.10 and later (checked up front by the Logic). Nothing heavy is imported
at module load. The first Run installs only what it needs, after one confirmation: a
features-only Run the radiomics packages, a bundle with ONNX networks onnxruntime, a bundle
without them PyTorch (through the PyTorch extension). pyradiomics is optional: the radiomics run
on SlicerRadiomics' pyradiomics where it is installed, else on the engine's native backend (same
numbers; e.g. on macOS, where SlicerRadiomics has no build), and the Run's message says which.
"""
from __future__ import annotations

import logging
import os
from typing import Annotated

import qt
import vtk

import slicer
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (ScriptedLoadableModule, ScriptedLoadableModuleLogic,
                                           ScriptedLoadableModuleTest, ScriptedLoadableModuleWidget)
from slicer.util import VTKObservationMixin

from DeepRadScoreLib import ENDPOINTS
from DeepRadScoreSlicerLib.controller import DeepRadScoreController, RunInputs, View, bundle_folder
from DeepRadScoreLib.features.settings import DEFAULT_THICKNESS_MM, MAX_THICKNESS_MM, MIN_THICKNESS_MM
from DeepRadScoreSlicerLib.logic import DeepRadScoreLogic, DeepRadScoreOutput  # noqa: F401

# The IBSI CT radiomics phantom: one NSCLC patient's CT and GTV (CC BY-NC 3.0, IBSI data sets).
SAMPLE_DATA_BASE = "https://github.com/theibsi/data_sets/raw/master/ibsi_1_ct_radiomics_phantom/nifti"
SAMPLE_IMAGE_SHA256 = "909129fdf99d5f5fd17bc568b1834d31edce8663ea6746c6020720bfc1d7bbcb"
SAMPLE_MASK_SHA256 = "0e9243e473b1255c60e6460df465d0b07b65436d6e0c691fe3d17bca0594ae78"


#
# DeepRadScore
#


class DeepRadScore(ScriptedLoadableModule):
    """Module description shown in Slicer."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("Deep-RadScore")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Quantification")]
        self.parent.dependencies = []
        self.parent.contributors = ["DeepRadScore developers (DeepRadScore project)"]
        self.parent.helpText = _("""
Deep-RadScore for NSCLC CT (Zhang et al., Biomarker Research 2024): radiomics of the tumour and
its 3 mm peritumoral ring, deep features of the largest axial tumour slice, fused per endpoint
(LVI, PI, T4, EGFR, KRAS, ALK, TP53, PIK3CA, ROS1, PD-L1), with a Grad-CAM heatmap over the CT.
Predictions need a model bundle trained with <code>deepradscore train</code> on your own cohort:
no clinically validated model ships with this module, and the demo's bundle is trained on
synthetic data and means nothing clinically. Needs 3D Slicer 5.10 or later; the first Run installs
what it needs (PyTorch, through the PyTorch extension, only for a bundle without ONNX networks).
The radiomics use the SlicerRadiomics extension's pyradiomics when it is installed and
otherwise Deep-RadScore's native backend, which computes the same features (so the module also
runs where SlicerRadiomics has no build, such as macOS); the Run's message says which one ran.
See <a href="https://github.com/deepradscore/SlicerDeepRadScore#3d-slicer">the documentation</a>.
""")
        self.parent.acknowledgementText = _("""
Implements the method of Zhang et al., "Deep-RadScore", Biomarker Research 2024. Built on
PyRadiomics, PyTorch and 3D Slicer. Sample data: the IBSI CT radiomics phantom (CC BY-NC 3.0).
""")
        slicer.app.connect("startupCompleted()", registerSampleData)


def registerSampleData():
    """The IBSI NSCLC CT phantom and its GTV, so a user can try the module at once."""
    import SampleData

    iconsPath = os.path.join(os.path.dirname(__file__), "Resources", "Icons")
    SampleData.SampleDataLogic.registerCustomSampleDataSource(
        category="Deep-RadScore",
        sampleName="IBSI NSCLC CT phantom",
        thumbnailFileName=os.path.join(iconsPath, "DeepRadScore.png"),
        uris=[f"{SAMPLE_DATA_BASE}/image/phantom.nii.gz", f"{SAMPLE_DATA_BASE}/mask/mask.nii.gz"],
        fileNames=["IBSI-CT-phantom.nii.gz", "IBSI-CT-phantom-GTV.nii.gz"],
        nodeNames=["IBSI CT phantom", "IBSI CT phantom GTV"],
        checksums=[f"SHA256:{SAMPLE_IMAGE_SHA256}", f"SHA256:{SAMPLE_MASK_SHA256}"],
        loadFileType=["VolumeFile", "SegmentationFile"],
    )


#
# DeepRadScoreParameterNode
#


@parameterNodeWrapper
class DeepRadScoreParameterNode:
    """GUI state kept in the scene (saved with it).

    inputVolume, segmentation - the CT and the segmentation holding the tumour segment.
    tumorSegmentId - the tumour segment's ID in ``segmentation``.
    bundlePath - model bundle folder ("" = features only, no predictions). A string, synced by
        the Widget: a ``pathlib.Path`` parameter shows an empty path as ".".
    endpoints - endpoints to predict (empty = all of the bundle's).
    ringThicknessMm - peritumoral ring thickness.
    heatmapOpacity - Grad-CAM foreground opacity in the slice views.
    (A Run's tables are found by the CT and segment they are tagged with, not kept here.)
    """

    inputVolume: vtkMRMLScalarVolumeNode
    segmentation: vtkMRMLSegmentationNode
    tumorSegmentId: str = ""
    bundlePath: str = ""
    endpoints: list[str]
    ringThicknessMm: Annotated[float, WithinRange(MIN_THICKNESS_MM, MAX_THICKNESS_MM)] = DEFAULT_THICKNESS_MM
    heatmapOpacity: Annotated[float, WithinRange(0.0, 1.0)] = 0.4


class DeepRadScoreParameterLogic(ScriptedLoadableModuleLogic):
    """The scene's one Deep-RadScore parameter node (the work is DeepRadScoreLogic's)."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self.moduleName = "DeepRadScore"

    def getParameterNode(self):
        return DeepRadScoreParameterNode(super().getParameterNode())


#
# DeepRadScoreWidget
#


class _PanelView(View):
    """What the controller reports, shown in the panel (no event processing in these: they may
    run inside a scene event)."""

    def __init__(self, widget: "DeepRadScoreWidget") -> None:
        self.widget = widget
        self._installDialog = None

    def setStatus(self, text: str) -> None:
        self.widget.ui.statusLabel.text = text
        slicer.util.showStatusMessage(text, 5000)

    def setProgress(self, fraction: float, message: str) -> None:
        self.widget.ui.progressBar.setValue(int(round(100 * fraction)))
        self.widget.ui.statusLabel.text = message

    def showError(self, title: str, message: str, detail: str = "") -> None:
        slicer.util.errorDisplay(f"{title}\n\n{message}", detailedText=detail or None)

    def showOutput(self, output) -> None:
        self.widget.showOutput(output)

    def updateState(self) -> None:
        self.widget.updateButtons()

    def confirm(self, text: str) -> bool:
        return slicer.util.confirmOkCancelDisplay(text, windowTitle="Deep-RadScore")

    def installProgress(self, index: int, count: int, requirement: str) -> bool:
        # Slicer 5.10 (5.12's pip_ensure shows its own dialog): one package at a time, with a
        # dialog naming it, cancellable between packages.
        if self._installDialog is None:
            self._installDialog = qt.QProgressDialog(_("Installing Python packages..."), _("Cancel"), 0, count,
                                                     slicer.util.mainWindow())
            self._installDialog.windowTitle = "Deep-RadScore"
            self._installDialog.minimumDuration = 0
            self._installDialog.setWindowModality(qt.Qt.WindowModal)
        dialog = self._installDialog
        if index >= count or dialog.wasCanceled:
            cancelled = dialog.wasCanceled
            dialog.close()
            self._installDialog = None
            return not cancelled
        dialog.setLabelText(_("Installing {requirement} ({index} of {count})...").format(
            requirement=requirement, index=index + 1, count=count))
        dialog.setValue(index)
        slicer.app.processEvents()  # paint the dialog and take a Cancel click (no scene event here)
        return not dialog.wasCanceled


class DeepRadScoreWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The module panel: wires the .ui and the parameter node to the controller."""

    POLL_INTERVAL_MS = 200
    IDLE_INTERVAL_MS = 5000

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self.controller = None
        self._parameterLogic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._syncing = False
        self._timer = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/DeepRadScore.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        # The engine's one thickness range, so the box never offers what the engine refuses.
        self.ui.ringThicknessSpinBox.setRange(MIN_THICKNESS_MM, MAX_THICKNESS_MM)

        self.logic = DeepRadScoreLogic()
        self.controller = DeepRadScoreController(self.logic, _PanelView(self))
        self._parameterLogic = DeepRadScoreParameterLogic()
        self._endpointBoxes = {endpoint: getattr(self.ui, f"endpoint{endpoint}CheckBox")
                               for endpoint in ENDPOINTS}
        # One timer for the panel's life: it follows a running job (and, slower, lets the
        # controller release an idle engine); it never blocks.
        self._timer = qt.QTimer()
        self._timer.setInterval(self.IDLE_INTERVAL_MS)
        self._timer.connect("timeout()", self.onTimer)
        self._timer.start()

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        self.ui.inputVolumeSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.onCaseChanged)
        self.ui.segmentationSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.onSegmentationChanged)
        self.ui.segmentSelector.connect("currentSegmentChanged(QString)", self.onSegmentChanged)
        self.ui.bundlePathLineEdit.connect("currentPathChanged(QString)", self.onBundlePathChanged)
        for box in self._endpointBoxes.values():
            box.connect("toggled(bool)", self.onEndpointsChanged)
        self.ui.createRingButton.connect("clicked(bool)", self.onCreateRingButton)
        self.ui.runButton.connect("clicked(bool)", self.onRunButton)
        self.ui.cancelButton.connect("clicked(bool)", self.controller.cancel)
        self.ui.releaseEngineButton.connect("clicked(bool)", self.controller.releaseEngine)
        self.ui.heatmapEndpointComboBox.connect("currentIndexChanged(int)", self.onHeatmapChanged)
        self.ui.heatmapVisibleCheckBox.connect("toggled(bool)", self.onHeatmapChanged)
        self.ui.heatmapOpacitySlider.connect("valueChanged(double)", self.onHeatmapOpacityChanged)

        self.ui.progressBar.setValue(0)
        self.ui.resultsCollapsibleButton.collapsed = True
        self.initializeParameterNode()

    def cleanup(self) -> None:
        # Slicer exits or the module is reloaded: stop any run and the kept engine process.
        if self._timer is not None:
            self._timer.stop()
        if self.controller is not None:
            self.controller.cleanup()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()
        self.controller.enter()

    def exit(self) -> None:
        # As Slicer's template: only the GUI is disconnected. A running job goes on and its
        # result is shown when it ends (the controller knows its CT and segment).
        self.controller.exit()
        self._disconnectParameterNode()

    def onSceneStartClose(self, caller, event) -> None:
        self.controller.sceneStartClose()
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    # -- the parameter node ------------------------------------------------------------------

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self._parameterLogic.getParameterNode())
        if not self._parameterNode.inputVolume:
            firstVolume = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if firstVolume:
                self._parameterNode.inputVolume = firstVolume
        if not self._parameterNode.segmentation:
            firstSegmentation = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLSegmentationNode")
            if firstSegmentation:
                self._parameterNode.segmentation = firstSegmentation

    def _disconnectParameterNode(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateButtons)

    def setParameterNode(self, inputParameterNode) -> None:
        self._disconnectParameterNode()
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            # Read the saved segment BEFORE connecting: connectGui sets the segmentation selector,
            # whose signal would otherwise overwrite tumorSegmentId with the first segment.
            savedSegmentId = self._parameterNode.tumorSegmentId
            self._syncing = True
            try:
                self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
                self._updateManualWidgets(savedSegmentId)
            finally:
                self._syncing = False
            self._parameterNode.tumorSegmentId = savedSegmentId
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateButtons)
            self.updateButtons()
            self.onCaseChanged()

    def _updateManualWidgets(self, segmentId: str) -> None:
        node = self._parameterNode
        self.ui.segmentSelector.setCurrentNode(node.segmentation)
        if segmentId:
            self.ui.segmentSelector.setCurrentSegmentID(segmentId)
        self.ui.bundlePathLineEdit.currentPath = bundle_folder(node.bundlePath)
        chosen = set(node.endpoints)
        for endpoint, box in self._endpointBoxes.items():
            box.checked = not chosen or endpoint in chosen

    def _inputs(self) -> RunInputs:
        node = self._parameterNode
        return RunInputs(node.inputVolume, node.segmentation, node.tumorSegmentId, bundle_folder(node.bundlePath),
                         list(node.endpoints), node.ringThicknessMm, node.heatmapOpacity)

    # -- what the user does ------------------------------------------------------------------

    def onSegmentationChanged(self, node) -> None:
        if self._syncing:
            return
        self.ui.segmentSelector.setCurrentNode(node)
        if self._parameterNode:
            # A segment ID means nothing in another segmentation: choose again.
            self._parameterNode.tumorSegmentId = self.ui.segmentSelector.currentSegmentID() or ""
        self.onCaseChanged()

    def onSegmentChanged(self, segmentId) -> None:
        if self._parameterNode and not self._syncing:
            self._parameterNode.tumorSegmentId = segmentId or ""
            self.onCaseChanged()

    def onCaseChanged(self, node=None) -> None:
        # Deferred: the parameter node takes the selector's new node in its own slot.
        qt.QTimer.singleShot(0, self._showCaseResults)

    def _showCaseResults(self) -> None:
        if self._parameterNode and not self._syncing:
            self.controller.inputsChanged(self._inputs())

    def onBundlePathChanged(self, path) -> None:
        if self._parameterNode and not self._syncing:
            self._parameterNode.bundlePath = bundle_folder(path)
            self.controller.bundleChanged(self._parameterNode.bundlePath)

    def onEndpointsChanged(self, checked=None) -> None:
        if self._parameterNode and not self._syncing:
            chosen = [e for e, box in self._endpointBoxes.items() if box.checked]
            self._parameterNode.endpoints = [] if len(chosen) == len(ENDPOINTS) else chosen

    def onCreateRingButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to create the peritumoral ring."), waitCursor=True):
            self.controller.createRing(self._inputs(), self._parameterNode.ringThicknessMm)

    def onRunButton(self) -> None:
        # No wait cursor: the controller may ask to install packages first.
        with slicer.util.tryWithErrorDisplay(_("Deep-RadScore failed to start.")):
            if self.controller.run(self._inputs()):
                self._timer.setInterval(self.POLL_INTERVAL_MS)

    def onTimer(self) -> None:
        running = self.controller.poll()
        self._timer.setInterval(self.POLL_INTERVAL_MS if running else self.IDLE_INTERVAL_MS)

    def onHeatmapChanged(self, value=None) -> None:
        endpoint = self.ui.heatmapEndpointComboBox.currentText
        if not self.ui.heatmapVisibleCheckBox.checked:
            self.controller.hideHeatmap()
        elif endpoint:
            self.controller.showHeatmap(endpoint, self.ui.heatmapOpacitySlider.value)

    def onHeatmapOpacityChanged(self, value) -> None:
        self.logic.setHeatmapOpacity(slicer.mrmlScene, value)

    # -- what the controller reports ---------------------------------------------------------

    def updateButtons(self, caller=None, event=None) -> None:
        node = self._parameterNode
        running = self.controller is not None and self.controller.running
        ready = bool(node) and self.controller.canRun(self._inputs())
        self.ui.createRingButton.enabled = bool(node and node.segmentation and node.tumorSegmentId) and not running
        self.ui.runButton.enabled = ready
        self.ui.cancelButton.enabled = running
        self.ui.releaseEngineButton.enabled = not running and self.controller.engineRunning()
        self.ui.runButton.toolTip = (_("Compute the ring, the 1,702 features and (with a bundle) the predictions")
                                     if ready or running else _("Select a CT volume, a segmentation and the tumour segment"))

    def showOutput(self, output) -> None:
        self.ui.resultsTableView.setMRMLTableNode(
            (output.predictionsTableNode or output.featuresTableNode) if output is not None else None)
        self.ui.heatmapEndpointComboBox.blockSignals(True)
        self.ui.heatmapEndpointComboBox.clear()
        for endpoint in (output.heatmapNodes if output is not None else {}):
            self.ui.heatmapEndpointComboBox.addItem(endpoint)
        self.ui.heatmapEndpointComboBox.blockSignals(False)
        self.ui.resultsCollapsibleButton.collapsed = output is None


#
# DeepRadScoreTest
#


class DeepRadScoreTest(ScriptedLoadableModuleTest):
    """Self-test inside Slicer on a generated case: ring, features, and the background worker.

    The extension build machines may lack what a features-only Run installs on its first Run
    (PyWavelets, PyYAML, pandas, threadpoolctl...): the features test then returns with a logged
    message saying so. pyradiomics is not needed: without it the features come from the native
    backend.
    """

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_RingEqualsEngine()
        self.setUp()
        self.test_FeaturesWithoutBundle()

    def _missingForFeatures(self) -> list[str]:
        from DeepRadScoreSlicerLib import dependencies as deps

        # Exactly what a features-only Run checks and installs (threadpoolctl, pandas, ...).
        return [m.describe() for m in deps.missing_requirements(deps.requirements(deps.run_needs("")))]

    def _generatedCase(self):
        """A 64 x 64 x 40 'CT' (lung-like noise, a soft-tissue sphere) and its segmentation."""
        import numpy as np
        import SimpleITK as sitk

        from DeepRadScoreSlicerLib import mrml_images

        rng = np.random.default_rng(0)
        k, j, i = np.indices((40, 64, 64))
        distance = np.sqrt(((i - 32) * 0.8) ** 2 + ((j - 32) * 0.8) ** 2 + ((k - 20) * 2.5) ** 2)
        hu = rng.normal(-850, 40, size=distance.shape).astype(np.float32)
        hu[distance <= 8] = rng.normal(30, 20, size=int((distance <= 8).sum()))
        image = sitk.GetImageFromArray(hu)
        image.SetSpacing((0.8, 0.8, 2.5))
        image.SetOrigin((-25.0, -30.0, 10.0))
        # A non-identity direction (axes swapped and flipped) exercises the RAS/LPS handling.
        image.SetDirection((0, 1, 0, -1, 0, 0, 0, 0, 1))
        mask = sitk.GetImageFromArray((distance <= 8).astype(np.uint8))
        mask.CopyInformation(image)
        scene = slicer.mrmlScene
        volume = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "GeneratedCT")
        mrml_images.set_volume_from_image(volume, image)
        volume.CreateDefaultDisplayNodes()
        labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "Tumour")
        mrml_images.set_volume_from_image(labelmap, mask)
        segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Segmentation")
        segmentation.SetReferenceImageGeometryParameterFromVolumeNode(volume)
        slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(labelmap, segmentation)
        mrml_images.discard_labelmap(labelmap)
        return volume, segmentation, segmentation.GetSegmentation().GetNthSegmentID(0), image, mask

    def test_RingEqualsEngine(self):
        import numpy as np
        import SimpleITK as sitk

        from DeepRadScoreLib.regions import peritumoral_ring
        from DeepRadScoreSlicerLib import mrml_images

        self.delayDisplay("Peritumoral ring")
        volume, segmentation, tumourId, _image, mask = self._generatedCase()
        ringId = DeepRadScoreLogic().createPeritumoralRing(segmentation, tumourId, 3.0, referenceVolumeNode=volume)
        self.assertEqual(segmentation.GetSegmentation().GetSegment(ringId).GetName(), "Tumour peritumoral 3 mm")
        ring = mrml_images.segment_to_mask(segmentation, ringId, volume)
        expected = peritumoral_ring(mask, 3.0)
        self.assertTrue(np.array_equal(sitk.GetArrayViewFromImage(ring), sitk.GetArrayViewFromImage(expected)))
        self.delayDisplay("Ring test passed")

    def test_FeaturesWithoutBundle(self):
        missing = self._missingForFeatures()
        if missing:
            # "Reload and Test" calls runTest() directly, where a SkipTest reads as a failure:
            # skip by returning, saying why.
            text = ("Skipped the features test: not installed here (the module installs them on "
                    "its first Run): " + "; ".join(missing))
            logging.info("Deep-RadScore self-test: %s", text)
            self.delayDisplay(text)
            return
        self.delayDisplay("Features without a bundle (background worker)")
        volume, segmentation, tumourId, _image, _mask = self._generatedCase()
        logic = DeepRadScoreLogic()
        job = logic.startBackground(volume, segmentation, tumourId, None)
        try:
            code = job.wait(timeout=600)
        except TimeoutError as error:
            logic.discardBackground(job)
            self.fail(str(error))
        if code != 0:
            message = job.error_message()
            logic.discardBackground(job)
            self.fail(message)
        output = logic.finishBackground(job)
        logic.closeEngine()
        self.assertEqual(output.featuresTableNode.GetNumberOfRows(), 1702)
        self.assertIsNone(output.predictionsTableNode)
        self.assertIn("deepradscore train", output.message)
        # Which radiomics backend ran is said (pyradiomics where it imports, else native).
        self.assertTrue(output.radiomicsBackend.startswith(("pyradiomics", "native")))
        self.assertIn("radiomics: ", output.message)
        logging.info("Deep-RadScore self-test: features test passed")
        self.delayDisplay("Features test passed")
