"""The README's "a second Run in Slicer": the Slicer Logic's background Run, first and second
time on the same bundle, on the IBSI phantom in a headless MRML scene (slicer-core).

    .venv/bin/python benchmarks/bench_slicer_second_run.py BUNDLE [--runs N] [--fresh]

The first Run starts the engine process (imports torch and pyradiomics, loads the bundle); the
next ones reuse it, so they should cost the radiomics plus about a second. ``--fresh`` measures
the old behaviour for comparison (a new process per Run). The CPU model and load average are
printed next to the figures: on a shared CPU they move with whatever else runs.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "DeepRadScore"))

import SimpleITK as sitk  # noqa: E402

import slicer  # noqa: E402  (slicer-core)

from DeepRadScoreLib.io.images import load_case  # noqa: E402
from DeepRadScoreSlicerLib import mrml_images  # noqa: E402
from DeepRadScoreSlicerLib.logic import DeepRadScoreLogic  # noqa: E402

from machine import cpu_model  # noqa: E402  (benchmarks/machine.py, beside this script)

PHANTOM = ROOT.parent / "shared" / "data" / "ibsi_ct_phantom" / "nifti"



def phantom_scene():
    case = load_case(PHANTOM / "image.nii.gz", PHANTOM / "mask.nii.gz")
    scene = slicer.vtkMRMLScene()
    colors = slicer.vtkMRMLColorLogic()  # Slicer's default colour tables, as in the application
    colors.SetMRMLScene(scene)
    scene.colorLogic = colors  # keep it alive with the scene
    volume = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "Phantom")
    mrml_images.set_volume_from_image(volume, sitk.Cast(case.image, sitk.sitkFloat32))
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "GTV")
    mrml_images.set_volume_from_image(labelmap, sitk.Cast(case.mask, sitk.sitkUInt8))
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Segmentation")
    segmentation.SetReferenceImageGeometryParameterFromVolumeNode(volume)
    slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(labelmap, segmentation)
    mrml_images.discard_labelmap(labelmap)
    return scene, volume, segmentation, segmentation.GetSegmentation().GetNthSegmentID(0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", help="a bundle folder (e.g. demo-output/bundle)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--fresh", action="store_true", help="a new engine process per Run (the old way)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    scene, volume, segmentation, tumour = phantom_scene()  # noqa: F841  (the scene must stay alive)
    logic = DeepRadScoreLogic()
    logic.keepEngine = not args.fresh
    print(f"{cpu_model()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; "
          f"{'fresh process per Run' if args.fresh else 'kept engine'}")
    for run in range(1, args.runs + 1):
        started = time.perf_counter()
        job = logic.startBackground(volume, segmentation, tumour, args.bundle, device=args.device)
        if job.wait(timeout=1800) != 0:
            print(job.error_message())
            return 1
        output = logic.finishBackground(job)
        total = time.perf_counter() - started
        seconds = output.caseResult.seconds
        radiomics = seconds.get("radiomics", float("nan"))
        print(f"Run {run}: {total:.1f} s in all; radiomics {radiomics:.1f} s, the rest {total - radiomics:.1f} s "
              f"(engine stages: {', '.join(f'{k} {v:.2f}' for k, v in seconds.items())})")
    logic.closeEngine()
    return 0


if __name__ == "__main__":
    sys.exit(main())
