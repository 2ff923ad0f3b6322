"""``deepradscore evaluate``: the paper's results section for a trained bundle on held-out cases.

On the manifest's ``split=test`` rows (every row when there is no split column) it writes, into
one report folder created atomically, ``metrics.csv``, ``predictions.csv``, ``table1.csv`` (the
cohort's characteristics by split, all rows of the manifest), ``figures/`` and ``report.html``
(:mod:`DeepRadScoreLib.evaluation.evaluate` says what each holds).

The test cases' features come from :func:`~DeepRadScoreLib.pipelines.cohort.cohort_features`
with the bundle's settings: extracted with them, or a given table whose settings sidecar must be
theirs; an explicit setting that contradicts the bundle's is refused.
"""
from __future__ import annotations

import time
from pathlib import Path

from DeepRadScoreLib.errors import InputError
from DeepRadScoreLib.evaluation import captions, reporting
from DeepRadScoreLib.evaluation.evaluate import (EvaluationInputs, EvaluationResult, display_metrics,
                                                 compute_metrics, held_out_rows, labels_table, make_figures,
                                                 score_and_measure)
from DeepRadScoreLib.features.settings import SettingsRequest, resolve_settings
from DeepRadScoreLib.progress import report, scaled


def load_inputs(bundle_path: Path, manifest_path: Path, output_dir: Path, features_csv=None,
                device: str = "auto", workers: int = 1, settings: SettingsRequest | None = None,
                progress=None, cancel=None) -> EvaluationInputs:
    """The bundle, the manifest's test rows and their features (extracted with the bundle's
    settings into ``<output_dir>.features.csv`` when no table is given)."""
    from DeepRadScoreLib.io.manifest import SYNTHETIC_MARKER, read_manifest
    from DeepRadScoreLib.model.bundle import Bundle
    from DeepRadScoreLib.pipelines.cohort import cohort_features

    report(progress, 0.0, "loading the bundle", cancel)
    bundle = Bundle.load(bundle_path, device=device)
    # An asked value that contradicts the bundle's is refused before the manifest is read.
    expected = resolve_settings(settings, bundle.settings, str(bundle_path))
    cohort = read_manifest(manifest_path)
    present = [e for e in bundle.endpoints if e in cohort.table.columns]
    if present and set(present) - set(cohort.endpoints):
        # The bundle has endpoints named with --endpoints at training: read their columns as labels.
        cohort = read_manifest(manifest_path, present)
    rows = held_out_rows(cohort.table)
    if rows.empty:
        raise InputError(f"{manifest_path}: no row has split=test")
    case_ids = list(rows["case_id"].astype(str))
    skipped = {e: "no label column in the manifest" for e in bundle.endpoints if e not in rows.columns}
    endpoints = [e for e in bundle.endpoints if e not in skipped]
    if not endpoints:
        raise InputError(f"{manifest_path}: none of the bundle's endpoints ({', '.join(bundle.endpoints)}) "
                         f"is a column of the manifest")
    synthetic = bundle.synthetic or (manifest_path.parent / SYNTHETIC_MARKER).exists()
    got = cohort_features(cohort, case_ids, features_csv,
                          extract_to=output_dir.parent / f"{output_dir.name}.features.csv",
                          expected=expected, bundle_where=str(bundle_path),
                          workers=workers, progress=scaled(progress, 0.02, 0.5), cancel=cancel)
    return EvaluationInputs(bundle, bundle_path, manifest_path, cohort, case_ids, endpoints,
                            labels_table(rows, endpoints), got.features, got.patches, synthetic, skipped)


