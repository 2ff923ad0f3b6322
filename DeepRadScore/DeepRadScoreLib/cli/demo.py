"""``deepradscore demo``: the whole method on a synthetic cohort, with no data of the user's.

It runs the same sub-commands a user would (synth, extract, train, evaluate, predict), so the
demo exercises exactly the public command line. Each step's output is kept in the demo folder
and a second run reuses it: the synthetic cohort when it is the same (generator version, seed,
size), the features from the per-case cache, the bundle when it was trained on the same features
with the same arguments.

The settings are small (few epochs, few CV repeats, a multitask network) so that the demo
finishes in minutes on a laptop CPU; they are real settings of the same code, not a mock. The
model it trains has learnt planted synthetic signals and means nothing clinically.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Callable


from DeepRadScoreLib.cli.evaluate import run_evaluate
from DeepRadScoreLib.cli.extract import run_extract
from DeepRadScoreLib.cli.parser import build_parser
from DeepRadScoreLib.cli.predict import run_predict
from DeepRadScoreLib.cli.synth import run_synth
from DeepRadScoreLib.cli.train import run_train
from DeepRadScoreLib.errors import InputError
from DeepRadScoreLib.filehash import sha256_file


DEMO_CASES = 160
DEMO_SEED = 7
DEMO_TRAIN_ARGS = ["--epochs", "8", "--deep-mode", "multitask", "--deep-folds", "4",
                   "--cv-repeats", "3", "--workers", "2"]


def _step(title: str) -> float:
    print(f"\n== {title}", flush=True)
    return time.perf_counter()


def _run(handler: Callable[[argparse.Namespace], int], argv: list[str]) -> None:
    """One step through the very handler and argument parser of ``deepradscore ARGV``."""
    status = handler(build_parser().parse_args(argv))
    if status != 0:
        raise InputError(f"demo step `deepradscore {' '.join(argv)}` failed (exit {status})")


def _bundle_matches(bundle: Path, key: dict) -> bool:
    """Reuse a bundle only if it loads (hashes intact) and was trained on these very features
    with these arguments."""
    from DeepRadScoreLib.model.bundle import Bundle

    key_file = bundle.parent / "bundle.key.json"
    if not (bundle / "bundle.json").exists() or not key_file.exists():
        return False
    try:
        Bundle.load(bundle)
    except InputError:
        return False
    return json.loads(key_file.read_text()) == key


def train_argv(manifest: Path, features: Path, bundle: Path) -> list[str]:
    """The demo's ``deepradscore train`` arguments (benchmarks/bench_demo_isa.py reuses them)."""
    return ["train", "--manifest", str(manifest), "-o", str(bundle),
            "--features", str(features), "--seed", str(DEMO_SEED)] + DEMO_TRAIN_ARGS


def evaluate_argv(bundle: Path, manifest: Path, features: Path, report: Path) -> list[str]:
    """The demo's ``deepradscore evaluate`` arguments."""
    return ["evaluate", str(bundle), "--manifest", str(manifest), "-o", str(report),
            "--features", str(features)]


def run_demo(out_dir: str | Path, n_cases: int = DEMO_CASES) -> dict[str, Path]:
    """Run the demo into ``out_dir`` and return where its products are."""
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    cohort, features, bundle = out / "cohort", out / "features.csv", out / "bundle"
    report, prediction = out / "report", out / "prediction"
    manifest = cohort / "manifest.csv"
    started = time.perf_counter()

    _step(f"1/5 synthetic cohort: {n_cases} chest CTs with planted labels -> {cohort}")
    _run(run_synth, ["synth", "-o", str(cohort), "--cases", str(n_cases), "--seed", str(DEMO_SEED)])

    _step("2/5 radiomics features of tumour + 3 mm ring (1,702 per case) and deep-ROI patches")
    _run(run_extract, ["extract", "--manifest", str(manifest), "-o", str(features), "--workers", "2"])

    _step("3/5 training Radiomics-Score, Deep-CT and Deep-RadScore for all endpoints")
    argv = train_argv(manifest, features, bundle)
    key = {"argv": argv, "features_sha256": sha256_file(features)}
    if _bundle_matches(bundle, key):
        print("   reusing the bundle from a previous run")
    else:
        _run(run_train, argv)
        (bundle.parent / "bundle.key.json").write_text(json.dumps(key))

    _step("4/5 evaluation on the held-out test split and HTML report")
    _run(run_evaluate, evaluate_argv(bundle, manifest, features, report))

    _step("5/5 prediction with Grad-CAM on a held-out case")
    endpoint = _best_deep_endpoint(report / "metrics.csv")
    case = _held_out_case(manifest, endpoint)
    heatmap = prediction / "heatmap.nii.gz"
    _run(run_predict, ["predict", str(bundle), str(case["image"]), str(case["mask"]),
          "-o", str(prediction / "result.json"), "--gradcam", str(heatmap),
          "--gradcam-endpoint", endpoint])

    overview = _overview(case, heatmap, prediction / "overview.png")

    minutes = (time.perf_counter() - started) / 60
    products = {"report": report / "report.html", "bundle": bundle,
                "prediction": prediction / "result.json", "heatmap": heatmap, "overview": overview,
                "image": Path(case["image"]), "mask": Path(case["mask"])}
    _print_summary(products, report / "metrics.csv", minutes)
    return products


