"""``deepradscore extract``: one case or a cohort into a feature table."""
from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading

from DeepRadScoreLib.errors import InputError
from DeepRadScoreLib.progress import terminal_bar


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM (``kill PID``, a batch system's stop) cleans up as Ctrl-C does: the workers are
    stopped, finished cases stay in the cache, exit status 130. Signals go to the main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_extract(args: argparse.Namespace) -> int:
    """``extract IMAGE MASK -o features.csv`` or ``extract --manifest cohort.csv -o ...``."""
    with _sigterm_as_interrupt():
        return _extract(args)


def _extract(args: argparse.Namespace) -> int:
    from DeepRadScoreLib.cli.parser import settings_request
    from DeepRadScoreLib.features.extraction import ONE_CASE_JOBS, extract_case_table, extract_cohort
    from DeepRadScoreLib.features.settings import resolve_settings
    from DeepRadScoreLib.io.manifest import read_manifest

    if args.manifest is not None and (args.image or args.mask):
        raise InputError("give either IMAGE MASK (one case) or --manifest (a cohort), not both")
    if args.manifest is None:
        if not (args.image and args.mask):
            raise InputError("give IMAGE and MASK (one case) or --manifest cohort.csv")
        if args.workers < 1:
            raise InputError(f"--workers must be at least 1, got {args.workers}")
        # One case splits its tumour and ring work over processes: --workers N, else up to
        # ONE_CASE_JOBS cores (beyond that the ~20 tasks of a case leave processes idle).
        jobs = args.workers if args.workers > 1 else min(os.cpu_count() or 1, ONE_CASE_JOBS)
        settings = resolve_settings(settings_request(args))
        with terminal_bar("extract") as callback:
            features_csv, patches_npz, case_id, n = extract_case_table(
                args.image, args.mask, args.output, settings, label=args.label, roi_name=args.roi_name,
                jobs=jobs, progress=callback)
        print(f"{n} features of {case_id} -> {features_csv}, patch -> {patches_npz}", file=sys.stderr)
        return 0
    if args.label is not None or args.roi_name is not None:
        raise InputError("--label/--roi-name are per case: put them in the manifest's label/roi_name columns")
    settings = resolve_settings(settings_request(args))
    manifest = read_manifest(args.manifest)
    with terminal_bar("extract", total=len(manifest.case_ids), unit="cases") as callback:
        result = extract_cohort(manifest, args.output, settings, workers=args.workers,
                                scheduler=args.scheduler, progress=callback)
    if result.broken_cache:
        print(f"note: {len(result.broken_cache)} unreadable cache entries (first: case {result.broken_cache[0]}) "
              f"were computed again", file=sys.stderr)
    for case_id, reason in result.failed.items():
        print(f"failed: {case_id}: {reason}", file=sys.stderr)
    print(f"{len(result.extracted)} cases ({len(result.computed)} computed, {len(result.cached)} from the "
          f"cache) -> {result.features_csv}, {result.patches_npz}"
          + (f"; {len(result.failed)} failed, listed in {result.failures_csv}" if result.failed else ""),
          file=sys.stderr)
    return 1 if result.failed else 0
