"""``deepradscore evaluate`` and ``deepradscore compare-backbones``."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from DeepRadScoreLib.progress import terminal_bar


def run_evaluate(args: argparse.Namespace) -> int:
    """A progress bar, the test AUCs, then where the report is."""
    from DeepRadScoreLib.cli.parser import settings_request
    from DeepRadScoreLib.pipelines.evaluate import evaluate_bundle

    with terminal_bar("evaluate") as progress:
        result = evaluate_bundle(args.bundle, args.manifest, args.output, features_csv=args.features,
                                 device=args.device, workers=args.workers, progress=progress,
                                 settings=settings_request(args))
    fusion = result.metrics[result.metrics.model == "fusion"]
    for row in fusion.itertuples():
        print(f"{row.endpoint}: Deep-RadScore test AUC {row.auc:.3f} [{row.auc_ci_low:.3f}, "
              f"{row.auc_ci_high:.3f}] (n={row.n}, {row.n_pos} positive)")
    for endpoint, why in result.skipped.items():
        print(f"note: {endpoint}: {why}", file=sys.stderr)
    print(f"report: {result.output_dir / 'report.html'}")
    return 0


def run_compare_backbones(args: argparse.Namespace) -> int:
    from DeepRadScoreLib.pipelines.backbones import compare_backbones

    with terminal_bar("compare-backbones") as progress:
        result = compare_backbones(args.manifest, args.endpoint, args.output, backbones=args.backbones,
                                   epochs=args.epochs, device=args.device, features_csv=args.features,
                                   seed=args.seed, progress=progress)
    for row in result[result.set == "test"].itertuples():
        print(f"{row.backbone}: test AUC {row.auc:.3f} [{row.auc_ci_low:.3f}, {row.auc_ci_high:.3f}]")
    print(f"table: {Path(args.output) / 'table2.csv'}")
    return 0
