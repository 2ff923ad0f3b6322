"""`deepradscore predict` (fresh process, multitask bundle, Grad-CAM) on
../shared/data/ibsi_ct_phantom against `deepradscore extract` of the same case, side by side:
the Deep-CT through ONNX Runtime (the bundle's .onnx graphs, no torch imported) and through torch
(the same bundle without its graphs, as an older bundle is); then the ONNX predict with a
busy-loop process pinned to the last core.

The bundle is trained here on a small synthetic cohort (a generated feature table + deep-ROI
patches with planted labels for the ten endpoint names, 1 epoch, 1 CV repeat), or given with
--bundle: only its shape (networks, endpoints, k) matters for prediction time, not what it learnt.
It means nothing clinically. Each repeat runs extract, predict (quiet) and predict (busy) one
after the other, so a change in the machine's load hits all three; the load average and the CPU
model are recorded with every figure.

    .venv/bin/python benchmarks/bench_predict.py [--bundle DIR] [--repeats 3]

Writes benchmarks/results/predict.md.
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from machine import cpu_model  # noqa: E402  (benchmarks/machine.py, beside this script)

ROOT = Path(__file__).resolve().parent.parent
PHANTOM = ROOT.parent / "shared" / "data" / "ibsi_ct_phantom" / "nifti"


def make_cohort(folder: Path, n: int, seed: int = 0) -> tuple[Path, Path]:
    from DeepRadScoreLib import ENDPOINTS
    from DeepRadScoreLib.features.radiomics import feature_names
    from DeepRadScoreLib.features.settings import ExtractionSettings, settings_path, write_settings

    rng = np.random.default_rng(seed)
    names = feature_names()
    ids = [f"s{i:03d}" for i in range(n)]
    labels = {e: rng.permutation(np.arange(n) % 2).astype(float) for e in ENDPOINTS}
    X = rng.normal(size=(n, len(names)))
    X[:, 0] += 2 * labels["LVI"]
    yy, xx = np.mgrid[:160, :160]
    patches = {}
    for i, case in enumerate(ids):
        patch = rng.normal(-820, 30, size=(160, 160)).astype(np.float32)
        r = 10 + 10 * labels["LVI"][i]
        patch[(yy - 80) ** 2 + (xx - 80) ** 2 <= r * r] += 860
        patches[case] = patch
    folder.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(X, columns=names)
    table.insert(0, "case_id", ids)
    table.to_csv(folder / "features.csv", index=False)
    np.savez(folder / "features.patches.npz", **patches)
    # train refuses a table without the settings it was extracted with: the defaults here.
    write_settings(settings_path(folder / "features.csv"), ExtractionSettings.current())
    manifest = pd.DataFrame({"case_id": ids, "image": "x.nii.gz", "mask": "x.nii.gz", **labels})
    manifest.to_csv(folder / "manifest.csv", index=False)
    (folder / "SYNTHETIC.json").write_text(json.dumps({"generator": "benchmarks/bench_predict.py"}))
    return folder / "manifest.csv", folder / "features.csv"




def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def timed(argv: list[str]) -> tuple[float, float, float]:
    """Wall seconds of one fresh-process command, with the 1-minute load average before/after."""
    before = loadavg()
    t0 = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    assert done.returncode == 0, done.stderr[-2000:]
    return wall, before, loadavg()


def without_onnx(bundle_dir: Path, folder: Path) -> Path:
    """A copy of the bundle without its ONNX graphs (format 3): predict runs it through torch."""
    import shutil

    from DeepRadScoreLib.model.bundle import _content_hash

    shutil.copytree(bundle_dir, folder)
    meta = json.loads((folder / "bundle.json").read_text())
    for network in meta.pop("deep_onnx"):
        meta["files"].pop(network["file"])
        (folder / network["file"]).unlink()
    meta["format_version"] = 3
    meta["content_sha256"] = _content_hash(meta)
    (folder / "bundle.json").write_text(json.dumps(meta))
    return folder


def busy_loop() -> subprocess.Popen:
    """A process spinning on the last CPU of our affinity set (the "second core" of the speed goals)."""
    import os

    cpu = max(os.sched_getaffinity(0))
    code = f"import os; os.sched_setaffinity(0, {{{cpu}}})\nwhile True: pass"
    return subprocess.Popen([sys.executable, "-c", code])


# Run in a fresh interpreter: what a predict process pays beyond extract, one part at a time
# (wall and CPU seconds of this process), in the order the bundle loader meets them.
PARTS = r"""
import json, resource, sys, time
from pathlib import Path
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
rows = []
def step(name, f):
    t, c = time.perf_counter(), cpu()
    f()
    rows.append([name, time.perf_counter() - t, cpu() - c])
step("bundle.json's schema modules (main thread, before the radiomics; no scikit-learn)",
     lambda: __import__("DeepRadScoreLib.model.bundle"))
