"""Deep-RadScore 3D Slicer module: Module, Widget, Logic and Test.

The Logic is the Python-console API and imports no qt: it turns volume and segment nodes into
SimpleITK images (mrml_images), calls the engine (DeepRadScoreLib.analysis) and puts the results
into the scene (scene_outputs). The Widget runs the same engine in a background process
(DeepRadScoreSlicerLib.worker) so that Slicer stays responsive and Cancel really stops it.

Nothing heavy is imported at module load: torch, pyradiomics and scikit-learn may not be
installed yet when Slicer starts; the first Run checks and installs them.
"""
from __future__ import annotations

import logging
import os
import tempfile
import time
import unittest
from dataclasses import dataclass, field
from typing import Annotated, Optional

import vtk

import slicer
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode, vtkMRMLTableNode

from DeepRadScoreLib import ENDPOINTS
from DeepRadScoreLib.errors import InputError

try:
    import ctk  # noqa: F401  (needed by the .ui's ctk widgets)
    import qt
    from slicer.parameterNodeWrapper import WithinRange, parameterNodeWrapper
    from slicer.ScriptedLoadableModule import (ScriptedLoadableModule, ScriptedLoadableModuleLogic,
                                               ScriptedLoadableModuleTest, ScriptedLoadableModuleWidget)
    from slicer.util import VTKObservationMixin
    HAS_QT = True
except ImportError:
    # slicer-core (MRML, segmentations, slice logic from PyPI, no Qt): only the Logic can run.
    # These stand-ins let this file import there so tests reach the Logic; in Slicer the real
    # base classes above are used.
    HAS_QT = False

    class ScriptedLoadableModule:  # noqa: D101
        def __init__(self, parent):
            self.parent = parent

    class ScriptedLoadableModuleWidget:  # noqa: D101
        def __init__(self, parent=None):
            self.parent = parent

    class ScriptedLoadableModuleLogic:  # noqa: D101
        def __init__(self, parent=None):
            pass

    class ScriptedLoadableModuleTest(unittest.TestCase):  # noqa: D101
        def delayDisplay(self, message, msec=0):
            logging.info(message)

    class VTKObservationMixin:  # noqa: D101
        def __init__(self):
            pass

    def parameterNodeWrapper(cls):
        return cls

    def WithinRange(low, high):  # noqa: N802
        return (low, high)

RING_COLOR = (0.98, 0.78, 0.18)  # amber: distinct from Slicer's default first segment colours
DEFAULT_THICKNESS_MM = 3.0


#
# DeepRadScore
#


class DeepRadScore(ScriptedLoadableModule):
    """Module description shown in Slicer."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "Deep-RadScore"
        self.parent.categories = ["Quantification"]
        self.parent.dependencies = []
        self.parent.contributors = ["DeepRadScore developers"]
        self.parent.helpText = """
Deep-RadScore for NSCLC CT (Zhang et al., Biomarker Research 2024): radiomics of the tumour and
its 3 mm peritumoral ring, deep features of the largest axial tumour slice, fused per endpoint
(LVI, PI, T4, EGFR, KRAS, ALK, TP53, PIK3CA, ROS1, PD-L1), with a Grad-CAM heatmap over the CT.
Predictions need a model bundle trained with <code>deepradscore train</code> on your own cohort:
no clinically validated model ships with this module, and the demo's bundle is trained on
synthetic data and means nothing clinically.
See <a href="https://github.com/deepradscore/DeepRadScore#3d-slicer-module">the documentation</a>.
"""
        self.parent.acknowledgementText = """
