"""The ``deepradscore`` command: parse the arguments, call the engine, map errors to exit codes.

Each sub-command's handler lives in a small module of this package (imported here, so the
dependency is plain to see); those modules import the heavy engine parts inside the handler, so
``--help`` stays instant. An :class:`InputError` becomes ``error: <message>`` on stderr and exit
status 2, with no traceback; the engine writes outputs atomically so nothing partial is left.
"""
from __future__ import annotations

import sys

from DeepRadScoreLib.cli import demo, evaluate, extract, predict, regions, robustness, synth, train
from DeepRadScoreLib.cli.parser import build_parser
from DeepRadScoreLib.errors import Cancelled, InputError


HANDLERS = {
    "extract": extract.run_extract,
    "ring": regions.run_ring,
    "patch": regions.run_patch,
    "synth": synth.run_synth,
    "train": train.run_train,
    "predict": predict.run_predict,
    "evaluate": evaluate.run_evaluate,
    "compare-backbones": evaluate.run_compare_backbones,
    "demo": demo.run_demo_command,
    "robustness": robustness.run_robustness,  # hook
}


# Commands that run pyradiomics in this process. The command line is the application, so it
# decides what reaches the terminal (processes.pyradiomics_errors_only says why).
RADIOMICS_COMMANDS = {"extract", "train", "predict", "evaluate", "compare-backbones", "demo", "robustness"}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in RADIOMICS_COMMANDS:
        from DeepRadScoreLib.processes import pyradiomics_errors_only

        pyradiomics_errors_only()
    try:
        return int(HANDLERS[args.command](args) or 0)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Cancelled:
        print("cancelled", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("interrupted: finished cases are kept in the cache; run the same command to resume",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
