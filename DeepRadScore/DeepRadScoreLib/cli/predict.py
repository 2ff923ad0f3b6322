"""``deepradscore predict``: one case with a bundle, to a JSON and optionally a heatmap volume."""
from __future__ import annotations

import argparse
import os
import sys
import time

from DeepRadScoreLib.progress import terminal_bar


def run_predict(args: argparse.Namespace) -> int:
    from DeepRadScoreLib.cli.parser import settings_request
    from DeepRadScoreLib.pipelines.case import predict_to_files
    from DeepRadScoreLib.features.extraction import ONE_CASE_JOBS
    from DeepRadScoreLib.outputs import check_output_file
    from DeepRadScoreLib.resources import CoreWindow, freeze_at_exit

    for output in (args.output, args.gradcam):  # before the bundle and the case are read
        if output:
            check_output_file(output)
    freeze_at_exit()
    # OpenMP threads that spin while waiting for each other made scoring 5.0 s instead of 0.3 s
    # and Grad-CAM 2.4 s instead of 0.15 s when another process took a core after the cores were
    # counted (measured). Read when torch is first imported, i.e. by the bundle loader
    # below (set only then, so an embedding process's environment stays as it is); a value the
    # user set is kept.
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # The free cores are counted once, right before our radiomics workers start, over a window
    # that opens here: reading bundle.json and the case and computing the ring and the patch are
    # done meanwhile, and this process's own CPU (its loading thread too) is left out. Other
    # processes' load decides how many workers pay off; os.cpu_count() oversubscribed 2 busy
    # cores and made scoring 15x slower, and a window of its own was 0.3 s idle.
    window = CoreWindow()
    started = time.perf_counter()
    from DeepRadScoreLib.model.bundle import Bundle

    # Only the asked endpoints' classifiers are read; the networks and classifiers load in a
    # thread while the case is read and the radiomics run in worker processes. One torch
    # thread while they overlap.
    bundle = Bundle.load(args.bundle, device=args.device, endpoints=args.endpoints, background=True,
                         threads=1)
    load_seconds = time.perf_counter() - started

    def radiomics_jobs() -> int:
        return min(window.free_cores(), ONE_CASE_JOBS)

    with terminal_bar("predict") as progress:
        result, document = predict_to_files(bundle, args.image, args.mask, args.output, gradcam_path=args.gradcam,
                                     gradcam_endpoint=args.gradcam_endpoint, endpoints=args.endpoints,
                                     label=args.label, roi_name=args.roi_name,
                                     radiomics_jobs=radiomics_jobs,
                                     # One torch thread: the Deep-CT runs beside the radiomics,
                                     # which have the free cores.
                                     threads=1,
                                     earlier_seconds={"load_bundle": load_seconds},
                                     progress=progress, settings=settings_request(args))
    used = result.settings
    print(f"ring {used.thickness_mm:g} mm and radiomics parameters "
          f"{used.params_name or used.params_sha256[:12]}, as the bundle was trained; "
          f"radiomics by {document['radiomics_backend']}")
    for endpoint, p in result.predictions.items():
        print(f"{endpoint}: Deep-RadScore {p.probability:.3f} -> class {p.predicted_class} "
              f"(threshold {p.threshold:.3f}, {p.classifier}); radiomics {p.radiomics_probability:.3f}, "
              f"deep {p.deep_probability:.3f}")
    if bundle.synthetic:
        print("note: the bundle was trained on a SYNTHETIC cohort; no clinical meaning", file=sys.stderr)
    return 0