step("import onnxruntime", lambda: __import__("onnxruntime"))
from DeepRadScoreLib.model import bundle as B
p = Path(sys.argv[1])
meta = B.from_json(B.BundleMeta, B._read_checked_json(p, p / "bundle.json"))
k = int(meta.parameters.deep["k"])
step("sha256 of the bundle's files", lambda: [B.sha256_file(p / n) for n in meta.files])
onnx = {n.prefix: n.file for n in meta.deep_onnx}
step(f"{len(onnx)} ONNX Runtime sessions (one thread) + the heads' weights for Grad-CAM",
     lambda: B._load_onnx(p, meta, onnx, "cpu", 1))
step("the RadScores from bundle.json (numpy)", lambda: B._radscores(meta))
step(f"{3 * len(meta.endpoints)} classifiers from their inference files (numpy)",
     lambda: B._load_classifiers(p, meta, list(meta.endpoints), k))
assert "torch" not in sys.modules and "torchvision" not in sys.modules
assert not {m.split(".")[0] for m in sys.modules} & {"sklearn", "skops"}, "the bundle has no inference files"
# What the loader did before the inference files, no longer run by predict:
old = []
def former(name, f):
    step(name, f)
    old.append(rows.pop())
from DeepRadScoreLib.typedjson import to_json
former("import torch (the torch path: bundles without ONNX graphs)", lambda: __import__("torch"))
import torch
torch.set_num_threads(1)
former("deep.safetensors + the torch networks (meta device, weights assigned)",
       lambda: B._load_deep(p, meta, "cpu"))
former("scikit-learn + the RadScorePairs from bundle.json",
       lambda: [__import__("DeepRadScoreLib.model.radscore", fromlist=["RadScorePair"]).RadScorePair
                .from_coefficients(to_json(i.radscore)) for i in meta.models.values()])
former("import skops.io (walks every scikit-learn module: all_estimators)", lambda: __import__("skops.io"))
inputs = {"radiomics": 2, "deep": k, "fusion": k + 2}
former(f"{3 * len(meta.endpoints)} skops classifiers",
       lambda: [B._load_skops(p / meta.model(e, m).file, n) for e in meta.endpoints for m, n in inputs.items()])