Implements the method of Zhang et al., "Deep-RadScore", Biomarker Research 2024. Built on
PyRadiomics, PyTorch and 3D Slicer.
"""


#
# DeepRadScoreParameterNode
#


@parameterNodeWrapper
class DeepRadScoreParameterNode:
    """GUI state kept in the scene (saved with it).

    inputVolume, segmentation - the CT and the segmentation holding the tumour segment.
    tumorSegmentId - the tumour segment's ID in ``segmentation``.
    bundlePath - model bundle folder ("" = features only, no predictions).
    endpoints - comma-separated endpoints to predict ("" = all of the bundle's).
    ringThicknessMm - peritumoral ring thickness.
    heatmapOpacity - Grad-CAM foreground opacity in the slice views.
    predictionsTable, featuresTable - the last run's outputs.
    """

    inputVolume: vtkMRMLScalarVolumeNode
    segmentation: vtkMRMLSegmentationNode
    tumorSegmentId: str = ""
    bundlePath: str = ""
    endpoints: str = ""
    ringThicknessMm: Annotated[float, WithinRange(0.5, 20.0)] = DEFAULT_THICKNESS_MM
    heatmapOpacity: Annotated[float, WithinRange(0.0, 1.0)] = 0.4
    predictionsTable: vtkMRMLTableNode
    featuresTable: vtkMRMLTableNode


#
# DeepRadScoreWidget
#


class DeepRadScoreWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The module panel; all work is done by the Logic and the background worker."""

    POLL_INTERVAL_MS = 200

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
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
        self._endpointBoxes = {endpoint: getattr(self.ui, f"endpoint{endpoint}CheckBox") for endpoint in ENDPOINTS}
        self._timer = qt.QTimer()
        self._timer.setInterval(self.POLL_INTERVAL_MS)
        self._timer.connect("timeout()", self.onPollJob)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        self.ui.segmentationSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.onSegmentationChanged)
        self.ui.segmentSelector.connect("currentSegmentChanged(QString)", self.onSegmentChanged)
        self.ui.bundlePathLineEdit.connect("currentPathChanged(QString)", self.onBundlePathChanged)
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
        if self._job is not None:
            self._job.cancel()
        if self._timer is not None:
            self._timer.stop()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtons)

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
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
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtons)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            # Widgets with a "SlicerParameterName" property in the .ui are connected here; the
            # segment selector, bundle path and endpoint boxes are synchronised by hand below.
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtons)
            self._updateManualWidgets()
            self._updateButtons()

    def _updateManualWidgets(self) -> None:
        node = self._parameterNode
        self.ui.segmentSelector.setCurrentNode(node.segmentation)
        if node.tumorSegmentId:
            self.ui.segmentSelector.setCurrentSegmentID(node.tumorSegmentId)
        self.ui.bundlePathLineEdit.currentPath = node.bundlePath
        chosen = {e for e in node.endpoints.split(",") if e}
        for endpoint, box in self._endpointBoxes.items():
            box.checked = not chosen or endpoint in chosen

    def _updateButtons(self, caller=None, event=None) -> None:
        node = self._parameterNode
        ready = bool(node and node.inputVolume and node.segmentation and node.tumorSegmentId)
        running = self._job is not None
        self.ui.createRingButton.enabled = bool(node and node.segmentation and node.tumorSegmentId) and not running
        self.ui.runButton.enabled = ready and not running
        self.ui.runButton.toolTip = ("Compute the ring, the 1,702 features and (with a bundle) the predictions"
                                     if ready else "Select a CT volume, a segmentation and the tumour segment")

    def onSegmentationChanged(self, node) -> None:
        self.ui.segmentSelector.setCurrentNode(node)

    def onSegmentChanged(self, segmentId) -> None:
        if self._parameterNode:
            self._parameterNode.tumorSegmentId = segmentId or ""

    def onBundlePathChanged(self, path) -> None:
        if self._parameterNode:
            self._parameterNode.bundlePath = path or ""

    def onEndpointsChanged(self, checked=None) -> None:
        if self._parameterNode:
            chosen = [e for e, box in self._endpointBoxes.items() if box.checked]
            self._parameterNode.endpoints = "" if len(chosen) == len(ENDPOINTS) else ",".join(chosen)

    def _setStatus(self, text: str) -> None:
        self.ui.statusLabel.text = text
        slicer.util.showStatusMessage(text, 5000)

    def onCreateRingButton(self) -> None:
        node = self._parameterNode
        with slicer.util.tryWithErrorDisplay("Failed to create the peritumoral ring.", waitCursor=True):
            ringId = self.logic.createPeritumoralRing(node.segmentation, node.tumorSegmentId, node.ringThicknessMm,
                                                      referenceVolumeNode=node.inputVolume)
            self._setStatus(f"Added segment '{node.segmentation.GetSegmentation().GetSegment(ringId).GetName()}'.")

    def ensureDependencies(self) -> bool:
        """Install what the engine needs after ONE confirmation; False if the user declines."""
        from DeepRadScoreSlicerLib import dependencies as deps

        missing = deps.missing_requirements()
        if not missing:
            return True
        blocked = deps.unresolvable(missing)
        if blocked:
            raise RuntimeError(deps.unresolvable_text(blocked))
        if not slicer.util.confirmOkCancelDisplay(deps.confirmation_text(missing), windowTitle="Deep-RadScore"):
            self._setStatus("Python packages not installed: nothing was run.")
            return False
        torchNeeds = deps.torch_requirements(missing)
        if torchNeeds["torch"] or torchNeeds["torchvision"]:
            try:
                import PyTorchUtils
            except ModuleNotFoundError:
                raise RuntimeError("Deep-RadScore needs the PyTorch extension: install it from the "
                                   "Extensions Manager and restart Slicer.") from None
            torch = PyTorchUtils.PyTorchUtilsLogic().installTorch(
                askConfirmation=False, torchVersionRequirement=torchNeeds["torch"],
                torchvisionVersionRequirement=torchNeeds["torchvision"])
            if torch is None:
                raise RuntimeError("PyTorch was not installed.")
        pipNeeds = deps.pip_requirements(missing)
        if pipNeeds:
            constraints = os.path.join(tempfile.mkdtemp(prefix="DeepRadScore-"), "constraints.txt")
            with open(constraints, "w") as f:
                f.write(deps.constraints_text())
            try:
                import slicer.packaging as packaging  # Slicer >= 5.12
            except ImportError:
                packaging = None
            if packaging is not None and hasattr(packaging, "pip_ensure"):
                packaging.pip_ensure(pipNeeds, constraints=constraints, prompt_install=False,
                                     requester="Deep-RadScore")
            else:
                slicer.util.pip_install([*pipNeeds, "-c", constraints])
        still = deps.missing_requirements()
        if still:
            raise RuntimeError("Still missing after installation (restart Slicer and try again): "
                               + "; ".join(m.describe() for m in still))
        return True

    def onRunButton(self) -> None:
        node = self._parameterNode
        with slicer.util.tryWithErrorDisplay("Deep-RadScore failed.", waitCursor=True):
            if not self.ensureDependencies():
                return
            endpoints = [e for e in node.endpoints.split(",") if e] or None
            self.logic.createPeritumoralRing(node.segmentation, node.tumorSegmentId, node.ringThicknessMm,
                                             referenceVolumeNode=node.inputVolume)
            self._job = self.logic.startBackground(node.inputVolume, node.segmentation, node.tumorSegmentId,
                                                   node.bundlePath, endpoints, node.ringThicknessMm)
            self.ui.cancelButton.enabled = True
            self.ui.progressBar.setValue(0)
            self._setStatus("Running the engine in the background...")
            self._updateButtons()
            self._timer.start()

    def onPollJob(self) -> None:
        job = self._job
        if job is None:
            self._timer.stop()
            return
        self.ui.progressBar.setValue(int(round(100 * job.fraction)))
        self.ui.statusLabel.text = job.message
        code = job.poll()
        if code is None:
            return
        self._timer.stop()
        self._job = None
        self.ui.cancelButton.enabled = False
        self._updateButtons()
        if job.cancelled or code != 0:
            self.logic.discardBackground(job)
        if job.cancelled:
            self._setStatus("Cancelled.")
            return
        if code != 0:
            self._setStatus("Failed: " + job.error_message().splitlines()[0])
            slicer.util.errorDisplay("Deep-RadScore failed.", detailedText=job.error_message())
            return
        with slicer.util.tryWithErrorDisplay("Could not show the results.", waitCursor=True):
            output = self.logic.finishBackground(job, predictionsTableNode=self._parameterNode.predictionsTable,
                                                 featuresTableNode=self._parameterNode.featuresTable)
            self._showOutput(output)

    def onCancelButton(self) -> None:
        if self._job is not None:
            self._job.cancel()
            self._setStatus("Cancelling...")

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
        from DeepRadScoreSlicerLib import scene_outputs

        scene_outputs.set_overlay_opacity(slicer.mrmlScene, value)


