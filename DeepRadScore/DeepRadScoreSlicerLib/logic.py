"""The Deep-RadScore Logic: the Python-console API and everything the module's GUI calls.

It turns volume and segment nodes into SimpleITK images (:mod:`mrml_images`), runs the engine
(``DeepRadScoreLib.pipelines.case.analyse_case``) in this process (:meth:`DeepRadScoreLogic.process`)
or in a child process (:meth:`~DeepRadScoreLogic.startBackground`, :mod:`background`), and puts
the results into the scene (:mod:`scene_outputs`). It sets up the Python packages the engine
needs (:meth:`~DeepRadScoreLogic.setupPythonRequirements`), so a console user gets the same
confirmed install as the GUI.

The radiomics run on pyradiomics where it imports (the SlicerRadiomics extension's) and on the
engine's native backend otherwise (``radiomicsBackend="auto"``; ``"native"`` or
``"pyradiomics"`` choose one): both give the same numbers, and every output says which one ran
(``DeepRadScoreOutput.radiomicsBackend`` and its message).

Imports slicer and vtk, never qt: it runs in Slicer and under headless ``slicer-core`` alike,
where the tests use it. Nothing heavy is imported at module load (torch, pyradiomics and
scikit-learn may not be installed yet when Slicer starts).
"""
from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import slicer

from DeepRadScoreLib.errors import InputError
from DeepRadScoreLib.features.settings import DEFAULT_THICKNESS_MM, check_thickness

from . import dependencies as deps
from . import mrml_images, scene_outputs

logger = logging.getLogger(__name__)

RING_COLOR = (0.98, 0.78, 0.18)  # amber: distinct from Slicer's default first segment colours
TEMP_PREFIX = "DeepRadScore-"


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
    segmentationNode: Optional[object] = None
    # What computed the features, as features.backends.describe() says it
    # ("pyradiomics 3.0.1a1", "native (DeepRadScore 0.1.0)").
    radiomicsBackend: str = ""


def _discard_at_exit(logic_ref) -> None:
    logic = logic_ref()
    if logic is not None:
        logic.discardAll()