print(json.dumps([rows, old]))
"""


def profile_parts(bundle_dir: Path) -> tuple[list, list]:
    """``(the loader's parts, the former scikit-learn/skops parts)``: [name, wall s, CPU s] each."""
    done = subprocess.run([sys.executable, "-c", PARTS, str(bundle_dir)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    parts, former = json.loads(done.stdout.strip().splitlines()[-1])
    return parts, former


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bundle", type=Path, help="an existing multitask bundle (default: train one)")
    parser.add_argument("--deep-folds", type=int, default=4)
    parser.add_argument("--cases", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from DeepRadScoreLib.cli.main import main as cli

    image, mask = str(PHANTOM / "image.nii.gz"), str(PHANTOM / "mask.nii.gz")
    engine = [sys.executable, "-m", "DeepRadScoreLib.cli.main"]
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        bundle_dir = args.bundle
        if bundle_dir is None:
            manifest, features = make_cohort(tmp / "cohort", args.cases)
            bundle_dir = tmp / "bundle"
            status = cli(["train", "--manifest", str(manifest), "-o", str(bundle_dir), "--features",
                          str(features), "--epochs", "1", "--deep-mode", "multitask", "--deep-folds",
                          str(args.deep_folds), "--cv-repeats", "1", "--workers", "2", "--device", "cpu"])
            assert status == 0
        predict = [*engine, "predict", str(bundle_dir), image, mask, "-o", str(tmp / "result.json"),
                   "--gradcam", str(tmp / "heat.nii.gz"), "--device", "cpu"]
        torch_dir = without_onnx(bundle_dir, tmp / "bundle-torch")
        predict_torch = [*engine, "predict", str(torch_dir), image, mask, "-o", str(tmp / "result-torch.json"),
                         "--gradcam", str(tmp / "heat.nii.gz"), "--device", "cpu"]
        extract = [*engine, "extract", image, mask, "-o", str(tmp / "features.csv")]
        for repeat in range(args.repeats):
            row = {"repeat": repeat}
            row["extract_s"], row["extract_load_before"], row["extract_load_after"] = timed(extract)
            row["predict_s"], row["predict_load_before"], row["predict_load_after"] = timed(predict)
            row["predict_stages_s"] = json.loads((tmp / "result.json").read_text())["seconds"]
            row["predict_threads"] = json.loads((tmp / "result.json").read_text()).get("radiomics_jobs")
            row["predict_runtime"] = json.loads((tmp / "result.json").read_text())["bundle"]["deep_runtime"]
            row["torch_s"], row["torch_load_before"], row["torch_load_after"] = timed(predict_torch)
            row["torch_stages_s"] = json.loads((tmp / "result-torch.json").read_text())["seconds"]
            spinner = busy_loop()
            try:
                time.sleep(1.0)  # so that the load it adds is visible to the free-core count
                row["busy_s"], row["busy_load_before"], row["busy_load_after"] = timed(predict)
            finally:
                spinner.kill()
                spinner.wait()
            row["busy_stages_s"] = json.loads((tmp / "result.json").read_text())["seconds"]
            row["busy_threads"] = json.loads((tmp / "result.json").read_text()).get("radiomics_jobs")
            runs.append(row)
            print(json.dumps(row), flush=True)
        parts_load = loadavg()
        parts, former = profile_parts(bundle_dir)

    med = {key: float(np.median([r[key] for r in runs])) for key in ("extract_s", "predict_s", "torch_s", "busy_s")}
    ratio1 = float(np.median([r["predict_s"] / r["extract_s"] for r in runs]))
    ratio_torch = float(np.median([r["torch_s"] / r["extract_s"] for r in runs]))
    ratio2 = float(np.median([r["busy_s"] / r["predict_s"] for r in runs]))
    loads = [r[k] for r in runs for k in r if "load" in k]
    lines = ["# Predict timing (`benchmarks/bench_predict.py`)", "",
             f"CPU: {cpu_model()}; Python {platform.python_version()}; 1-minute load average during "
             f"the runs {min(loads):.2f}-{max(loads):.2f} (other developers' work on the same "
             f"machine: the figures are noisy, the ratios are of runs side by side); "
             f"{args.repeats} repeats, medians. Case: ibsi_ct_phantom (NIfTI). Bundle: multitask, "
             "10 endpoints, 4 cross-fitted networks, trained on a synthetic table (no clinical "
             "meaning). predict = fresh process with `--gradcam`; busy = the same with a "
             "`while True: pass` process pinned to the last core.", "",
             "| what | seconds (median) | ratio (median of per-repeat ratios) | goal |",
             "| --- | --- | --- | --- |",
             f"| `deepradscore extract` of the phantom | {med['extract_s']:.1f} | 1 | |",
             f"| `deepradscore predict` of the phantom, Grad-CAM, Deep-CT through ONNX Runtime | "
             f"{med['predict_s']:.1f} | {ratio1:.2f}x extract | <= 1.1x |",
             f"| the same through torch (the bundle without its ONNX graphs) | {med['torch_s']:.1f} | "
             f"{ratio_torch:.2f}x extract | |",
             f"| the same, busy loop on the second core | {med['busy_s']:.1f} | {ratio2:.2f}x quiet "
             f"predict | <= 1.5x |", "",
             "Stages of each predict (result.json `seconds`), per repeat:", ""]
    for r in runs:
        lines.append(f"- repeat {r['repeat']}: extract {r['extract_s']:.1f} s, predict {r['predict_s']:.1f} s "
                     f"(radiomics processes {r['predict_threads']}, load {r['predict_load_before']:.2f}) "
                     + json.dumps({k: round(v, 2) for k, v in r["predict_stages_s"].items()})
                     + f"; torch {r['torch_s']:.1f} s "
                     + json.dumps({k: round(v, 2) for k, v in r["torch_stages_s"].items()})
                     + f"; busy {r['busy_s']:.1f} s (radiomics processes {r['busy_threads']}, load "
                     f"{r['busy_load_before']:.2f}) "
                     + json.dumps({k: round(v, 2) for k, v in r["busy_stages_s"].items()}))
    lines += ["", f"What a predict process does beyond extract (fresh interpreter, one thread, "
              f"load {parts_load:.2f}): the bundle loader's parts, which `predict` overlaps with the "
              "radiomics in a thread. On 2 cores busy with 2 radiomics workers they still cost about "
              "half their CPU time in wall time. The classifiers and RadScores are applied with "
              "numpy (the bundle's inference files): scikit-learn and skops are not imported.", "",
              "| part | wall (s) | CPU (s) |", "| --- | --- | --- |"]
    lines += [f"| {name} | {wall:.2f} | {cpu:.2f} |" for name, wall, cpu in parts]
    lines += [f"| total | {sum(p[1] for p in parts):.2f} | {sum(p[2] for p in parts):.2f} |", "",
              "What the loader runs instead on the torch path, and ran before the inference files "
              "(same interpreter, afterwards; not part of an ONNX bundle's `predict`):", "", "| former part | wall (s) | CPU (s) |", "| --- | --- | --- |"]
    lines += [f"| {name} | {wall:.2f} | {cpu:.2f} |" for name, wall, cpu in former]
    lines += [f"| total | {sum(p[1] for p in former):.2f} | {sum(p[2] for p in former):.2f} |"]
    lines += ["", "Raw: " + json.dumps(runs)]
    out = ROOT / "benchmarks" / "results" / "predict.md"
    out.write_text("\n".join(lines) + "\n")
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
