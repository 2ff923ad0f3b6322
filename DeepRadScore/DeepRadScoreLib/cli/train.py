"""``deepradscore train``: a model bundle from the split=train rows of a manifest."""
from __future__ import annotations

import argparse
import logging
import sys

from DeepRadScoreLib.progress import terminal_bar

logger = logging.getLogger(__name__)


def run_train(args: argparse.Namespace) -> int:
    from DeepRadScoreLib.deep.training import DeepConfig
    from DeepRadScoreLib.model.training import train_bundle

    config = DeepConfig(backbone=args.backbone, mode=args.deep_mode, folds=args.deep_folds,
                        k=args.deep_features, epochs=args.epochs, device=args.device, seed=args.seed,
                        pretrained=args.pretrained)
    with terminal_bar("train") as progress:
        bundle = train_bundle(args.manifest, args.output, endpoints=args.endpoints, deep_config=config,
                              features_csv=args.features, cv_repeats=args.cv_repeats, seed=args.seed,
                              workers=args.workers, progress=progress)
    for endpoint, why in bundle.skipped.items():
        print(f"skipped {endpoint}: {why}", file=sys.stderr)
    for endpoint in bundle.endpoints:
        info = bundle.meta["models"][endpoint]["models"]
        print(f"{endpoint}: " + "; ".join(f"{m} {v['chosen']} CV AUC {v['cv_auc'][v['chosen']]['mean']:.3f}"
                                          f" ± {v['cv_auc'][v['chosen']]['sd']:.3f}"
                                          for m, v in info.items()))
    if bundle.synthetic:
        print("note: trained on a SYNTHETIC cohort; the bundle has no clinical meaning", file=sys.stderr)
    print(f"bundle written to {args.output}")
    return 0
