"""One case: CT + tumour mask -> regions, features, and with a bundle the predictions and heatmaps.

:func:`analyse_case` is what both ``deepradscore predict`` and the Slicer module call, so the two
can never disagree. Scoring goes through :func:`scoring.score_cases` like a whole cohort does.
"""
from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import pandas as pd
import SimpleITK as sitk

from DeepRadScoreLib.errors import InputError
from DeepRadScoreLib.features.settings import ExtractionSettings, SettingsRequest, resolve_settings
from DeepRadScoreLib.progress import report, scaled
from DeepRadScoreLib.regions import DeepRoiPatch, deep_roi_patch, patch_to_volume, peritumoral_ring
from DeepRadScoreLib.resources import torch_threads


@dataclass
class EndpointPrediction:
    endpoint: str
    probability: float            # Deep-RadScore (fusion) probability of class 1
    predicted_class: int          # 1 when probability >= threshold
    threshold: float              # chosen on training data (Youden's J), from the bundle
    classifier: str               # the fusion model's chosen classifier
    radiomics_probability: float  # Radiomics-Score model
    deep_probability: float       # Deep-CT model
    radscore_tumor: float
    radscore_peritumoral: float
    deep_features: list[float]    # k deep features, mean over the cross-fitted networks


@dataclass
class CaseResult:
    features: dict
    ring: sitk.Image
    patch: DeepRoiPatch
    settings: ExtractionSettings | None = None  # what the case was extracted with
    predictions: dict[str, EndpointPrediction] = field(default_factory=dict)
    heatmaps: dict[str, sitk.Image] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    radiomics_jobs: int = 1       # processes the radiomics used

    def to_json(self, bundle=None) -> dict:
        """The result as plain JSON (what ``predict -o result.json`` writes)."""
        out = {
            "settings": self.settings.summary() if self.settings is not None else None,
            "patch": self.patch.to_dict(),
            "predictions": {e: asdict(p) for e, p in self.predictions.items()},
            "seconds": self.seconds,
        }
        if bundle is not None:
            out["bundle"] = {"path": str(bundle.path) if bundle.path else None,
                             "synthetic": bundle.synthetic,
                             "deep_weights": bundle.deep.provenance.get("weights"),
                             "deep_runtime": bundle.deep.runtime,
                             "skipped_endpoints": bundle.skipped}
            if bundle.synthetic:
                out["note"] = ("trained on a synthetic cohort: these numbers demonstrate the "
                               "software and have no clinical meaning")
        return out


