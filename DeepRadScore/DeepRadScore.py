"""Deep-RadScore 3D Slicer module: Module, parameter node, Widget and Test.

The work is done by :class:`DeepRadScoreSlicerLib.logic.DeepRadScoreLogic` (slicer and vtk,
no qt), re-exported here because ``import DeepRadScore; DeepRadScore.DeepRadScoreLogic()`` is
the documented console API. The Widget only wires the .ui to the Logic: it runs the engine in
a background process that it polls from a QTimer, so Slicer stays responsive and Cancel really
stops it.

Supported: 3D Slicer 5.10 and later (checked up front by the Logic). Nothing heavy is imported
at module load: torch and scikit-learn may not be installed yet when Slicer starts; the first
Run checks and installs them after one confirmation. pyradiomics is optional: the radiomics run
on SlicerRadiomics' pyradiomics where it is installed, else on the engine's native backend (same
numbers; e.g. on macOS, where SlicerRadiomics has no build), and the Run's message says which.
"""
from __future__ import annotations

import logging
import os
import pathlib
from typing import Annotated

import qt
import vtk

import slicer
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode, vtkMRMLTableNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (ScriptedLoadableModule, ScriptedLoadableModuleLogic,
                                           ScriptedLoadableModuleTest, ScriptedLoadableModuleWidget)
from slicer.util import VTKObservationMixin

from DeepRadScoreLib import ENDPOINTS
from DeepRadScoreSlicerLib.logic import DEFAULT_THICKNESS_MM, DeepRadScoreLogic, DeepRadScoreOutput  # noqa: F401

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
synthetic data and means nothing clinically. Needs 3D Slicer 5.10 or later and the PyTorch
extension. The radiomics use the SlicerRadiomics extension's pyradiomics when it is installed and
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
    bundlePath - model bundle folder (empty path = features only, no predictions).
    endpoints - endpoints to predict (empty = all of the bundle's).
    ringThicknessMm - peritumoral ring thickness.
    heatmapOpacity - Grad-CAM foreground opacity in the slice views.
    predictionsTable, featuresTable - the last run's outputs.
    """

    inputVolume: vtkMRMLScalarVolumeNode
    segmentation: vtkMRMLSegmentationNode
    tumorSegmentId: str = ""
    bundlePath: pathlib.Path
    endpoints: list[str]
    ringThicknessMm: Annotated[float, WithinRange(0.5, 20.0)] = DEFAULT_THICKNESS_MM
    heatmapOpacity: Annotated[float, WithinRange(0.0, 1.0)] = 0.4
    predictionsTable: vtkMRMLTableNode
    featuresTable: vtkMRMLTableNode


class DeepRadScoreParameterLogic(ScriptedLoadableModuleLogic):
    """The scene's one Deep-RadScore parameter node (the work is DeepRadScoreLogic's)."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self.moduleName = "DeepRadScore"

    def getParameterNode(self):
        return DeepRadScoreParameterNode(super().getParameterNode())


def bundleFolder(path) -> str:
    """The parameter's path as the Logic takes it: "" when no bundle is chosen."""
    text = str(path) if path is not None else ""
    return "" if text in ("", ".") else text


#
# DeepRadScoreWidget
#


class DeepRadScoreWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The module panel: wiring between the .ui, the parameter node and the Logic."""

    POLL_INTERVAL_MS = 200

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterLogic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._syncing = False
        self._job = None
        self._timer = None
        self._lastOutput = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/DeepRadScore.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = DeepRadScoreLogic()
        self._parameterLogic = DeepRadScoreParameterLogic()
        self._endpointBoxes = {endpoint: getattr(self.ui, f"endpoint{endpoint}CheckBox")
                               for endpoint in ENDPOINTS}
        self._timer = qt.QTimer()
        self._timer.setInterval(self.POLL_INTERVAL_MS)
        self._timer.connect("timeout()", self.onPollJob)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        self.ui.segmentationSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.onSegmentationChanged)
        self.ui.segmentSelector.connect("currentSegmentChanged(QString)", self.onSegmentChanged)
        for box in self._endpointBoxes.values():
            box.connect("toggled(bool)", self.onEndpointsChanged)
        self.ui.createRingButton.connect("clicked(bool)", self.onCreateRingButton)
        self.ui.runButton.connect("clicked(bool)", self.onRunButton)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancelButton)
        self.ui.heatmapEndpointComboBox.connect("currentIndexChanged(int)", self.onHeatmapEndpointChanged)
        self.ui.heatmapOpacitySlider.connect("valueChanged(double)", self.onHeatmapOpacityChanged)

        self.ui.cancelButton.enabled = False
        self.ui.progressBar.setValue(0)
        self.ui.resultsCollapsibleButton.collapsed = True
        self.initializeParameterNode()

    def cleanup(self) -> None:
        # Slicer exits (or the module is reloaded): stop any run and the kept engine process.
        self._discardJob()
        if self.logic is not None:
            self.logic.closeEngine()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        self.setParameterNode(None)

    def onSceneStartClose(self, caller, event) -> None:
        # A job writing into removed nodes, or into a None parameter node, is cancelled first.
        if self._job is not None:
            self._discardJob()
            self._setStatus(_("Cancelled: the scene was closed."))
        self._lastOutput = None
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

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

    def setParameterNode(self, inputParameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtons)
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
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtons)
            self._updateButtons()

    def _updateManualWidgets(self, segmentId: str) -> None:
        node = self._parameterNode
        self.ui.segmentSelector.setCurrentNode(node.segmentation)
        if segmentId:
            self.ui.segmentSelector.setCurrentSegmentID(segmentId)
        chosen = set(node.endpoints)
        for endpoint, box in self._endpointBoxes.items():
            box.checked = not chosen or endpoint in chosen

    def _updateButtons(self, caller=None, event=None) -> None:
        node = self._parameterNode
        ready = bool(node and node.inputVolume and node.segmentation and node.tumorSegmentId)
        running = self._job is not None
        self.ui.createRingButton.enabled = bool(node and node.segmentation and node.tumorSegmentId) and not running
        self.ui.runButton.enabled = ready and not running
        self.ui.runButton.toolTip = (_("Compute the ring, the 1,702 features and (with a bundle) the predictions")
                                     if ready else _("Select a CT volume, a segmentation and the tumour segment"))

    def onSegmentationChanged(self, node) -> None:
        if self._syncing:
            return
        self.ui.segmentSelector.setCurrentNode(node)
        if self._parameterNode:
            # A segment ID means nothing in another segmentation: choose again.
            self._parameterNode.tumorSegmentId = self.ui.segmentSelector.currentSegmentID() or ""

    def onSegmentChanged(self, segmentId) -> None:
        if self._parameterNode and not self._syncing:
            self._parameterNode.tumorSegmentId = segmentId or ""

    def onEndpointsChanged(self, checked=None) -> None:
        if self._parameterNode and not self._syncing:
            chosen = [e for e, box in self._endpointBoxes.items() if box.checked]
            self._parameterNode.endpoints = [] if len(chosen) == len(ENDPOINTS) else chosen

    def _setStatus(self, text: str) -> None:
        self.ui.statusLabel.text = text
        slicer.util.showStatusMessage(text, 5000)
        slicer.app.processEvents()

    def onCreateRingButton(self) -> None:
        node = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("Failed to create the peritumoral ring."), waitCursor=True):
            ringId = self.logic.createPeritumoralRing(node.segmentation, node.tumorSegmentId, node.ringThicknessMm,
                                                      referenceVolumeNode=node.inputVolume)
            name = node.segmentation.GetSegmentation().GetSegment(ringId).GetName()
            self._setStatus(_("Added segment '{name}'.").format(name=name))

    def onRunButton(self) -> None:
        node = self._parameterNode
        if self._job is not None:
            return
        # The confirmation is never shown under a wait cursor; the install shows what it does.
        # tryWithErrorDisplay shows an error and goes on after the block: hence the flag.
        ready = False
        with slicer.util.tryWithErrorDisplay(_("Deep-RadScore could not set up its Python packages.")):
            ready = self.logic.setupPythonRequirements(confirm=True, statusCallback=self._setStatus)
        if not ready:
            self._setStatus(_("Python packages not installed: nothing was run."))
            return
        if self._job is not None:
            return
        with slicer.util.tryWithErrorDisplay(_("Deep-RadScore failed to start."), waitCursor=True):
            bundle = bundleFolder(node.bundlePath)
            # With a bundle the ring is the one it was trained with (Bundle.settings); the
            # thickness box applies to feature-only runs and to "Create peritumoral ring".
            self._job = self.logic.startBackground(node.inputVolume, node.segmentation, node.tumorSegmentId,
                                                   bundle, list(node.endpoints) or None,
                                                   None if bundle else node.ringThicknessMm)
            self.ui.cancelButton.enabled = True
            self.ui.progressBar.setValue(0)
            self._setStatus(_("Running the engine in the background..."))
            self._updateButtons()
            self._timer.start()

    def onPollJob(self) -> None:
        job = self._job
        if job is None or job.context.get("discarded"):
            self._timer.stop()
            self._job = None
            self._updateButtons()
            return
        self.ui.progressBar.setValue(int(round(100 * job.fraction)))
        self.ui.statusLabel.text = job.message
        code = job.poll()  # never blocks
        if code is None:
            return
        self._timer.stop()
        self._job = None
        self.ui.cancelButton.enabled = False
        self._updateButtons()
        if job.cancelled or code != 0:
            message = job.error_message()
            self.logic.discardBackground(job)
            if job.cancelled:
                self._setStatus(_("Cancelled."))
            else:
                self._setStatus(_("Failed: ") + message.splitlines()[0])
                slicer.util.errorDisplay(_("Deep-RadScore failed."), detailedText=message)
            return
        with slicer.util.tryWithErrorDisplay(_("Could not show the results."), waitCursor=True):
            node = self._parameterNode
            output = self.logic.finishBackground(job, predictionsTableNode=node.predictionsTable,
                                                 featuresTableNode=node.featuresTable,
                                                 heatmapOpacity=node.heatmapOpacity)
            self._showOutput(output)

    def onCancelButton(self) -> None:
        if self._job is not None:
            self._setStatus(_("Cancelling..."))
            self._discardJob()
            self._setStatus(_("Cancelled."))

    def _discardJob(self) -> None:
        if self._timer is not None:
            self._timer.stop()
        if self._job is not None:
            self.logic.discardBackground(self._job)
            self._job = None
        if hasattr(self, "ui"):
            self.ui.cancelButton.enabled = False
            self._updateButtons()

    def _showOutput(self, output) -> None:
        self._lastOutput = output
        self._parameterNode.predictionsTable = output.predictionsTableNode
        self._parameterNode.featuresTable = output.featuresTableNode
        self.ui.resultsTableView.setMRMLTableNode(output.predictionsTableNode or output.featuresTableNode)
        self.ui.heatmapEndpointComboBox.blockSignals(True)
        self.ui.heatmapEndpointComboBox.clear()
        for endpoint in output.heatmapNodes:
            self.ui.heatmapEndpointComboBox.addItem(endpoint)
        self.ui.heatmapEndpointComboBox.blockSignals(False)
        self.ui.resultsCollapsibleButton.collapsed = False
        self.ui.progressBar.setValue(100)
        self._setStatus(output.message)

    def onHeatmapEndpointChanged(self, index) -> None:
        if self._lastOutput is None or index < 0:
            return
        endpoint = self.ui.heatmapEndpointComboBox.currentText
        self.logic.showHeatmap(self._lastOutput, endpoint, self._parameterNode.heatmapOpacity)

    def onHeatmapOpacityChanged(self, value) -> None:
        self.logic.setHeatmapOpacity(slicer.mrmlScene, value)


#
# DeepRadScoreTest
#


class DeepRadScoreTest(ScriptedLoadableModuleTest):
    """Self-test inside Slicer on a generated case: ring, features, and the background worker.

    The extension build machines may lack PyWavelets, PyYAML or pandas (installed on the first
    Run): what needs them is skipped with a message saying so. pyradiomics is not needed: without
    it the features come from the native backend.
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

        # The features-only run: the native backend (or pyradiomics, where it is) and the table.
        needed = ("PyWavelets", "PyYAML", "scipy", "pandas")
        return [m.describe() for m in deps.missing_requirements() if m.name in needed]

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
            self.delayDisplay("Skipped the features test: " + "; ".join(missing))
            self.skipTest("not installed here (the module installs them on its first Run): "
                          + "; ".join(missing))
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
