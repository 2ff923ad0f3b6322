"""The engine run in its own process for the Slicer GUI: one case in, predictions + heatmaps out.

Slicer's GUI starts this file with Slicer's Python (``PythonSlicer worker.py``) so that feature
extraction and the networks never block the GUI thread, and Cancel kills the process: pyradiomics
and torch spend minutes inside C code where a Python cancel flag is not looked at, and only
killing the process really stops them.

Each line on stdin is one :class:`RunRequest` as JSON (read with :mod:`DeepRadScoreLib.typedjson`,
so a wrong field is one ``error:`` line naming it), and the worker calls the engine's one-case
function (``pipelines.case.analyse_case``) with it: there is no command line. Progress goes to stdout as
``PROGRESS <fraction> <message>``; each request ends with ``DONE <status> bundle-loads=<n>``. A
user-facing problem prints ``error: <message>`` (status 2), an unexpected exception its traceback
and then ``exception: <type>: <message>`` (status 1), so the GUI can show the message and log the
traceback. The process stays alive across requests (the Logic keeps one engine per bundle, so a
second Run does not re-import torch or reload the bundle) and exits at the end of stdin with the
last request's status: a one-shot run writes one line and closes stdin.

The result is written into the request's ``output`` folder by :func:`save_result` in the engine's
one result format (``CaseResult.to_json``, the JSON of ``deepradscore predict``, plus the features
and image files) and read back by :func:`load_result`. The ring the worker computes is the one the
Slicer Logic adds as a segment (computed once). ``radiomics_backend`` (``auto``: pyradiomics where
it imports in this Python, else the native backend) is resolved here, and what ran is recorded in
the result (:func:`load_backend`).

This module imports only the engine, never slicer/vtk/qt; the engine is imported inside the
functions, so importing this module (the GUI does, for the protocol) loads nothing heavy.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from DeepRadScoreLib.features.settings import SettingsRequest

PROGRESS_PREFIX = "PROGRESS "
DONE_PREFIX = "DONE "
ERROR_PREFIX = "error: "
EXCEPTION_PREFIX = "exception: "
RESULT_FILE = "result.json"
# Started as a script, the module folder (which holds DeepRadScoreLib) goes on sys.path first.
MODULE_DIR = Path(__file__).resolve().parent.parent


@dataclass
class RunRequest:
    """One run, as the Logic sends it and the worker reads it (one JSON line).

    ``bundle`` "" runs the ring and features only. ``endpoints`` None: all of the bundle's.
    ``settings``: what the user asked for (ring thickness, parameter file, radiomics backend),
    resolved against the bundle's recorded settings by the engine, as on the command line.
    """

    image: str
    mask: str
    output: str
    bundle: str = ""
    device: str = "auto"
    endpoints: list[str] | None = None
    settings: SettingsRequest = field(default_factory=SettingsRequest)

    def __post_init__(self):
        if not (self.image and self.mask and self.output):
            raise ValueError("image, mask and output must be given")
        if self.endpoints == []:
            self.endpoints = None

    def to_line(self) -> str:
        """The JSON line the worker reads."""
        from DeepRadScoreLib.typedjson import to_json

        return json.dumps(to_json(self), allow_nan=False)

    @classmethod
    def from_line(cls, line: str) -> "RunRequest":
        """A request line parsed and checked; raises InputError naming the bad field."""
        from DeepRadScoreLib.errors import InputError
        from DeepRadScoreLib.typedjson import SchemaError, from_json

        try:
            return from_json(cls, json.loads(line), "request")
        except (json.JSONDecodeError, SchemaError) as err:
            raise InputError(f"engine request: {err}") from None


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


def save_result(result, folder: str | Path, bundle=None, radiomics_backend: str = "") -> None:
    """Write a CaseResult in the engine's one result format: ``CaseResult.to_json`` (what
    ``deepradscore predict -o`` writes) plus the features, and the images beside it.

    ``result.json`` gets ``features`` and ``files`` (ring, patch pixels, one heatmap per
    endpoint, each named relative to ``folder``), and ``radiomics_backend``: what computed the
    features (``features.backends.describe``); it is written last, so its presence means the
    result is complete.
    """
    import numpy as np
    import SimpleITK as sitk

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    document = result.to_json(bundle)
    document["features"] = {k: float(v) for k, v in result.features.items()}
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
    """Read what :func:`save_result` wrote: ``(pipelines.case.CaseResult, synthetic, thickness_mm)``
    (the ring thickness the engine used: the bundle's, or the one asked for)."""
    import numpy as np
    import SimpleITK as sitk

    from DeepRadScoreLib.pipelines.case import CaseResult, EndpointPrediction
    from DeepRadScoreLib.regions import DeepRoiPatch

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
    return result, bool(bundle.get("synthetic", False)), float(document["settings"]["thickness_mm"])


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


def run(request: RunRequest, cache: BundleCache | None = None) -> int:
    """One request: the engine's one-case analysis, its result saved into ``request.output``."""
    import SimpleITK as sitk

    from DeepRadScoreLib.pipelines.case import analyse_case
    from DeepRadScoreLib.features.backends import describe
    from DeepRadScoreLib.io.images import read_image

    # An unusable backend ("pyradiomics" where it does not import) is one error line, before
    # the bundle is loaded.
    described = describe(request.settings.backend)
    bundle = (cache or BundleCache()).get(request.bundle, request.device)

    def progress(fraction: float, message: str) -> None:
        print(progress_line(fraction, message), flush=True)

    # The CT comes in its own type (int16 for most CTs: half the file); the engine takes float32
    # HU, as `deepradscore predict` reads it, so both compute the same numbers.
    image = read_image(request.image)
    mask = sitk.ReadImage(request.mask)
    result = analyse_case(image, mask, bundle=bundle, endpoints=request.endpoints,
                          settings=request.settings, gradcam=True, device=request.device,
                          progress=progress, heatmap_grid="patch")
    del image  # the CT is not needed for saving: free it before the files are written
    save_result(result, request.output, bundle, described)
    progress(1.0, "done")
    return 0


def handle(line: str, cache: BundleCache) -> int:
    """One request line, reported the way the GUI reads it: 0 done, 2 ``error:`` (bad input),
    130 cancelled, 1 an unexpected exception (its traceback, then its ``exception:`` line)."""
    from DeepRadScoreLib.errors import Cancelled, InputError

    try:
        return run(RunRequest.from_line(line), cache)
    except InputError as err:
        print(f"{ERROR_PREFIX}{err}", flush=True)
        return 2
    except Cancelled:
        print("cancelled", flush=True)
        return 130
    except Exception as err:  # noqa: BLE001  (reported to the GUI as the run's failure)
        import traceback

        traceback.print_exc(file=sys.stdout)
        text = str(err).replace("\n", " ").strip()
        print(f"{EXCEPTION_PREFIX}{type(err).__name__}: {text}" if text else
              f"{EXCEPTION_PREFIX}{type(err).__name__}", flush=True)
        return 1


def serve(lines, cache: BundleCache | None = None) -> int:
    """One run per request line until the lines end (Slicer exited, or a one-shot run's single
    line was read); returns the last request's status.

    torch, pyradiomics and the bundle stay loaded between runs, so a second Run costs the
    radiomics and little else. An unexpected error ends the request, not the engine.
    """
    cache = cache or BundleCache()
    code = 0
    for line in lines:
        if not line.strip():
            continue
        code = handle(line, cache)
        print(f"{DONE_PREFIX}{code} bundle-loads={cache.loads}", flush=True)
    return code


def main() -> int:
    # The engine process is ours alone (Slicer's own process is never touched): keep
    # pyradiomics' per-GLCM notes out of the log that a crash message quotes.
    from DeepRadScoreLib.processes import pyradiomics_errors_only

    pyradiomics_errors_only()
    return serve(sys.stdin)


if __name__ == "__main__":
    if str(MODULE_DIR) not in sys.path:
        sys.path.insert(0, str(MODULE_DIR))
    sys.exit(main())