class DeepRadScoreLogic:
    """Console API (no qt). Every node it creates goes into the scene of the nodes it is given.

    ``temporaryRoot``: where background runs put the CT and mask they hand to the worker
    (default: Slicer's temporary folder, else the system's); always removed afterwards.
    ``enginePrefix``: the command that starts the worker script (default ``PythonSlicer``).
    """

    def __init__(self) -> None:
        self.temporaryRoot: Optional[str] = None
        self.enginePrefix: Optional[list[str]] = None
        # One engine process stays alive across background Runs with its bundle loaded (a new
        # one for another bundle or device); False: a fresh process per Run.
        self.keepEngine = True
        self._engine = None
        self._jobs: list = []
        # Slicer exiting mid-run: the worker is killed and the patient's CT deleted.
        atexit.register(_discard_at_exit, weakref.ref(self))

    # -- set-up -----------------------------------------------------------------------------

    @staticmethod
    def slicerVersionProblem() -> Optional[str]:
        """Why this Slicer cannot run the module (None when it can, or outside Slicer)."""
        app = getattr(slicer, "app", None)
        if app is None or not hasattr(app, "majorVersion"):
            return None
        return deps.unsupported_slicer(int(app.majorVersion), int(app.minorVersion))

    def setupPythonRequirements(self, confirm: bool = True,
                                statusCallback: Optional[Callable[[str], None]] = None,
                                radiomicsBackend: str = "auto", bundlePath=None,
                                confirmCallback: Optional[Callable[[str], bool]] = None,
                                installProgress: Optional[Callable[[int, int, str], bool]] = None) -> bool:
        """Install what a Run with ``bundlePath`` needs after ONE confirmation; False if the user
        declines or cancels.

        What is needed is decided from the inputs alone (:func:`dependencies.run_needs`): a
        features-only Run needs neither torch nor scikit-learn; a bundle with ONNX networks needs
        onnxruntime; one without needs torch from the PyTorch extension. pyradiomics is never
        needed (the native backend computes the same features).

        :param confirm: ask the user first (a console user may pass False).
        :param statusCallback: ``statusCallback(text)`` before each install step (the GUI shows it).
        :param radiomicsBackend: ``auto``, ``pyradiomics`` or ``native`` (see :meth:`process`).
        :param bundlePath: the Run's bundle folder (None or "": features only).
        :param confirmCallback: ``confirmCallback(text) -> bool`` (default Slicer's OK/Cancel box).
        :param installProgress: ``installProgress(index, count, requirement) -> bool`` before each
            pip package on Slicer 5.10 (False cancels the remaining ones).
        :returns: True when everything is in place.
        :raises RuntimeError: with what the user can do, when this Slicer is too old, this machine
            cannot get the torch the bundle needs, or a package must come from Slicer itself.
        :raises InputError: the bundle folder is not a bundle.
        """
        import platform

        status = statusCallback or (lambda text: logger.info(text))
        problem = self.slicerVersionProblem()
        if problem:
            raise RuntimeError(problem)
        needs = deps.run_needs(bundlePath)
        problem = deps.torch_platform_problem(needs, platform.system(), platform.machine())
        if problem:
            raise RuntimeError(problem)
        missing = deps.missing_requirements(deps.requirements(needs))
        if not missing:
            return True
        blocked = deps.unresolvable(missing)
        if blocked:
            raise RuntimeError(deps.unresolvable_text(blocked))
        if confirm:
            if confirmCallback is None:
                import slicer.util

                def confirmCallback(text):
                    return slicer.util.confirmOkCancelDisplay(text, windowTitle="Deep-RadScore")
            if not confirmCallback(deps.confirmation_text(missing, needs)):
                return False
        torchNeeds = deps.torch_requirements(missing)
        if torchNeeds["torch"] or torchNeeds["torchvision"]:
            status("Installing PyTorch through the PyTorch extension (this takes several minutes)...")
            self._installTorch(torchNeeds)
        pipNeeds = deps.pip_requirements(missing)
        if pipNeeds:
            status(f"Installing {', '.join(pipNeeds)} with pip...")
            if not self._pipInstall(pipNeeds, installProgress):
                status("Installation cancelled: nothing was run.")
                return False
        still = deps.missing_requirements(deps.requirements(needs))
        if still:
            raise RuntimeError("Still missing after installation (restart Slicer and try again): "
                               + "; ".join(m.describe() for m in still))
        status("Python packages installed.")
        return True

    @staticmethod
    def _installTorch(torchNeeds: dict) -> None:
        try:
            import PyTorchUtils
        except ModuleNotFoundError:
            raise RuntimeError("This bundle has no ONNX networks and needs PyTorch: install the PyTorch "
                               "extension from the Extensions Manager and restart Slicer (or use a bundle "
                               "with ONNX networks, which needs no PyTorch).") from None
        torchLogic = PyTorchUtils.PyTorchUtilsLogic()
        # torchInstalled() first: the logic's ``torch`` property installs silently.
        if torchLogic.torchInstalled() and not torchNeeds["torch"] and not torchNeeds["torchvision"]:
            return
        torch = torchLogic.installTorch(askConfirmation=False, torchVersionRequirement=torchNeeds["torch"],
                                        torchvisionVersionRequirement=torchNeeds["torchvision"])
        if torch is None:
            raise RuntimeError("PyTorch was not installed.")

    @staticmethod
    def _pipEnsure():
        """Slicer >= 5.12's ``pip_ensure`` (it shows its own progress dialog), or None (5.10)."""
        import importlib

        for name in ("slicer.packaging", "slicer.pydeps"):
            try:
                ensure = getattr(importlib.import_module(name), "pip_ensure", None)
            except ImportError:
                ensure = None
            if ensure is not None:
                return ensure
        return None

    def _pipInstall(self, pipNeeds: list[str], progress: Optional[Callable[[int, int, str], bool]] = None,
                    pipInstall: Optional[Callable[[list[str]], None]] = None) -> bool:
        """Install ``pipNeeds`` under the constraints file; False when ``progress`` cancelled.

        Slicer 5.12's ``pip_ensure`` shows its own dialog and takes them all at once; on 5.10
        (``slicer.util.pip_install``, or ``pipInstall`` given) they go one package at a time, with
        ``progress(index, count, requirement)`` before each, so the user sees which one and can
        cancel between packages.
        """
        from packaging.requirements import Requirement

        with tempfile.TemporaryDirectory(prefix=TEMP_PREFIX) as folder:
            constraints = os.path.join(folder, "constraints.txt")
            upgrading = [Requirement(r).name for r in pipNeeds]
            Path(constraints).write_text(deps.constraints_text(upgrading=upgrading))
            ensure = self._pipEnsure() if pipInstall is None else None
            if ensure is not None:
                ensure([Requirement(r) for r in pipNeeds], constraints=constraints, prompt_install=False,
                       requester="Deep-RadScore")
                return True
            if pipInstall is None:
                import slicer.util

                pipInstall = slicer.util.pip_install
            for index, requirement in enumerate(pipNeeds):
                if progress is not None and progress(index, len(pipNeeds), requirement) is False:
                    return False
                pipInstall([requirement, "-c", constraints])
            if progress is not None:
                progress(len(pipNeeds), len(pipNeeds), "")
        return True

    # -- the ring ---------------------------------------------------------------------------

    @staticmethod
    def ringSegmentName(tumorName: str, thicknessMm: float) -> str:
        return f"{tumorName} peritumoral {thicknessMm:g} mm"

    def createPeritumoralRing(self, segmentationNode, tumorSegmentId: str, thicknessMm: float = DEFAULT_THICKNESS_MM,
                              referenceVolumeNode=None) -> str:
        """Add the engine's peritumoral ring of a segment as a new segment; return its ID.

        The tumour is taken on ``referenceVolumeNode``'s grid when given, else on the
        segmentation's own reference geometry. A ring segment of the same name is replaced.
        """
        import SimpleITK as sitk

        from DeepRadScoreLib.regions import peritumoral_ring

        thicknessMm = check_thickness(thicknessMm, "thicknessMm")
        tumour = self._tumour(segmentationNode, tumorSegmentId)
        labelmap = mrml_images.export_segment(segmentationNode, tumorSegmentId, referenceVolumeNode)
        try:
            mask = mrml_images.volume_to_image(labelmap, "uint8")
            ring = sitk.GetArrayFromImage(peritumoral_ring(mask, thicknessMm))
        finally:
            mrml_images.discard_labelmap(labelmap)
        return self._addRingSegment(segmentationNode, tumorSegmentId, ring, thicknessMm, referenceVolumeNode,
                                    tumour.GetName())

    def _tumour(self, segmentationNode, tumorSegmentId: str):
        tumour = segmentationNode.GetSegmentation().GetSegment(tumorSegmentId or "")
        if tumour is None:
            raise InputError(f"{segmentationNode.GetName()}: no segment with ID '{tumorSegmentId}'")
        return tumour

    def _addRingSegment(self, segmentationNode, tumorSegmentId: str, ringArray, thicknessMm: float,
                        referenceVolumeNode, tumourName: str) -> str:
        """Import a ring computed on the tumour's export grid ([k, j, i] uint8) as a segment."""
        segmentation = segmentationNode.GetSegmentation()
        name = self.ringSegmentName(tumourName, thicknessMm)
        # The tumour export gives a labelmap node placed exactly where the ring was computed.
        labelmap = mrml_images.export_segment(segmentationNode, tumorSegmentId, referenceVolumeNode)
        try:
            mrml_images.set_volume_array(labelmap, ringArray.astype("uint8"))
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
            mrml_images.discard_labelmap(labelmap)
        ringSegment = segmentation.GetSegment(added[0])
        ringSegment.SetName(name)
        ringSegment.SetColor(*RING_COLOR)
        return added[0]

    # -- running the engine -----------------------------------------------------------------

    def caseImages(self, volumeNode, segmentationNode, tumorSegmentId: str, pixelType="float32"):
        """The CT (``pixelType``; None: the node's own, e.g. int16 HU) and the tumour (uint8 on
        the CT's grid) as SimpleITK images."""
        if volumeNode is None or segmentationNode is None:
            raise InputError("select a CT volume and a segmentation")
        self._tumour(segmentationNode, tumorSegmentId)
        image = mrml_images.volume_to_image(volumeNode, pixelType)
        mask = mrml_images.segment_to_mask(segmentationNode, tumorSegmentId, volumeNode)
        return image, mask

    def process(self, volumeNode, segmentationNode, tumorSegmentId: str, bundlePath=None, endpoints=None,
                progressCallback=None, cancel=None, thicknessMm: Optional[float] = None,
                device: str = "auto", predictionsTableNode=None, featuresTableNode=None,
                heatmapOpacity: float = scene_outputs.DEFAULT_HEAT_OPACITY,
                radiomicsBackend: str = "auto") -> DeepRadScoreOutput:
        """Run the engine in this process on the nodes' data and show the results.

        :param bundlePath: model bundle folder; None or "" for the ring and features only.
        :param endpoints: list of endpoints to predict (default: all of the bundle's).
        :param progressCallback: ``progressCallback(fraction, message)``, the engine's protocol.
        :param cancel: ``cancel() -> bool``, looked at between steps and inside the radiomics.
        :param thicknessMm: ring thickness; None: the bundle's (``Bundle.settings``), 3 mm
            without a bundle. A thickness that contradicts the bundle's is refused.
        :param radiomicsBackend: ``auto`` (pyradiomics where it imports, else the native
            backend), ``pyradiomics`` or ``native``; both give the same numbers, so any bundle
            works with either. ``pyradiomics`` where it is absent is refused (InputError).
        :returns: a :class:`DeepRadScoreOutput`; its ``radiomicsBackend`` says what ran.
        """
        from DeepRadScoreLib.pipelines.case import analyse_case
        from DeepRadScoreLib.features.backends import describe

        start = time.time()
        radiomicsBackend, warning = deps.radiomics_choice(radiomicsBackend)
        described = describe(radiomicsBackend)  # an unusable backend is refused before any work
        image, mask = self.caseImages(volumeNode, segmentationNode, tumorSegmentId)
        bundle = None
        if bundlePath:
            from DeepRadScoreLib.model.bundle import Bundle

            bundle = Bundle.load(str(bundlePath), device=device)
        result = analyse_case(image, mask, bundle=bundle, endpoints=list(endpoints) if endpoints else None,
                              settings=self._settingsRequest(thicknessMm, radiomicsBackend), gradcam=True,
                              device=device, progress=progressCallback, cancel=cancel, heatmap_grid="patch")
        output = self._showRun(volumeNode, segmentationNode, tumorSegmentId, image, result,
                               result.settings.thickness_mm,
                               bool(bundle and bundle.synthetic), predictionsTableNode, featuresTableNode,
                               heatmapOpacity, (radiomicsBackend, described, warning))
        logger.info("Deep-RadScore finished in %.1f s", time.time() - start)
        return output

    @staticmethod
    def _settingsRequest(thicknessMm: Optional[float], radiomicsBackend: str):
        """The console's and the GUI's options as the engine's one settings request (the engine
        checks them and resolves them against the bundle's, as on the command line)."""
        from DeepRadScoreLib.features.settings import SettingsRequest

        return SettingsRequest(thickness_mm=None if thicknessMm is None else float(thicknessMm),
                               backend=radiomicsBackend)

    def _showRun(self, volumeNode, segmentationNode, tumorSegmentId, image, result, thicknessMm, synthetic,
                 predictionsTableNode, featuresTableNode, heatmapOpacity, backend=None) -> DeepRadScoreOutput:
        import SimpleITK as sitk

        tumour = self._tumour(segmentationNode, tumorSegmentId)
        # The engine's ring (computed once, in the run) becomes the ring segment.
        ringId = self._addRingSegment(segmentationNode, tumorSegmentId, sitk.GetArrayFromImage(result.ring),
                                      thicknessMm, volumeNode, tumour.GetName())
        output = self.showResults(volumeNode, image, result, ringId, synthetic=synthetic,
                                  predictionsTableNode=predictionsTableNode, featuresTableNode=featuresTableNode,
                                  segmentationNode=segmentationNode, heatmapOpacity=heatmapOpacity,
                                  tumorSegmentId=tumorSegmentId)
        if backend is not None and backend[1]:
            requested, described, warning = backend
            output.radiomicsBackend = described
            output.message += " " + deps.radiomics_backend_text(described, requested)
            if warning:
                logger.warning(warning)
                output.message += " " + warning
        return output

    def _temporaryFolder(self) -> str:
        root = self.temporaryRoot
        if root is None:
            app = getattr(slicer, "app", None)
            root = getattr(app, "temporaryPath", None) if app is not None else None
        if root:
            os.makedirs(root, exist_ok=True)
        return tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=root or None)

    def startBackground(self, volumeNode, segmentationNode, tumorSegmentId: str, bundlePath=None, endpoints=None,
                        thicknessMm: Optional[float] = None, device: str = "auto", radiomicsBackend: str = "auto"):
        """Start the engine in a child process (what the GUI does); poll or wait on the handle.

        The CT (in its own pixel type, e.g. int16, compressed) and the mask go to a private
        temporary folder that :meth:`finishBackground` or :meth:`discardBackground` delete (also
        when the start fails, the scene closes, or Slicer exits); the job keeps no copy of the CT,
        only its geometry. Closing the scene cancels and discards the job. ``thicknessMm`` and
        ``radiomicsBackend`` as in :meth:`process` (the worker resolves ``auto`` in its own
        Python and records what ran).

        :returns: a :class:`~DeepRadScoreSlicerLib.background.BackgroundAnalysis` or
            :class:`~DeepRadScoreSlicerLib.background.EngineJob`.
        """
        import SimpleITK as sitk

        from DeepRadScoreLib.features.backends import BACKENDS

        from .background import BackgroundAnalysis, EngineJob
        from .worker import RunRequest

        if radiomicsBackend not in BACKENDS:
            raise InputError(f"radiomicsBackend: unknown backend '{radiomicsBackend}' (choose one of "
                             f"{', '.join(BACKENDS)})")
        radiomicsBackend, warning = deps.radiomics_choice(radiomicsBackend)
        image, mask = self.caseImages(volumeNode, segmentationNode, tumorSegmentId, pixelType=None)
        geometry = mrml_images.geometry_only(image)
        folder = self._temporaryFolder()
        try:
            imagePath, maskPath = os.path.join(folder, "image.nrrd"), os.path.join(folder, "mask.nrrd")
            sitk.WriteImage(image, imagePath, True)
            del image  # written: the engine reads the file, no second copy stays here
            sitk.WriteImage(mask, maskPath, True)
            request = RunRequest(image=imagePath, mask=maskPath, output=os.path.join(folder, "result"),
                                 bundle=str(bundlePath or ""), device=device,
                                 endpoints=list(endpoints) if endpoints else None,
                                 settings=self._settingsRequest(thicknessMm, radiomicsBackend))
            engine = self._engineFor(bundlePath, device) if self.keepEngine else None
            if engine is not None:
                job = EngineJob(engine, request)
            else:
                job = BackgroundAnalysis(request, command_prefix=self.enginePrefix)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        scene = volumeNode.GetScene()
        job.context = {"volumeNode": volumeNode, "segmentationNode": segmentationNode,
                       "tumorSegmentId": tumorSegmentId, "geometry": geometry, "bundlePath": bundlePath,
                       "thicknessMm": thicknessMm, "folder": folder, "scene": scene, "discarded": False,
                       "radiomicsBackend": radiomicsBackend, "radiomicsWarning": warning}
        job.context["closeObserver"] = scene.AddObserver(
            slicer.vtkMRMLScene.StartCloseEvent, lambda caller, event, job=job: self.discardBackground(job))
        self._jobs.append(job)
        return job

    def _engineFor(self, bundlePath, device: str):
        """The running engine if it serves this bundle and is idle, else a new one (the old one,
        if idle, is closed); None when a run is still in progress on it."""
        from .background import EngineProcess

        engine = self._engine
        if engine is not None and engine.serves(bundlePath, device, self.enginePrefix):
            return engine
        if engine is not None:
            if engine.alive() and engine.busy():
                return None  # busy: this run gets a one-shot process
            engine.close()
        self._engine = EngineProcess(str(bundlePath or ""), device, self.enginePrefix)
        return self._engine

    def engineRunning(self) -> bool:
        """Whether a kept engine process is alive (holding torch, the bundle, any GPU memory)."""
        return self._engine is not None and self._engine.alive()

    def closeEngine(self) -> bool:
        """End the kept engine process (a later Run starts a new one); True if one was ended.
        A run in progress on it is cancelled first."""
        engine, self._engine = self._engine, None
        if engine is None:
            return False
        for job in list(self._jobs):
            if getattr(job, "engine", None) is engine:
                self.discardBackground(job)
        engine.close()
        return True

    def releaseIdleEngine(self, idleSeconds: float, bundlePath=None) -> bool:
        """End the kept engine when it has been idle for ``idleSeconds``, or (``bundlePath``
        given) when it is idle and serves another bundle; True if it was ended."""
        engine = self._engine
        if engine is None or engine.busy():
            return False
        other = bundlePath is not None and engine.bundle_path != str(bundlePath or "")
        if other or not engine.alive() or time.monotonic() - engine.idle_since >= idleSeconds:
            return self.closeEngine()
        return False

    def _release(self, job) -> None:
        context = job.context
        observer = context.pop("closeObserver", None)
        if observer is not None:
            context["scene"].RemoveObserver(observer)
        shutil.rmtree(context["folder"], ignore_errors=True)
        if job in self._jobs:
            self._jobs.remove(job)

    def finishBackground(self, job, predictionsTableNode=None, featuresTableNode=None,
                         heatmapOpacity: float = scene_outputs.DEFAULT_HEAT_OPACITY) -> DeepRadScoreOutput:
        """Read a finished worker's result and show it like :meth:`process` does."""
        from .worker import load_backend, load_result

        context = job.context
        if context.get("discarded"):
            raise RuntimeError("the run was discarded (its scene was closed)")
        try:
            result, synthetic, thickness = load_result(job.output_dir)
            described = load_backend(job.output_dir)
        finally:
            self._release(job)
        return self._showRun(context["volumeNode"], context["segmentationNode"], context["tumorSegmentId"],
                             context["geometry"], result, thickness, synthetic,
                             predictionsTableNode, featuresTableNode, heatmapOpacity,
                             (context.get("radiomicsBackend", "auto"), described, context.get("radiomicsWarning", "")))

    def discardBackground(self, job) -> None:
        """Stop a worker if it still runs and delete its temporary files (Cancel, a failure, a
        scene close)."""
        job.context["discarded"] = True
        job.cancel()
        self._release(job)

    def discardAll(self) -> None:
        """Cancel every run, delete their files and end the engine (Slicer exits)."""
        for job in list(self._jobs):
            self.discardBackground(job)
        self.closeEngine()

    # -- showing results --------------------------------------------------------------------

    def showResults(self, volumeNode, image, result, ringSegmentId: str, synthetic: bool = False,
                    predictionsTableNode=None, featuresTableNode=None, segmentationNode=None,
                    heatmapOpacity: float = scene_outputs.DEFAULT_HEAT_OPACITY,
                    tumorSegmentId: str = "") -> DeepRadScoreOutput:
        """Tables, Grad-CAM volumes, the overlay and the slice position for one CaseResult.

        The tables are those of this CT and tumour segment (node attributes say which): reused by
        a later run on the same CT and segment, never by a run on another (``featuresTableNode``
        and ``predictionsTableNode`` are used only if they belong to this CT and segment).
        """
        scene = volumeNode.GetScene()
        base = volumeNode.GetName()
        key = scene_outputs.output_key(volumeNode, segmentationNode, tumorSegmentId)
        features = scene_outputs.table_node(scene, f"{base} Deep-RadScore features", featuresTableNode,
                                            key=key, kind=scene_outputs.FEATURES_TABLE)
        scene_outputs.fill_features_table(features, result.features)
        output = DeepRadScoreOutput(volumeNode=volumeNode, caseResult=result, ringSegmentId=ringSegmentId,
                                    featuresTableNode=features, segmentationNode=segmentationNode)
        if result.predictions:
            table = scene_outputs.table_node(scene, f"{base} Deep-RadScore predictions", predictionsTableNode,
                                             key=key, kind=scene_outputs.PREDICTIONS_TABLE)
            scene_outputs.fill_predictions_table(table, result.predictions)
            output.predictionsTableNode = table
            for endpoint, heatmap in result.heatmaps.items():
                output.heatmapNodes[endpoint] = scene_outputs.add_heatmap_volume(
                    volumeNode, heatmap, result.patch, endpoint, f"{base} Grad-CAM {endpoint}")
            if output.heatmapNodes:
                self.showHeatmap(output, next(iter(output.heatmapNodes)), heatmapOpacity)
            output.message = (f"Predicted {len(result.predictions)} endpoint(s) from {len(result.features)} "
                              "radiomics features and the deep-ROI patch; the Grad-CAM heatmap is shown over the CT.")
            if synthetic:
                output.message += (" The bundle was trained on a SYNTHETIC cohort: these numbers demonstrate "
                                   "the software and have no clinical meaning.")
        else:
            output.message = (f"Computed the ring and {len(result.features)} radiomics features. Predictions "
                              "need a model bundle trained with `deepradscore train` (or the demo's, which is "
                              "trained on synthetic data and means nothing clinically).")
            # Predictions an earlier Run (with a bundle) left for this case are not this run's.
            stale = scene_outputs.tagged_table(scene, key, scene_outputs.PREDICTIONS_TABLE)
            if stale is not None:
                scene.RemoveNode(stale)
            scene_outputs.hide_overlay(scene)
        scene_outputs.jump_slices(scene, scene_outputs.patch_centre_ras(result.patch, image))
        return output

    def showHeatmap(self, output: DeepRadScoreOutput, endpoint: str,
                    opacity: float = scene_outputs.DEFAULT_HEAT_OPACITY) -> None:
        """Show one endpoint's Grad-CAM as the foreground over the CT in the slice views that show
        this CT (every view if none does), with the segments as outlines so the heatmap over the
        tumour stays visible; :meth:`hideHeatmap` restores what those views showed."""
        node = output.heatmapNodes[endpoint]
        scene_outputs.show_overlay(output.volumeNode.GetScene(), output.volumeNode, node, opacity)
        if output.segmentationNode is not None:
            scene_outputs.segments_as_outlines(output.segmentationNode)

    @staticmethod
    def hideHeatmap(scene) -> int:
        """Take our heatmaps out of the views and restore what each view showed before."""
        return scene_outputs.hide_overlay(scene)

    @staticmethod
    def setHeatmapOpacity(scene, opacity: float) -> int:
        """Opacity of our heatmaps only (views showing another foreground keep theirs)."""
        return scene_outputs.set_overlay_opacity(scene, opacity)
