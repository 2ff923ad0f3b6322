"""The module's run state and every decision its GUI makes, without Qt.

The widget (DeepRadScore.py) is a thin view: it forwards what the user and the scene do (enter and
leave the module, Run, Cancel, "Release engine", a change of CT, segment or bundle, a scene close,
Reload, its timer's tick) to a :class:`DeepRadScoreController`, and shows what the controller
reports through the view object it was given (:class:`View`). The controller owns the current job,
the inputs it was started with (CT, segmentation, segment, bundle), the output last shown, and,
through the Logic, the kept engine process. Tests drive it on real MRML (slicer-core) with a
recording view.

Rules it keeps:

* a job belongs to the inputs it was started with, not to the GUI: leaving the module, or choosing
  another CT while it runs, changes nothing about where its result goes;
* a result goes into the tables of its own CT and segment (tagged nodes, :mod:`scene_outputs`);
* closing the scene cancels the job, with no dialog and no event processing inside the scene's
  close event;
* the kept engine (torch, the bundle, any GPU memory) is released after :attr:`idleReleaseS`
  without a Run, when another bundle is chosen, and on "Release engine".
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Optional

from . import scene_outputs
from .logic import DeepRadScoreLogic, DeepRadScoreOutput

logger = logging.getLogger(__name__)

# A kept engine unused this long is ended (a later Run starts a new one in a few seconds).
IDLE_RELEASE_S = 600.0
# How often, without a job, the idle engine is looked at.
IDLE_CHECK_S = 5.0


class View:
    """What the controller tells the GUI; the widget overrides these, tests record them."""

    def setStatus(self, text: str) -> None:
        """A one-line status (no event processing: it may be called inside a scene event)."""

    def setProgress(self, fraction: float, message: str) -> None:
        """A running job's progress."""

    def showError(self, title: str, message: str, detail: str = "") -> None:
        """A failure the user must see (a dialog in the GUI)."""

    def showOutput(self, output: Optional[DeepRadScoreOutput]) -> None:
        """The results of the chosen case (None: it has none)."""

    def updateState(self) -> None:
        """Running or not changed: the buttons' enabled state."""

    def confirm(self, text: str) -> bool:
        """Ask the user before anything is installed."""
        return False

    def installProgress(self, index: int, count: int, requirement: str) -> bool:
        """Before each pip package (Slicer 5.10); False cancels the remaining ones."""
        return True


@dataclass
class RunInputs:
    """What one Run is asked for (the parameter node's values)."""

    volumeNode: object
    segmentationNode: object
    tumorSegmentId: str
    bundlePath: str = ""
    endpoints: list = field(default_factory=list)
    thicknessMm: Optional[float] = None
    heatmapOpacity: float = scene_outputs.DEFAULT_HEAT_OPACITY
    radiomicsBackend: str = "auto"

    def problem(self) -> Optional[str]:
        """What is missing before a Run can start (None when nothing is)."""
        if self.volumeNode is None or self.segmentationNode is None or not self.tumorSegmentId:
            return "Select a CT volume, a segmentation and the tumour segment"
        if self.segmentationNode.GetSegmentation().GetSegment(self.tumorSegmentId) is None:
            return "The chosen tumour segment is not in the segmentation"
        return None


def bundle_folder(path) -> str:
    """A bundle path as the Logic takes it: "" when none is chosen (an empty path box, or the
    "." that ``pathlib.Path("")`` prints)."""
    text = str(path).strip() if path is not None else ""
    return "" if text in ("", ".") else text


