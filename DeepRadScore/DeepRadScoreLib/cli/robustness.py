"""``deepradscore robustness``: an ICC per feature over perturbed copies of every case."""
from __future__ import annotations

import argparse
import sys

from DeepRadScoreLib.progress import terminal_bar


def run_robustness(args: argparse.Namespace) -> int:
    from pathlib import Path

    from DeepRadScoreLib import __version__
    from DeepRadScoreLib.evaluation.robustness_report import write_robustness_report
    from DeepRadScoreLib.cli.parser import settings_request
    from DeepRadScoreLib.pipelines.robustness import run_robustness as run, work_dir
    from DeepRadScoreLib.robustness.perturb import PerturbationSettings

    from DeepRadScoreLib.outputs import check_output_file

    check_output_file(Path(args.output).with_suffix(".html"))
    perturbation = PerturbationSettings(kinds=args.perturbations, max_rotation_deg=args.max_rotation_deg,
                                    noise_sd_hu=args.noise_sd, volume_voxels=args.volume_voxels,
                                    contour_flip=args.contour_flip)
    with terminal_bar("robustness") as progress:
        result = run(args.manifest, args.output, copies=args.copies, perturbation=perturbation, seed=args.seed,
                     workers=args.workers, scheduler=args.scheduler, settings=settings_request(args),
                     progress=progress)
    output = Path(args.output)
    html = write_robustness_report(result.table, output.with_suffix(".html"), work_dir(output) / "icc.png", {
        "Manifest": str(Path(args.manifest).resolve()), "Copies per case": str(args.copies),
        "Perturbations": (f"{', '.join(perturbation.kinds)} (rotation +-{perturbation.max_rotation_deg:g} deg, "
                          f"noise {perturbation.noise_sd_hu:g} HU, volume +-{perturbation.volume_voxels} voxel, "
                          f"contour flip {perturbation.contour_flip:g})"),
        "Seed": str(args.seed), "Extraction": _extraction_text(result.extraction),
        "Software": f"DeepRadScore {__version__}"})
    for case_id, why in result.left_out.items():
        print(f"left out: {case_id}: {why}", file=sys.stderr)
    n = len(result.table)
    robust = int((result.table.icc >= 0.75).sum())
    print(f"{robust} of {n} features with {result.table.icc_type.iloc[0]} >= 0.75 over {args.copies} copies "
          f"of {int(result.table.n_cases.iloc[0])} cases -> {output}, report {html}", file=sys.stderr)
    return 1 if result.left_out else 0


def _extraction_text(extraction) -> str:
    """The settings the copies were extracted with (their table's sidecar), as the report names them."""
    from DeepRadScoreLib.features.settings import read_settings

    settings = read_settings(extraction.features_csv)
    return f"ring {settings.thickness_mm:g} mm, {settings.params_name or 'parameters'}, {settings.backend} backend"
