"""The engine run in its own process for the Slicer GUI: one case in, predictions + heatmaps out.

Slicer's GUI starts this file with Slicer's Python (``PythonSlicer worker.py ...``) so that
feature extraction and the networks never block the GUI thread, and Cancel kills the process:
pyradiomics and torch spend minutes inside C code where a Python cancel flag is not looked at,
and only killing the process really stops them. Progress goes to stdout as lines
``PROGRESS <fraction> <message>``; a user-facing problem ends with ``error: <message>`` and
exit status 2 (as the CLI does). The result is written into ``--output`` (a folder) by
:func:`save_result` and read back in Slicer by :func:`load_result`.

This module imports only the engine, never slicer/vtk/qt.
"""
from __future__ import annotations

import argparse
import dataclasses
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

PROGRESS_PREFIX = "PROGRESS "
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


def _plain(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def save_result(result, folder: str | Path, synthetic: bool = False) -> None:
    """Write a CaseResult: JSON for numbers, NRRD for heatmaps, .npy for the patch.

    ``synthetic`` records that the bundle was trained on synthetic data, so the GUI can say so.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    heatmaps = {}
    for index, (endpoint, image) in enumerate(result.heatmaps.items()):
        name = f"heatmap_{index}.nrrd"
        sitk.WriteImage(image, str(folder / name), True)
        heatmaps[endpoint] = name
    sitk.WriteImage(result.ring, str(folder / "ring.nrrd"), True)
    np.save(folder / "patch_hu.npy", result.patch.hu)
    patch = {f.name: _plain(getattr(result.patch, f.name)) for f in dataclasses.fields(result.patch)
             if f.name != "hu"}
    document = {
        "features": {k: float(v) for k, v in result.features.items()},
        "predictions": {ep: _plain(dataclasses.asdict(p)) for ep, p in result.predictions.items()},
        "heatmaps": heatmaps,
        "patch": patch,
        "synthetic": bool(synthetic),
    }
    (folder / RESULT_FILE).write_text(json.dumps(document))


def load_result(folder: str | Path):
    """Read what :func:`save_result` wrote: ``(analysis.CaseResult, synthetic)``."""
    from DeepRadScoreLib.analysis import CaseResult, EndpointPrediction

    folder = Path(folder)
    document = json.loads((folder / RESULT_FILE).read_text())
    patch_fields = dict(document["patch"])
    patch_fields["corners"] = np.array(patch_fields["corners"])
    patch_fields["centroid_index"] = tuple(patch_fields["centroid_index"])
    patch = DeepRoiPatch(hu=np.load(folder / "patch_hu.npy"), **patch_fields)
    predictions = {}
    for endpoint, fields in document["predictions"].items():
        if isinstance(fields.get("deep_features"), list):
            fields["deep_features"] = np.array(fields["deep_features"])
        predictions[endpoint] = EndpointPrediction(**fields)
    heatmaps = {ep: sitk.ReadImage(str(folder / name)) for ep, name in document["heatmaps"].items()}
    result = CaseResult(features=document["features"], ring=sitk.ReadImage(str(folder / "ring.nrrd")),
                        patch=patch, predictions=predictions, heatmaps=heatmaps)
    return result, bool(document.get("synthetic", False))


def run(args) -> int:
    from DeepRadScoreLib.analysis import analyse_case

    bundle = None
    if args.bundle:
        from DeepRadScoreLib.model.bundle import Bundle

        bundle = Bundle.load(args.bundle, device=args.device)

    def progress(fraction: float, message: str) -> None:
        print(progress_line(fraction, message), flush=True)

    image = sitk.ReadImage(args.image)
    mask = sitk.ReadImage(args.mask)
    result = analyse_case(image, mask, bundle=bundle, endpoints=args.endpoints,
                          thickness_mm=args.thickness_mm, gradcam=True, device=args.device,
                          progress=progress)
    save_result(result, args.output, synthetic=bool(bundle is not None and bundle.synthetic))
    progress(1.0, "done")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="DeepRadScore one-case analysis for the Slicer module")
    parser.add_argument("--image", required=True)
    parser.add_argument("--mask", required=True)
    parser.add_argument("--output", required=True, help="result folder")
    parser.add_argument("--bundle", default="")
    parser.add_argument("--endpoints", nargs="*", default=None)
    parser.add_argument("--thickness-mm", type=float, default=3.0)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    if args.endpoints == []:
        args.endpoints = None
    try:
        return run(args)
    except InputError as err:
        print(f"error: {err}", flush=True)
        return 2
    except Cancelled:
        print("cancelled", flush=True)
        return 130


if __name__ == "__main__":
    sys.exit(main())
