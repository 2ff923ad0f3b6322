"""``deepradscore predict``: one case with a bundle, to a JSON and optionally a heatmap volume."""
from __future__ import annotations

import argparse
import os
import sys
import time

from DeepRadScoreLib.progress import terminal_bar


def run_predict(args: argparse.Namespace) -> int:
    from DeepRadScoreLib.analysis import predict_to_files
    from DeepRadScoreLib.features.extraction import ONE_CASE_JOBS
    from DeepRadScoreLib.model.bundle import Bundle

    started = time.perf_counter()
    bundle = Bundle.load(args.bundle, device=args.device)
    load_seconds = time.perf_counter() - started
    with terminal_bar("predict") as progress:
        result, _ = predict_to_files(bundle, args.image, args.mask, args.output, gradcam_path=args.gradcam,
                                     gradcam_endpoint=args.gradcam_endpoint, endpoints=args.endpoints,
                                     label=args.label, roi_name=args.roi_name,
                                     radiomics_jobs=min(os.cpu_count() or 1, ONE_CASE_JOBS),
                                     earlier_seconds={"load_bundle": load_seconds}, progress=progress)
    for endpoint, p in result.predictions.items():
        print(f"{endpoint}: Deep-RadScore {p.probability:.3f} -> class {p.predicted_class} "
              f"(threshold {p.threshold:.3f}, {p.classifier}); radiomics {p.radiomics_probability:.3f}, "
              f"deep {p.deep_probability:.3f}")
    if bundle.synthetic:
        print("note: the bundle was trained on a SYNTHETIC cohort; no clinical meaning", file=sys.stderr)
    return 0
