"""``deepradscore train``: a model bundle from the split=train rows of a manifest."""
from __future__ import annotations

import argparse
import sys

from DeepRadScoreLib.progress import terminal_bar


def summary(bundle) -> str:
    """Per endpoint and model: the chosen classifier, its CV AUC (the best of seven candidates on
    the same folds, so optimistic) and the nested-CV AUC (the honest estimate of choosing that
    way), as a small table."""
    lines = [f"{'endpoint':<10} {'model':<10} {'chosen':<6} {'CV AUC (best of 7)':>20} "
             f"{'nested CV AUC':>16}"]
    for endpoint in bundle.endpoints:
        for model in ("radiomics", "deep", "fusion"):
            info = bundle.model_info(endpoint, model)
            best, nested = info.chosen_cv_auc, info.nested_cv_auc
            lines.append(f"{endpoint:<10} {model:<10} {info.chosen:<6} "
                         f"{best.mean:>12.3f} ± {best.sd:.3f} {nested.mean:>8.3f} ± {nested.sd:.3f}")
    lines.append("CV AUC: the chosen candidate's mean over the CV folds, the maximum of seven, hence "
                 "optimistic; nested CV AUC: the choice made without each outer fold, scored on it.")
    return "\n".join(lines)


def run_train(args: argparse.Namespace) -> int:
    """``deepradscore train``: the arguments to :func:`train_bundle`, then the CV summary."""
    from DeepRadScoreLib.cli.parser import settings_request
    from DeepRadScoreLib.deep.ensemble import DeepConfig
    from DeepRadScoreLib.pipelines.train import train_bundle

    config = DeepConfig(backbone=args.backbone, mode=args.deep_mode, folds=args.deep_folds,
                        k=args.deep_features, epochs=args.epochs, device=args.device, seed=args.seed,
                        pretrained=args.pretrained, precision=args.precision)
    with terminal_bar("train") as progress:
        bundle = train_bundle(args.manifest, args.output, endpoints=args.endpoints, deep_config=config,
                              features_csv=args.features, cv_repeats=args.cv_repeats, seed=args.seed,
                              workers=args.workers, nested_repeats=args.nested_repeats,
                              settings=settings_request(args), progress=progress,
                              robustness_csv=args.robustness, min_icc=args.min_icc)
    for endpoint, why in bundle.skipped.items():
        print(f"skipped {endpoint}: {why}", file=sys.stderr)
    robust = bundle.meta.data.get("robustness")
    if robust:
        print(f"robustness filter: {robust['n_kept']} features with {robust['icc_type']} >= {robust['min_icc']:g} "
              f"kept, {robust['n_dropped']} dropped", file=sys.stderr)
    print(summary(bundle))
    if bundle.synthetic:
        print("note: trained on a SYNTHETIC cohort; the bundle has no clinical meaning", file=sys.stderr)
    print(f"bundle written to {args.output}")
    return 0
