"""The engine run in its own process for the Slicer GUI: one case in, predictions + heatmaps out.

Slicer's GUI starts this file with Slicer's Python (``PythonSlicer worker.py ...``) so that
feature extraction and the networks never block the GUI thread, and Cancel kills the process:
pyradiomics and torch spend minutes inside C code where a Python cancel flag is not looked at,
and only killing the process really stops them. Progress goes to stdout as lines
``PROGRESS <fraction> <message>``; a user-facing problem ends with ``error: <message>`` and
exit status 2 (as the CLI does). With ``--serve`` it stays alive across runs (the Slicer Logic
keeps one engine per bundle): each stdin line is one run's options as JSON, answered by
``DONE <status>``, so the second Run does not re-import torch or reload the bundle. The result is written into ``--output`` (a folder) by
:func:`save_result` in the engine's one result format (``CaseResult.to_json``, the JSON of
``deepradscore predict``, plus the features and image files) and read back by :func:`load_result`.
The ring the worker computes is the one the Slicer Logic adds as a segment (computed once).
``--radiomics-backend`` (``auto``: pyradiomics where it imports in this Python, else the native
backend) is resolved here, and what ran is recorded in the result (:func:`load_backend`).

This module imports only the engine, never slicer/vtk/qt.
"""
from __future__ import annotations

import logging
import argparse
import json
import sys
from pathlib import Path

import numpy as np

# Started as a script: make the module folder (which holds DeepRadScoreLib) importable.
MODULE_DIR = Path(__file__).resolve().parent.parent
if str(MODULE_DIR) not in sys.path:
    sys.path.insert(0, str(MODULE_DIR))

import SimpleITK as sitk  # noqa: E402

from DeepRadScoreLib.errors import Cancelled, InputError  # noqa: E402
from DeepRadScoreLib.regions import DeepRoiPatch  # noqa: E402

logger = logging.getLogger(__name__)
PROGRESS_PREFIX = "PROGRESS "
DONE_PREFIX = "DONE "
RESULT_FILE = "result.json"


def progress_line(fraction: float, message: str) -> str:
    return f"{PROGRESS_PREFIX}{fraction:.4f} {message}".replace("\n", " ")


def parse_progress(line: str):
    """``(fraction, message)`` of a progress line, or None for any other output line."""
    if not line.startswith(PROGRESS_PREFIX):
        return None
    head, _, message = line[len(PROGRESS_PREFIX):].partition(" ")
    try:
        return float(head), message
    except ValueError:
        return None


