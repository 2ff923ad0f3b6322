"""``deepradscore robustness``: an ICC per feature over perturbed copies of every case; and the
``train`` options that use its table."""
from __future__ import annotations

import argparse
import logging
import sys

from DeepRadScoreLib.progress import terminal_bar

logger = logging.getLogger(__name__)


def _kinds(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.replace(",", " ").split() if v.strip())


def add_parser(sub) -> None:
    """The ``robustness`` sub-command's arguments."""
    p = sub.add_parser("robustness", help="ICC of every feature over perturbed copies of each case")
    p.add_argument("--manifest", required=True, help="cohort CSV (case_id,image,mask,...)")
    p.add_argument("-o", "--output", required=True,
                   help="ICC table CSV to write (its copies, features and cache go to OUTPUT.work/, "
                        "its report to OUTPUT with .html)")
    p.add_argument("--copies", type=int, default=4, help="perturbed copies per case")
    p.add_argument("--perturbations", type=_kinds, default=("rotation", "noise", "volume", "contour"),
                   help="what each copy applies, from rotation,noise,volume,contour (default: all)")
    p.add_argument("--max-rotation-deg", type=float, default=5.0, help="rotation drawn from +-this")
    p.add_argument("--noise-sd", type=float, default=10.0, help="additive Gaussian noise, HU")
    p.add_argument("--volume-voxels", type=int, default=1, help="dilation / erosion of the mask, voxels")
    p.add_argument("--contour-flip", type=float, default=0.3,
                   help="probability of flipping each border voxel (contour randomisation)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=1, help="parallel processes on this machine")
    p.add_argument("--scheduler", default=None, help="address of an existing Dask scheduler")
    p.add_argument("--thickness-mm", type=float, default=3.0, help="peritumoral ring thickness")
    p.add_argument("--params", default=None, help="pyradiomics parameter file (default: the 851-feature one)")
    p.add_argument("--radiomics-backend", default="auto", choices=["auto", "pyradiomics", "native"],
                   help="what computes the features (as for extract)")


def add_train_options(p: argparse.ArgumentParser) -> None:
    """``train --robustness TABLE --min-icc B``."""
    p.add_argument("--robustness", default=None,
                   help="ICC table from `deepradscore robustness`: drop features below --min-icc before selection")
    p.add_argument("--min-icc", type=float, default=None, help="ICC bound with --robustness (default 0.75)")


def run_robustness(args: argparse.Namespace) -> int:
    from pathlib import Path

    from DeepRadScoreLib import __version__
    from DeepRadScoreLib.evaluation.robustness_report import write_robustness_report
    from DeepRadScoreLib.robustness.chain import run_robustness as run, work_dir
    from DeepRadScoreLib.robustness.perturb import PerturbationSettings

    from DeepRadScoreLib.outputs import check_output_file

    check_output_file(Path(args.output).with_suffix(".html"))
    settings = PerturbationSettings(kinds=args.perturbations, max_rotation_deg=args.max_rotation_deg,
                                    noise_sd_hu=args.noise_sd, volume_voxels=args.volume_voxels,
                                    contour_flip=args.contour_flip)
    with terminal_bar("robustness") as progress:
        result = run(args.manifest, args.output, copies=args.copies, settings=settings, seed=args.seed,
                     workers=args.workers, scheduler=args.scheduler, thickness_mm=args.thickness_mm,
                     params_path=args.params, progress=progress, backend=args.radiomics_backend)
    output = Path(args.output)
    html = write_robustness_report(result.table, output.with_suffix(".html"), work_dir(output) / "icc.png", {
        "Manifest": str(Path(args.manifest).resolve()), "Copies per case": str(args.copies),
        "Perturbations": (f"{', '.join(settings.kinds)} (rotation +-{settings.max_rotation_deg:g} deg, noise "
                          f"{settings.noise_sd_hu:g} HU, volume +-{settings.volume_voxels} voxel, contour "
                          f"flip {settings.contour_flip:g})"),
        "Seed": str(args.seed), "Extraction": f"ring {args.thickness_mm:g} mm, {args.radiomics_backend} backend",
        "Software": f"DeepRadScore {__version__}"})
    for case_id, why in result.left_out.items():
        print(f"left out: {case_id}: {why}", file=sys.stderr)
    n = len(result.table)
    robust = int((result.table.icc >= 0.75).sum())
    print(f"{robust} of {n} features with {result.table.icc_type.iloc[0]} >= 0.75 over {args.copies} copies "
          f"of {int(result.table.n_cases.iloc[0])} cases -> {output}, report {html}", file=sys.stderr)
    return 1 if result.left_out else 0