class DeepRadScoreController:
    """Run state and decisions of the module's GUI (no Qt). See the module docstring."""

    def __init__(self, logic: Optional[DeepRadScoreLogic] = None, view: Optional[View] = None,
                 idleReleaseS: float = IDLE_RELEASE_S, clock=time.monotonic):
        self.logic = logic or DeepRadScoreLogic()
        self.view = view or View()
        self.idleReleaseS = idleReleaseS
        self._clock = clock
        self.job = None
        self.jobInputs: Optional[RunInputs] = None
        self.output: Optional[DeepRadScoreOutput] = None
        self.entered = False
        self.status = ""
        self._shownKey: Optional[str] = None  # the case the view shows (inputsChanged)
        self._idleCheckedAt = clock()

    # -- what the view asks ------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.job is not None

    def canRun(self, inputs: RunInputs) -> bool:
        return not self.running and inputs.problem() is None

    def engineRunning(self) -> bool:
        return self.logic.engineRunning()

    # -- module and scene events -------------------------------------------------------------

    def enter(self) -> None:
        """The user opened the module: the job (if any) went on meanwhile; show the state."""
        self.entered = True
        self.view.updateState()

    def exit(self) -> None:
        """The user opened another module: the job goes on, and its result is shown when it ends."""
        self.entered = False

    def sceneStartClose(self) -> None:
        """The scene is being closed: cancel the job (its nodes are going). No dialog here."""
        if self.job is not None:
            self.logic.discardBackground(self.job)
            self.job, self.jobInputs = None, None
            self._setStatus("Cancelled: the scene was closed.")
        self.output = None
        self.view.updateState()

    def cleanup(self) -> None:
        """Reload or Slicer exiting: stop any run, delete its files, end the engine."""
        self.job, self.jobInputs = None, None
        self.logic.discardAll()

    def inputsChanged(self, inputs: RunInputs) -> Optional[DeepRadScoreOutput]:
        """Another CT or segment was chosen: show that case's results, if it has any (a running
        job keeps its own case and shows its result when it ends)."""
        self._shownKey = None if inputs.problem() is not None else self._key(inputs)
        if inputs.problem() is not None:
            output = None
        elif self.output is not None and self._sameCase(self.output, inputs):
            output = self.output
        else:
            output = self.outputFor(inputs)
        self.output = output
        self.view.showOutput(output)
        return output

    def bundleChanged(self, bundlePath) -> None:
        """Another bundle was chosen: an idle engine holding the old one is released now."""
        if self.logic.releaseIdleEngine(self.idleReleaseS, bundlePath=bundle_folder(bundlePath)):
            logger.info("Deep-RadScore: released the engine of the previous bundle")
        self.view.updateState()

    def releaseEngine(self) -> bool:
        """The "Release engine" action (refused while a Run uses it)."""
        if self.running:
            self._setStatus("The engine is running: cancel the Run first.")
            return False
        released = self.logic.closeEngine()
        self._setStatus("Engine released: its memory is free (the next Run starts a new one)."
                        if released else "No engine is running.")
        self.view.updateState()
        return released

    # -- Run, poll, Cancel -------------------------------------------------------------------

    def run(self, inputs: RunInputs) -> bool:
        """Install what this Run needs (after one confirmation), then start it in the background.
        Returns True when a job was started."""
        if self.job is not None:
            return False
        problem = inputs.problem()
        if problem:
            self._setStatus(problem + ".")
            return False
        bundle = bundle_folder(inputs.bundlePath)
        try:
            ready = self.logic.setupPythonRequirements(
                confirm=True, statusCallback=self._setStatus, radiomicsBackend=inputs.radiomicsBackend,
                bundlePath=bundle, confirmCallback=self.view.confirm, installProgress=self.view.installProgress)
        except Exception as error:  # RuntimeError/InputError: what the user can do; else a bug
            self._fail("Deep-RadScore could not set up its Python packages.", error)
            return False
        if not ready:
            self._setStatus("Python packages not installed: nothing was run.")
            return False
        self.logic.releaseIdleEngine(self.idleReleaseS, bundlePath=bundle)
        try:
            # With a bundle the ring is the one it was trained with (Bundle.settings); the
            # thickness applies to feature-only runs and to "Create peritumoral ring".
            job = self.logic.startBackground(inputs.volumeNode, inputs.segmentationNode, inputs.tumorSegmentId,
                                             bundle, list(inputs.endpoints) or None,
                                             None if bundle else inputs.thicknessMm,
                                             radiomicsBackend=inputs.radiomicsBackend)
        except Exception as error:
            self._fail("Deep-RadScore failed to start.", error)
            return False
        self.job, self.jobInputs = job, inputs
        self.view.setProgress(0.0, job.message)
        self._setStatus("Running the engine in the background...")
        self.view.updateState()
        return True

    def poll(self) -> bool:
        """The view's timer tick: follow the job, finish it when it ends, release an idle engine.
        Never blocks. Returns True while a job runs."""
        job = self.job
        if job is None:
            self._releaseIfIdle()
            return False
        if job.context.get("discarded"):  # the Logic discarded it (its scene was closed)
            self.job, self.jobInputs = None, None
            self.view.updateState()
            return False
        code = job.poll()
        if code is None:
            self.view.setProgress(job.fraction, job.message)
            return True
        inputs = self.jobInputs
        self.job, self.jobInputs = None, None
        self.view.updateState()
        if job.cancelled or code != 0:
            # Read before discarding: discarding cancels the job, and a crash is no Cancel.
            cancelled = job.cancelled
            message = job.error_message()
            trace = job.traceback() if hasattr(job, "traceback") else ""
            self.logic.discardBackground(job)
            if cancelled:
                self._setStatus("Cancelled.")
            else:
                if trace:
                    logger.error("Deep-RadScore engine traceback:\n%s", trace)
                self._setStatus("Failed: " + message.splitlines()[0])
                self.view.showError("Deep-RadScore failed.", message.splitlines()[0], "\n".join(
                    part for part in (message, trace) if part))
            return False
        try:
            output = self.logic.finishBackground(job, heatmapOpacity=inputs.heatmapOpacity)
        except Exception as error:
            self._fail("Could not show the results.", error)
            return False
        self.view.setProgress(1.0, "done")
        if self._shownKey is not None and self._shownKey != self._key(inputs):
            # The user chose another case meanwhile: its results stay shown, this one waits.
            self._setStatus(f"The Run on {inputs.volumeNode.GetName()} has finished: choose that CT and "
                            "segment to see its results.")
            return False
        self.output = output
        self.view.showOutput(output)
        self._setStatus(output.message)
        return False

    def cancel(self) -> None:
        if self.job is None:
            return
        self._setStatus("Cancelling...")
        self.logic.discardBackground(self.job)
        self.job, self.jobInputs = None, None
        self._setStatus("Cancelled.")
        self.view.updateState()

    # -- results ------------------------------------------------------------------------------

    def outputFor(self, inputs: RunInputs) -> Optional[DeepRadScoreOutput]:
        """The results an earlier Run left in the scene for this CT and segment (tagged nodes)."""
        volume, segmentation = inputs.volumeNode, inputs.segmentationNode
        scene = volume.GetScene()
        key = scene_outputs.output_key(volume, segmentation, inputs.tumorSegmentId)
        features = scene_outputs.tagged_table(scene, key, scene_outputs.FEATURES_TABLE)
        if features is None:
            return None
        predictions = scene_outputs.tagged_table(scene, key, scene_outputs.PREDICTIONS_TABLE)
        heatmaps = scene_outputs.heatmap_nodes(volume) if predictions is not None else {}
        return DeepRadScoreOutput(volumeNode=volume, caseResult=None, ringSegmentId="", featuresTableNode=features,
                                  predictionsTableNode=predictions, heatmapNodes=heatmaps,
                                  segmentationNode=segmentation)

    def showHeatmap(self, endpoint: str, opacity: float) -> None:
        if self.output is not None and endpoint in self.output.heatmapNodes:
            self.logic.showHeatmap(self.output, endpoint, opacity)

    def hideHeatmap(self) -> None:
        if self.output is not None:
            self.logic.hideHeatmap(self.output.volumeNode.GetScene())

    def createRing(self, inputs: RunInputs, thicknessMm: float) -> Optional[str]:
        try:
            ringId = self.logic.createPeritumoralRing(inputs.segmentationNode, inputs.tumorSegmentId, thicknessMm,
                                                      referenceVolumeNode=inputs.volumeNode)
        except Exception as error:
            self._fail("Failed to create the peritumoral ring.", error)
            return None
        name = inputs.segmentationNode.GetSegmentation().GetSegment(ringId).GetName()
        self._setStatus(f"Added segment '{name}'.")
        return ringId

    # -- helpers ------------------------------------------------------------------------------

    @staticmethod
    def _key(inputs: RunInputs) -> str:
        return scene_outputs.output_key(inputs.volumeNode, inputs.segmentationNode, inputs.tumorSegmentId)

    def _sameCase(self, output: DeepRadScoreOutput, inputs: RunInputs) -> bool:
        table = output.featuresTableNode
        return (table is not None and table.GetScene() is not None
                and table.GetAttribute(scene_outputs.TABLE_OF_ATTRIBUTE) == self._key(inputs))

    def _releaseIfIdle(self) -> None:
        now = self._clock()
        if now - self._idleCheckedAt < IDLE_CHECK_S:
            return
        self._idleCheckedAt = now
        if self.logic.releaseIdleEngine(self.idleReleaseS):
            logger.info("Deep-RadScore: released the engine after %.0f s without a Run", self.idleReleaseS)
            self.view.updateState()

    def _setStatus(self, text: str) -> None:
        self.status = text
        self.view.setStatus(text)

    def _fail(self, title: str, error: BaseException) -> None:
        from DeepRadScoreLib.errors import InputError

        message = str(error) or type(error).__name__
        if not isinstance(error, (InputError, RuntimeError)):
            logger.exception(title)
        self._setStatus("Failed: " + message.splitlines()[0])
        self.view.showError(title, message.splitlines()[0], message)