#
# DeepRadScoreLogic
#


@dataclass
class DeepRadScoreOutput:
    """What one run produced: the engine's CaseResult and the nodes made from it."""

    volumeNode: object
    caseResult: object
    ringSegmentId: str
    featuresTableNode: object
    predictionsTableNode: Optional[object] = None
    heatmapNodes: dict = field(default_factory=dict)
    message: str = ""


class DeepRadScoreLogic(ScriptedLoadableModuleLogic):
    """Console API (no qt). Every node it creates goes into the scene of the nodes it is given."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)

    def getParameterNode(self):
        return DeepRadScoreParameterNode(super().getParameterNode())

    @staticmethod
    def ringSegmentName(tumorName: str, thicknessMm: float) -> str:
        return f"{tumorName} peritumoral {thicknessMm:g} mm"

    def createPeritumoralRing(self, segmentationNode, tumorSegmentId: str, thicknessMm: float = DEFAULT_THICKNESS_MM,
                              referenceVolumeNode=None) -> str:
        """Add the engine's peritumoral ring of a segment as a new segment; return its ID.

        The tumour is taken on ``referenceVolumeNode``'s grid when given, else on the
        segmentation's own reference geometry. A ring segment of the same name is replaced.
        """
        from DeepRadScoreLib.regions import peritumoral_ring
        from DeepRadScoreSlicerLib import mrml_images

        segmentation = segmentationNode.GetSegmentation()
        tumour = segmentation.GetSegment(tumorSegmentId)
        if tumour is None:
            raise InputError(f"{segmentationNode.GetName()}: no segment with ID '{tumorSegmentId}'")
        name = self.ringSegmentName(tumour.GetName(), thicknessMm)
        scene = segmentationNode.GetScene()
        labelmap = mrml_images.export_segment(segmentationNode, tumorSegmentId, referenceVolumeNode)
        try:
            mask = mrml_images.volume_to_image(labelmap, "uint8")
            ring = peritumoral_ring(mask, thicknessMm)
            import SimpleITK as sitk

            mrml_images.set_volume_array(labelmap, sitk.GetArrayFromImage(ring).astype("uint8"))
            labelmap.SetName(name)
            old = segmentation.GetSegmentIdBySegmentName(name)
            if old and old != tumorSegmentId:
                segmentation.RemoveSegment(old)
            before = set(segmentation.GetSegmentIDs())
            ok = slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(labelmap, segmentationNode)
            added = [s for s in segmentation.GetSegmentIDs() if s not in before]
            if not ok or len(added) != 1:
                raise InputError(f"{segmentationNode.GetName()}: could not add the ring segment '{name}'")
        finally:
            scene.RemoveNode(labelmap)
        ring_segment = segmentation.GetSegment(added[0])
        ring_segment.SetName(name)
        ring_segment.SetColor(*RING_COLOR)
        return added[0]

    def caseImages(self, volumeNode, segmentationNode, tumorSegmentId: str):
        """The CT (float32 HU) and the tumour (uint8 on the CT's grid) as SimpleITK images."""
        from DeepRadScoreSlicerLib import mrml_images

        if volumeNode is None or segmentationNode is None:
            raise InputError("select a CT volume and a segmentation")
        image = mrml_images.volume_to_image(volumeNode)
        mask = mrml_images.segment_to_mask(segmentationNode, tumorSegmentId, volumeNode)
        return image, mask

    def process(self, volumeNode, segmentationNode, tumorSegmentId: str, bundlePath=None, endpoints=None,
                progressCallback=None, cancel=None, thicknessMm: float = DEFAULT_THICKNESS_MM,
                device: str = "auto", predictionsTableNode=None, featuresTableNode=None) -> DeepRadScoreOutput:
        """Run the engine in this process on the nodes' data and show the results.

        ``progressCallback(fraction, message)`` and ``cancel() -> bool`` follow the engine's
        progress protocol. Without ``bundlePath`` only the ring and the features are produced.
        """
        from DeepRadScoreLib.analysis import analyse_case

        start = time.time()
        image, mask = self.caseImages(volumeNode, segmentationNode, tumorSegmentId)
        bundle = None
        if bundlePath:
            from DeepRadScoreLib.model.bundle import Bundle

            bundle = Bundle.load(str(bundlePath), device=device)
        ringId = self.createPeritumoralRing(segmentationNode, tumorSegmentId, thicknessMm, referenceVolumeNode=volumeNode)
        result = analyse_case(image, mask, bundle=bundle, endpoints=endpoints, thickness_mm=thicknessMm,
                              gradcam=True, device=device, progress=progressCallback, cancel=cancel)
        output = self.showResults(volumeNode, image, result, ringId, synthetic=bool(bundle and bundle.synthetic),
                                  predictionsTableNode=predictionsTableNode, featuresTableNode=featuresTableNode)
        logging.info(f"Deep-RadScore finished in {time.time() - start:.1f} s")
        return output

    def startBackground(self, volumeNode, segmentationNode, tumorSegmentId: str, bundlePath=None, endpoints=None,
                        thicknessMm: float = DEFAULT_THICKNESS_MM, device: str = "auto"):
        """Start the engine in a child process (what the GUI does); poll or wait on the handle."""
        import SimpleITK as sitk

        from DeepRadScoreSlicerLib.background import BackgroundAnalysis

        image, mask = self.caseImages(volumeNode, segmentationNode, tumorSegmentId)
        folder = tempfile.mkdtemp(prefix="DeepRadScore-")
        imagePath, maskPath = os.path.join(folder, "image.nrrd"), os.path.join(folder, "mask.nrrd")
        sitk.WriteImage(image, imagePath)
        sitk.WriteImage(mask, maskPath)
        job = BackgroundAnalysis(imagePath, maskPath, os.path.join(folder, "result"), bundlePath or "",
                                 endpoints, thicknessMm, device)
        job.context = {"volumeNode": volumeNode, "segmentationNode": segmentationNode,
                       "tumorSegmentId": tumorSegmentId, "image": image, "bundlePath": bundlePath,
                       "thicknessMm": thicknessMm, "folder": folder}
        return job

    def finishBackground(self, job, predictionsTableNode=None, featuresTableNode=None) -> DeepRadScoreOutput:
        """Read a finished worker's result and show it like :meth:`process` does."""
        import shutil

        from DeepRadScoreSlicerLib.worker import load_result

        context = job.context
        try:
            result, synthetic = load_result(job.output_dir)
        finally:
            shutil.rmtree(context["folder"], ignore_errors=True)
        segmentationNode = context["segmentationNode"]
        tumour = segmentationNode.GetSegmentation().GetSegment(context["tumorSegmentId"])
        ringName = self.ringSegmentName(tumour.GetName() if tumour else "", context["thicknessMm"])
        ringId = segmentationNode.GetSegmentation().GetSegmentIdBySegmentName(ringName)
        return self.showResults(context["volumeNode"], context["image"], result, ringId, synthetic=synthetic,
                                predictionsTableNode=predictionsTableNode, featuresTableNode=featuresTableNode)

    def discardBackground(self, job) -> None:
        """Stop a worker if it still runs and delete its temporary files (after Cancel or a failure)."""
        import shutil

        job.cancel()
        shutil.rmtree(job.context["folder"], ignore_errors=True)

    def showResults(self, volumeNode, image, result, ringSegmentId: str, synthetic: bool = False,
                    predictionsTableNode=None, featuresTableNode=None) -> DeepRadScoreOutput:
        """Tables, Grad-CAM volumes, the overlay and the slice position for one CaseResult."""
        from DeepRadScoreSlicerLib import scene_outputs

        scene = volumeNode.GetScene()
        base = volumeNode.GetName()
        features = scene_outputs.table_node(scene, f"{base} Deep-RadScore features", featuresTableNode)
        scene_outputs.fill_features_table(features, result.features)
        output = DeepRadScoreOutput(volumeNode=volumeNode, caseResult=result, ringSegmentId=ringSegmentId,
                                    featuresTableNode=features)
        if result.predictions:
            table = scene_outputs.table_node(scene, f"{base} Deep-RadScore predictions", predictionsTableNode)
            scene_outputs.fill_predictions_table(table, result.predictions)
            output.predictionsTableNode = table
            for endpoint, heatmap in result.heatmaps.items():
                output.heatmapNodes[endpoint] = scene_outputs.add_heatmap_volume(
                    volumeNode, heatmap, f"{base} Grad-CAM {endpoint}")
            if output.heatmapNodes:
                self.showHeatmap(output, next(iter(output.heatmapNodes)))
            output.message = (f"Predicted {len(result.predictions)} endpoint(s) from {len(result.features)} "
                              "radiomics features and the deep-ROI patch; the Grad-CAM heatmap is shown over the CT.")
            if synthetic:
                output.message += (" The bundle was trained on a SYNTHETIC cohort: these numbers demonstrate "
                                   "the software and have no clinical meaning.")
        else:
            output.message = (f"Computed the ring and {len(result.features)} radiomics features. Predictions "
                              "need a model bundle trained with `deepradscore train` (or the demo's, which is "
                              "trained on synthetic data and means nothing clinically).")
            scene_outputs.show_overlay(scene, volumeNode, None, 0.0)
        scene_outputs.jump_slices(scene, scene_outputs.patch_centre_ras(result.patch, image))
        return output

    def showHeatmap(self, output: DeepRadScoreOutput, endpoint: str, opacity: float = 0.4) -> None:
        """Show one endpoint's Grad-CAM as the foreground over the CT in every slice view."""
        from DeepRadScoreSlicerLib import scene_outputs

        node = output.heatmapNodes[endpoint]
        scene_outputs.show_overlay(output.volumeNode.GetScene(), output.volumeNode, node, opacity)


#
# DeepRadScoreTest
#


class DeepRadScoreTest(ScriptedLoadableModuleTest):
    """Self-test inside Slicer on a generated case: ring, features, and the background worker."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_RingEqualsEngine()
        self.setUp()
        self.test_FeaturesWithoutBundle()

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
        scene.RemoveNode(labelmap)
        return volume, segmentation, segmentation.GetSegmentation().GetNthSegmentID(0), image, mask

    def test_RingEqualsEngine(self):
        import numpy as np
        import SimpleITK as sitk

        from DeepRadScoreLib.regions import peritumoral_ring
        from DeepRadScoreSlicerLib import mrml_images

        self.delayDisplay("Peritumoral ring")
        volume, segmentation, tumourId, _, mask = self._generatedCase()
        ringId = DeepRadScoreLogic().createPeritumoralRing(segmentation, tumourId, 3.0, referenceVolumeNode=volume)
        self.assertEqual(segmentation.GetSegmentation().GetSegment(ringId).GetName(), "Tumour peritumoral 3 mm")
        ring = mrml_images.segment_to_mask(segmentation, ringId, volume)
        expected = peritumoral_ring(mask, 3.0)
        self.assertTrue(np.array_equal(sitk.GetArrayViewFromImage(ring), sitk.GetArrayViewFromImage(expected)))
        self.delayDisplay("Ring test passed")

    def test_FeaturesWithoutBundle(self):
        self.delayDisplay("Features without a bundle (background worker)")
        volume, segmentation, tumourId, _, _ = self._generatedCase()
        logic = DeepRadScoreLogic()
        logic.createPeritumoralRing(segmentation, tumourId, 3.0, referenceVolumeNode=volume)
        job = logic.startBackground(volume, segmentation, tumourId, None)
        code = job.wait(timeout=600)
        self.assertEqual(code, 0, job.error_message())
        output = logic.finishBackground(job)
        self.assertEqual(output.featuresTableNode.GetNumberOfRows(), 1702)
        self.assertIsNone(output.predictionsTableNode)
        self.assertIn("deepradscore train", output.message)
        self.delayDisplay("Features test passed")