def evaluate_bundle(bundle_path, manifest_path, output_dir, features_csv=None, device: str = "auto",
                    workers: int = 1, progress=None, cancel=None, gradcam_cases: int = 4,
                    shap_cases: int = 60, settings: SettingsRequest | None = None) -> EvaluationResult:
    """Evaluate a bundle on the manifest's test rows; write the report folder atomically.

    :param bundle_path: the bundle directory.
    :param manifest_path: the cohort CSV; its ``split=test`` rows are evaluated.
    :param output_dir: the report folder to create (see the module doc for its files).
    :param features_csv: the test cases' feature table (its settings must be the bundle's);
        ``None``: extracted here with the bundle's settings.
    :param settings: what the user asked for: an asked thickness or parameter file that
        contradicts the bundle's is refused; the backend is the extraction's here (both give the
        same numbers).
    :param gradcam_cases: / ``shap_cases``: how many Grad-CAM panels / SHAP cases to draw.
    :returns: an :class:`EvaluationResult` (paths inside the final folder, tables, timings).
    :raises InputError: bad input, named by file; nothing is left behind.
    """
    from DeepRadScoreLib.evaluation import cohort_table as table1
    from DeepRadScoreLib.evaluation.report import ReportContent, write_report
    from DeepRadScoreLib.outputs import atomic_dir

    t0 = time.perf_counter()
    seconds: dict[str, float] = {}
    bundle_path, manifest_path, output_dir = Path(bundle_path), Path(manifest_path), Path(output_dir)
    inputs = load_inputs(bundle_path, manifest_path, output_dir, features_csv, device, workers,
                         settings, progress, cancel)
    if features_csv is None:
        progress = scaled(progress, 0.5, 1.0)
    seconds["load"] = time.perf_counter() - t0

    t = time.perf_counter()
    report(progress, 0.05, f"scoring {len(inputs.case_ids)} test cases", cancel)
    scored, metrics, predictions = score_and_measure(inputs)
    seconds["score"] = time.perf_counter() - t
    # Beyond the paper's discrimination: calibration, decision curves, per-cohort metrics.
    t = time.perf_counter()
    extras = reporting.measure(inputs, scored.scores, metrics, compute_metrics)
    metrics = extras.metrics
    seconds["calibration"] = time.perf_counter() - t
    cohort_summary = table1.cohort_table(inputs.cohort.table)
    bundle, params = inputs.bundle, inputs.bundle.meta.parameters

    with atomic_dir(output_dir) as tmp:
        made, results, training, explained = make_figures(inputs, scored, metrics, tmp / "figures",
                                                          gradcam_cases, shap_cases, seconds,
                                                          progress, cancel)
        t = time.perf_counter()
        extra_blocks = reporting.write(extras, tmp, inputs.synthetic)
        seconds["calibration"] += time.perf_counter() - t
        report(progress, 0.96, "writing the tables and the report", cancel)
        metrics.to_csv(tmp / "metrics.csv", index=False)
        predictions.to_csv(tmp / "predictions.csv", index=False)
        cohort_summary.to_csv(tmp / "table1.csv", index=False)
        content = ReportContent(
            title="Deep-RadScore evaluation", synthetic=inputs.synthetic,
            subtitle=f"{len(inputs.case_ids)} test cases, endpoints {', '.join(inputs.endpoints)}",
            provenance=captions.bundle_provenance(bundle, bundle_path, inputs.synthetic),
            notes=captions.notes(len(inputs.case_ids), manifest_path.name, inputs.synthetic, inputs.skipped),
            blocks=[captions.metrics_block(display_metrics(metrics)), *results, *extra_blocks["results"],
                    captions.training_cv_block(captions.training_cv_table(bundle, inputs.endpoints),
                                               params.cv_repeats, params.nested_cv.outer_repeats),
                    *training, captions.cohort_block(cohort_summary), *extra_blocks["cohorts"],
                    *explained, *extra_blocks["tripod"]])
        write_report(content, tmp / "report.html")
    seconds["total"] = time.perf_counter() - t0
    report(progress, 1.0, "evaluation done", None)
    return EvaluationResult(output_dir=output_dir, metrics=metrics, predictions=predictions,
                            cohort_table=cohort_summary,
                            figures={k: output_dir / "figures" / v.name for k, v in made.items()},
                            skipped=inputs.skipped, seconds=seconds)