def _overview(case: dict, heatmap: Path, png: Path) -> Path:
    """A picture of the predicted case: its ring, deep-ROI patch and Grad-CAM heatmap."""
    import SimpleITK as sitk

    from DeepRadScoreLib.evaluation.figures import case_overview_figure
    from DeepRadScoreLib.io.images import load_case
    from DeepRadScoreLib.regions import deep_roi_patch, peritumoral_ring

    loaded = load_case(case["image"], case["mask"])
    result = json.loads((png.parent / "result.json").read_text())
    endpoint = result["gradcam"]["endpoint"]
    title = (f"{case['case_id']} (held-out synthetic case): Grad-CAM of {endpoint} - "
             "synthetic data, not for clinical use")
    ring = peritumoral_ring(loaded.mask, result["settings"]["thickness_mm"])  # the ring predict used
    return case_overview_figure(loaded.image, loaded.mask, ring,
                                sitk.ReadImage(str(heatmap)), deep_roi_patch(loaded.image, loaded.mask),
                                title, png)


def _best_deep_endpoint(metrics_csv: Path) -> str:
    """The endpoint whose Deep-CT model separates the test cases best: its heatmap is the one
    worth looking at (a heatmap of a network that learnt nothing shows nothing)."""
    import pandas as pd

    metrics = pd.read_csv(metrics_csv)
    deep = metrics[metrics["model"] == "deep"].sort_values("auc", ascending=False)
    return str(deep["endpoint"].iloc[0])


def _held_out_case(manifest: Path, endpoint: str) -> dict:
    """The first test case positive for ``endpoint`` (the first test case if there is none)."""
    import pandas as pd

    table = pd.read_csv(manifest, dtype=str)
    test = table[table["split"] == "test"] if "split" in table else table
    positive = test[test.get(endpoint, pd.Series(dtype=str)) == "1"]
    row = (positive if len(positive) else test).iloc[0]
    return {"case_id": row["case_id"], "image": (manifest.parent / row["image"]).resolve(),
            "mask": (manifest.parent / row["mask"]).resolve()}


def _print_summary(products: dict[str, Path], metrics_csv: Path, minutes: float) -> None:
    import pandas as pd

    metrics = pd.read_csv(metrics_csv)
    fusion = metrics[metrics["model"] == "fusion"][["endpoint", "classifier", "n", "n_pos", "auc",
                                                   "auc_ci_low", "auc_ci_high"]]
    print("\nDeep-RadScore test AUCs on the synthetic cohort (planted signals; TP53 is "
          "deliberately independent of the image):")
    print(fusion.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"\nDone in {minutes:.1f} min. SYNTHETIC DATA - this model is not for clinical use.")
    print(f"  report:     {products['report']}")
    print(f"  bundle:     {products['bundle']}")
    print(f"  prediction: {products['prediction']}")
    print(f"  heatmap:    {products['heatmap']}")
    print(f"  picture:    {products['overview']}")
    print("To look at it in 3D Slicer: load the CT " f"{products['image']}, the mask "
          f"{products['mask']} (as segmentation) and the heatmap as a volume shown in the "
          "foreground; or open the Deep-RadScore module, choose the bundle folder above and press Run.")


def run_demo_command(args: argparse.Namespace) -> int:
    run_demo(args.output, args.cases or DEMO_CASES)
    return 0
