"""``deepradscore synth``: a synthetic chest-CT cohort with planted labels."""
from __future__ import annotations

import argparse

from DeepRadScoreLib.progress import terminal_bar


def run_synth(args: argparse.Namespace) -> int:
    """``deepradscore synth -o DIR --cases N [--seed S]``"""
    from DeepRadScoreLib.synthetic.cohort import STATEMENT, synthesise_cohort

    with terminal_bar("synth", total=args.cases, unit="cases") as progress:
        manifest = synthesise_cohort(args.output, args.cases, args.seed, progress=progress)
    print(f"wrote {args.cases} synthetic cases ({STATEMENT}); manifest: {manifest}")
    return 0