def analyse_case(image, mask, bundle=None, endpoints=None,
                 settings: SettingsRequest | ExtractionSettings | None = None,
                 gradcam=True, device: str = "auto", radiomics_jobs: int | Callable[[], int] = 1, progress=None,
                 cancel=None, heatmap_grid: str = "ct", threads: int | None = None) -> CaseResult:
    """Ring, 1702 features and deep-ROI patch of one case; with a bundle, per endpoint the three
    models' probabilities and (``gradcam``: True = every endpoint, or a list of endpoints) the
    Grad-CAM heatmap on the CT grid.

    ``settings``: what was asked for (ring thickness, parameter file, radiomics backend; ``None``
    values: the bundle's, else the defaults), resolved once by
    :func:`~DeepRadScoreLib.features.settings.resolve_settings`: with a bundle the case is
    extracted with the bundle's settings, and an asked value that contradicts them is refused
    (:class:`InputError`), never silently used; an :class:`ExtractionSettings` is taken as
    already resolved for this bundle. ``CaseResult.settings`` records what was used.
    ``image``/``mask`` are SimpleITK images on one grid (see ``imaging.load_case``). ``device``
    is used when ``bundle`` is a path to load. ``radiomics_jobs`` > 1 spreads the radiomics over
    processes (the command line does; inside Slicer the engine keeps to its one worker process);
    a callable is called once, right before the radiomics start, for the count (``predict`` counts
    the free cores over a window that spans reading the case and the regions:
    ``seconds["count_cores"]`` is what that call took).
    ``heatmap_grid``: "ct" puts each heatmap on the whole CT grid (what ``predict --gradcam``
    writes); "patch" gives a one-slice ``size`` x ``size`` image at the patch (the Slicer module).
    ``threads``: torch intra-op threads for the Deep-CT networks and Grad-CAM, which run in a
    thread beside the radiomics (``None``: one, since the radiomics have the cores).
    A bundle loaded with ``background=True`` is waited for only when it is needed, so its
    loading overlaps the radiomics (``seconds["bundle_wait"]``: what was left of it then;
    ``seconds["deep"]``: the Deep-CT's own time, ``seconds["deep_wait"]``: what of it was left
    after the radiomics).
    """
    from DeepRadScoreLib.features.backends import pyradiomics_version, resolve
    from DeepRadScoreLib.features.extraction import case_features

    seconds = {}
    if bundle is not None and not hasattr(bundle, "meta"):
        from DeepRadScoreLib.model.bundle import Bundle

        t0 = time.perf_counter()
        bundle = Bundle.load(bundle, device=device, endpoints=endpoints)
        seconds["load_bundle"] = time.perf_counter() - t0
    if bundle is not None:
        endpoints = list(endpoints) if endpoints else bundle.endpoints
        for endpoint in endpoints:
            bundle.check_endpoint(endpoint)
    used = settings if isinstance(settings, ExtractionSettings) else resolve_settings(
        settings, bundle.settings if bundle is not None else None,
        str(bundle.path or "bundle") if bundle is not None else "")
    used = used.ran_with(resolve(used.backend), pyradiomics_version() or "")
    report(progress, 0.0, "peritumoral ring and deep-ROI patch", cancel)
    t0 = time.perf_counter()
    ring = peritumoral_ring(mask, used.thickness_mm)
    patch = deep_roi_patch(image, mask)
    seconds["regions"] = time.perf_counter() - t0
    heat_endpoints = []
    if bundle is not None:
        heat_endpoints = list(endpoints) if gradcam is True else list(gradcam or [])
        for endpoint in heat_endpoints:
            bundle.check_endpoint(endpoint)
    # The Deep-CT needs only the patch: its networks (and Grad-CAM) run in a thread while the
    # radiomics run, once the bundle has loaded (they took 0.5 s after the radiomics).
    deep_job = _DeepJob(bundle, patch, heat_endpoints, threads) if bundle is not None else None
    report(progress, 0.05, "radiomics features (tumour and ring)", cancel)
    t0 = time.perf_counter()
    # The radiomics are the longest step: their own progress fills 5-80 % and cancel reaches them.
    try:
        if callable(radiomics_jobs):
            jobs = int(radiomics_jobs())
            seconds["count_cores"] = time.perf_counter() - t0
            t0 = time.perf_counter()
        else:
            jobs = int(radiomics_jobs)
        features = case_features(image, mask, ring, used, jobs=jobs, progress=scaled(progress, 0.05, 0.8),
                                 cancel=cancel)
    except BaseException:
        if deep_job is not None:
            deep_job.abandon()
        raise
    seconds["radiomics"] = time.perf_counter() - t0
    result = CaseResult(features=features, ring=ring, patch=patch, settings=used, seconds=seconds,
                        radiomics_jobs=jobs)
    if bundle is None:
        report(progress, 1.0, "done", cancel)
        return result

    from DeepRadScoreLib.model.scoring import score_cases

    report(progress, 0.8, "scoring", cancel)
    t0 = time.perf_counter()
    bundle.wait()
    seconds["bundle_wait"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    deep_features, heats = deep_job.result()
    seconds["deep_wait"] = time.perf_counter() - t0
    seconds["deep"] = deep_job.seconds
    t0 = time.perf_counter()
    table = pd.DataFrame([features], index=pd.Index(["case"], name="case_id"))
    scores = score_cases(bundle, table, patch.hu[None], endpoints, deep_features=deep_features)
    seconds["scoring"] = time.perf_counter() - t0
    for endpoint in endpoints:
        fused = scores.fused[endpoint].iloc[0]
        probability = scores.score("case", endpoint, "fusion")
        threshold = bundle.threshold(endpoint, "fusion")
        result.predictions[endpoint] = EndpointPrediction(
            endpoint=endpoint, probability=probability,
            predicted_class=int(probability >= threshold), threshold=threshold,
            classifier=bundle.model_info(endpoint, "fusion").chosen,
            radiomics_probability=scores.score("case", endpoint, "radiomics"),
            deep_probability=scores.score("case", endpoint, "deep"),
            radscore_tumor=float(fused["radscore_tumor"]),
            radscore_peritumoral=float(fused["radscore_peritumoral"]),
            deep_features=[float(fused[c]) for c in fused.index if c.startswith("deep_")])
    if heat_endpoints:
        t0 = time.perf_counter()
        report(progress, 0.85, f"Grad-CAM of {len(heat_endpoints)} endpoint(s)", cancel)
        for endpoint in heat_endpoints:
            result.heatmaps[endpoint] = (patch_to_volume(patch, heats[endpoint], image) if heatmap_grid == "ct"
                                         else _patch_slice(patch, heats[endpoint], image))
        seconds["gradcam"] = time.perf_counter() - t0
    report(progress, 1.0, "done", cancel)
    return result


class _DeepJob:
    """The Deep-CT part of one case (deep features of every network, and the Grad-CAM maps of
    ``heat_endpoints``), computed in a thread that starts at once and first waits for the bundle.

    ``threads`` torch threads (default one: it overlaps the radiomics, which have the cores); more
    threads than free cores made scoring 15x slower. Errors reach the caller in
    :meth:`result`, in its own thread.
    """

    def __init__(self, bundle, patch: DeepRoiPatch, heat_endpoints: list[str], threads: int | None):
        self._outcome = None
        self.seconds = 0.0
        self._abandoned = threading.Event()

        def run():
            try:
                deep = bundle.deep  # waits for a background load
                if self._abandoned.is_set():
                    return
                t0 = time.perf_counter()
                with torch_threads(threads or 1):
                    # One backbone pass per network serves the features and every endpoint's map.
                    if heat_endpoints:
                        features, heats = deep.features_and_gradcams(patch.hu, heat_endpoints)
                    else:
                        features, heats = deep.features(patch.hu[None]), {}
                self.seconds = time.perf_counter() - t0
                self._outcome = (features, heats)
            except BaseException as err:  # handed to the caller's thread by result()
                self._outcome = err

        self._thread = threading.Thread(target=run, name="deep-ct", daemon=True)
        self._thread.start()

    def abandon(self) -> None:
        """The case failed or was cancelled: compute nothing more, and return once the thread
        is out of torch. A process that ends while a thread is inside torch's C++ code can be
        aborted ("terminate called without an active exception") instead of exiting with its
        own status (seen in the test suite)."""
        self._abandoned.set()
        self._thread.join()

    def result(self) -> tuple[dict, dict]:
        """``(deep features {endpoint: (K, 1, k)}, heatmaps {endpoint: (160, 160)})``."""
        self._thread.join()
        if isinstance(self._outcome, BaseException):
            raise self._outcome
        return self._outcome


def _patch_slice(patch: DeepRoiPatch, values, reference: sitk.Image) -> sitk.Image:
    """A ``size`` x ``size`` x 1 image on the CT's voxel grid where the patch lies (Slicer's
    heatmap: 100 kB where the whole CT grid would be hundreds of MB per endpoint)."""
    import numpy as np

    image = sitk.GetImageFromArray(np.asarray(values, dtype=np.float32)[None])
    image.SetSpacing(reference.GetSpacing())
    image.SetDirection(reference.GetDirection())
    image.SetOrigin(reference.TransformContinuousIndexToPhysicalPoint(
        (float(patch.column0), float(patch.row0), float(patch.slice_index))))
    return image


def predict_to_files(bundle, image_path, mask_path, output_json, gradcam_path=None,
                     gradcam_endpoint: str | None = None, endpoints: list[str] | None = None,
                     label: int | None = None, roi_name: str | None = None,
                     radiomics_jobs: int | Callable[[], int] = 1,
                     earlier_seconds: dict[str, float] | None = None, progress=None,
                     cancel=None, settings: SettingsRequest | None = None,
                     threads: int | None = None) -> tuple[CaseResult, dict]:
    """One case from files to ``output_json`` (and its heatmap volume), both or neither.

    :param bundle: a loaded :class:`~DeepRadScoreLib.model.bundle.Bundle`.
    :param gradcam_path: where to write the Grad-CAM volume of ``gradcam_endpoint`` (default:
        the first endpoint); ``None`` for no heatmap.
    :param earlier_seconds: stages timed before this call (e.g. ``{"load_bundle": 1.2}``): they
        go into the JSON's ``seconds`` and its total.
    :param settings: what the user asked for (``None`` values: the bundle's); a value that
        contradicts the bundle's is refused before the case is read.
    :param radiomics_jobs: processes for the radiomics, or a callable giving them right before
        the radiomics start (see :func:`analyse_case`).
    :param threads: torch intra-op threads for scoring and Grad-CAM (see :func:`analyse_case`).
    :returns: the :class:`CaseResult` and the JSON document written.
    """
    from DeepRadScoreLib.io.images import load_case
    from DeepRadScoreLib.outputs import atomic_file

    started = time.perf_counter()
    # Resolved (or refused) once, before the case is read.
    settings = resolve_settings(settings, bundle.settings, str(bundle.path or "bundle"))
    case = load_case(image_path, mask_path, label=label, roi_name=roi_name)
    endpoints = list(endpoints) if endpoints else bundle.endpoints
    heat_endpoint = None
    if gradcam_path:
        heat_endpoint = gradcam_endpoint or endpoints[0]
        bundle.check_endpoint(heat_endpoint)
    elif gradcam_endpoint:
        raise InputError("--gradcam-endpoint needs --gradcam FILE")
    try:
        result = analyse_case(case.image, case.mask, bundle, endpoints, settings,
                              gradcam=[heat_endpoint] if heat_endpoint else False,
                              radiomics_jobs=radiomics_jobs, progress=progress, cancel=cancel,
                              threads=threads)
    except InputError as err:  # "tumour mask: too small ...": say which file holds it
        if str(err).startswith(("tumour mask", "peritumoral ring")):
            raise InputError(f"{mask_path}: {err}") from None
        raise
    from DeepRadScoreLib.features.backends import describe

    out = result.to_json(bundle)
    out["image"], out["mask"] = str(image_path), str(mask_path)
    out["radiomics_backend"] = describe(result.settings.backend)
    earlier = dict(earlier_seconds or {})
    out["seconds"].update(earlier)
    out["seconds"]["total"] = time.perf_counter() - started + sum(earlier.values())
    if heat_endpoint:
        out["gradcam"] = {"endpoint": heat_endpoint, "file": str(gradcam_path)}
    if threads is not None:
        out["threads"] = int(threads)
    out["radiomics_jobs"] = result.radiomics_jobs
    # Both files appear together or not at all: the heatmap is renamed into place only after
    # the JSON has been written.
    with contextlib.ExitStack() as stack:
        if heat_endpoint:
            tmp_heat = stack.enter_context(atomic_file(gradcam_path))
            sitk.WriteImage(result.heatmaps[heat_endpoint], str(tmp_heat))
        with atomic_file(output_json) as tmp_json:
            tmp_json.write_text(json.dumps(out, indent=1) + "\n")
    return result, out