def save_result(result, folder: str | Path, bundle=None, thickness_mm: float | None = None,
                radiomics_backend: str = "") -> None:
    """Write a CaseResult in the engine's one result format: ``CaseResult.to_json`` (what
    ``deepradscore predict -o`` writes) plus the features, and the images beside it.

    ``result.json`` gets ``features`` and ``files`` (ring, patch pixels, one heatmap per
    endpoint, each named relative to ``folder``), and ``radiomics_backend``: what computed the
    features (``features.backends.describe``); it is written last, so its presence means the
    result is complete.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    document = result.to_json(bundle)
    document["features"] = {k: float(v) for k, v in result.features.items()}
    document["thickness_mm"] = thickness_mm
    document["radiomics_backend"] = radiomics_backend
    files = {"ring": "ring.nrrd", "patch_hu": "patch_hu.npy", "heatmaps": {}}
    sitk.WriteImage(result.ring, str(folder / files["ring"]), True)
    np.save(folder / files["patch_hu"], result.patch.hu)
    for index, (endpoint, image) in enumerate(result.heatmaps.items()):
        files["heatmaps"][endpoint] = f"heatmap_{index}.nrrd"
        sitk.WriteImage(image, str(folder / files["heatmaps"][endpoint]), True)
    document["files"] = files
    (folder / f"{RESULT_FILE}.partial").write_text(json.dumps(document))
    (folder / f"{RESULT_FILE}.partial").replace(folder / RESULT_FILE)


def load_result(folder: str | Path):
    """Read what :func:`save_result` wrote: ``(analysis.CaseResult, synthetic, thickness_mm)``
    (the ring thickness the engine used: the bundle's, or the one asked for)."""
    from DeepRadScoreLib.pipelines.case import CaseResult, EndpointPrediction

    folder = Path(folder)
    document = json.loads((folder / RESULT_FILE).read_text())
    files = document["files"]
    p = document["patch"]
    patch = DeepRoiPatch(hu=np.load(folder / files["patch_hu"]), slice_index=p["slice_index"], row0=p["row0"],
                         column0=p["column0"], centroid_index=tuple(p["centroid_index"]),
                         corners=np.array(p["corners_lps_mm"]), tumour_area_voxels=p["tumour_area_voxels"])
    predictions = {endpoint: EndpointPrediction(**fields) for endpoint, fields in document["predictions"].items()}
    heatmaps = {ep: sitk.ReadImage(str(folder / name)) for ep, name in files["heatmaps"].items()}
    result = CaseResult(features=document["features"], ring=sitk.ReadImage(str(folder / files["ring"])),
                        patch=patch, predictions=predictions, heatmaps=heatmaps, seconds=document["seconds"])
    bundle = document.get("bundle") or {}
    thickness = bundle.get("thickness_mm", document.get("thickness_mm"))
    return result, bool(bundle.get("synthetic", False)), thickness


def load_backend(folder: str | Path) -> str:
    """What computed a saved result's features (``pyradiomics 3.0.1a1``, ``native (...)``; "" for
    a result written before the backend was recorded)."""
    document = json.loads((Path(folder) / RESULT_FILE).read_text())
    return str(document.get("radiomics_backend") or "")


class BundleCache:
    """The one bundle a serving engine keeps loaded: reloaded when its path, device or files
    change (``bundle.json``'s size and modification time), so a retrained bundle is never
    served stale."""

    def __init__(self) -> None:
        self.key = None
        self.bundle = None
        self.loads = 0

    @staticmethod
    def _key(path: str, device: str):
        meta = Path(path) / "bundle.json"
        stat = meta.stat() if meta.exists() else None
        return (str(Path(path).resolve()), device, stat.st_size if stat else None, stat.st_mtime_ns if stat else None)

    def get(self, path: str, device: str):
        if not path:
            return None
        key = self._key(path, device)
        if key != self.key:
            from DeepRadScoreLib.model.bundle import Bundle

            self.bundle, self.key = None, None
            self.bundle = Bundle.load(path, device=device)
            self.key = key
            self.loads += 1
        return self.bundle


def run(args, cache: BundleCache | None = None) -> int:
    from DeepRadScoreLib.pipelines.case import analyse_case
    from DeepRadScoreLib.features.backends import describe

    # An unusable backend ("pyradiomics" where it does not import) is one error line, before
    # the bundle is loaded.
    described = describe(args.radiomics_backend)
    bundle = (cache or BundleCache()).get(args.bundle, args.device)

    def progress(fraction: float, message: str) -> None:
        print(progress_line(fraction, message), flush=True)

    image = sitk.ReadImage(args.image)
    mask = sitk.ReadImage(args.mask)
    result = analyse_case(image, mask, bundle=bundle, endpoints=args.endpoints,
                          thickness_mm=args.thickness_mm, gradcam=True, device=args.device,
                          progress=progress, heatmap_grid="patch", backend=args.radiomics_backend)
    thickness = (bundle.settings.thickness_mm if bundle is not None
                 else args.thickness_mm if args.thickness_mm is not None else 3.0)
    save_result(result, args.output, bundle, thickness, described)
    progress(1.0, "done")
    return 0


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="DeepRadScore one-case analysis for the Slicer module")
    parser.add_argument("--serve", action="store_true",
                        help="keep running: one request per stdin line (these options as JSON), "
                             "each answered by 'DONE <status>'; exit at the end of stdin")
    parser.add_argument("--image")
    parser.add_argument("--mask")
    parser.add_argument("--output", help="result folder")
    parser.add_argument("--bundle", default="")
    parser.add_argument("--endpoints", nargs="*", default=None)
    parser.add_argument("--thickness-mm", type=float, default=None,
                        help="ring thickness (default: the bundle's; 3 mm without a bundle)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--radiomics-backend", default="auto",
                        help="auto (pyradiomics where it imports, else native), pyradiomics or native")
    return parser


def _run_reporting(args, cache: BundleCache) -> int:
    if args.endpoints == []:
        args.endpoints = None
    try:
        return run(args, cache)
    except InputError as err:
        print(f"error: {err}", flush=True)
        return 2
    except Cancelled:
        print("cancelled", flush=True)
        return 130


def request_arguments(request: dict) -> list[str]:
    """A JSON request (what :class:`~DeepRadScoreSlicerLib.background.EngineProcess` writes) as
    the command-line arguments of one run."""
    argv = ["--image", request["image"], "--mask", request["mask"], "--output", request["output"],
            "--bundle", request.get("bundle") or "", "--device", request.get("device", "auto"),
            "--radiomics-backend", request.get("radiomics_backend") or "auto"]
    if request.get("thickness_mm") is not None:
        argv += ["--thickness-mm", str(request["thickness_mm"])]
    if request.get("endpoints"):
        argv += ["--endpoints", *request["endpoints"]]
    return argv


def serve(cache: BundleCache) -> int:
    """One run per request line until stdin closes (Slicer exited or closed the engine).

    torch, pyradiomics and the bundle stay loaded between runs, so a second Run costs the
    radiomics and little else. An unexpected error ends the request, not the engine.
    """
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            args = parser().parse_args(request_arguments(json.loads(line)))
            code = _run_reporting(args, cache)
        except Exception:  # noqa: BLE001  (reported to the GUI as the run's failure)
            import traceback

            traceback.print_exc(file=sys.stdout)
            code = 1
        print(f"{DONE_PREFIX}{code} bundle-loads={cache.loads}", flush=True)
    return 0


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    # The engine process is ours alone (Slicer's own process is never touched): keep
    # pyradiomics' per-GLCM notes out of the log that a crash message quotes.
    from DeepRadScoreLib.processes import pyradiomics_errors_only

    pyradiomics_errors_only()
    cache = BundleCache()
    if args.serve:
        return serve(cache)
    if not (args.image and args.mask and args.output):
        parser().error("--image, --mask and --output are required without --serve")
    return _run_reporting(args, cache)


if __name__ == "__main__":
    sys.exit(main())
