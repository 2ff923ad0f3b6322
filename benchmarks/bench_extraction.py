#!/usr/bin/env python
"""Extraction speed: DeepRadScore vs plain pyradiomics, side by side in one run.

1. One case, ../shared/data/ibsi_ct_phantom/nifti (real NSCLC, ~125k-voxel tumour): tumour + 3 mm
   ring features by the native backend (one thread) and by our pyradiomics path
   (``features.radiomics.extract_case_features``, 1 and 2 processes) vs pyradiomics'
   ``RadiomicsFeatureExtractor(params).execute`` on the tumour and then on the ring with the same
   parameter file (``preCrop`` on). Image, mask and ring are loaded once beforehand for both, so
   the times are the extraction alone. Median of ``--repeats`` interleaved runs.
2. Cohort, the 18 cases of ../shared/data/ibsi_sts_ct: ``deepradscore extract --manifest ...
   --workers 2`` (fresh cache) with ``--radiomics-backend native`` (what ``auto`` picks) and
   ``pyradiomics`` vs pyradiomics' own batch command ``pyradiomics batch.csv --jobs 2``
   on the same 36 ROIs (tumour and ring of each case; the rings are written beforehand, untimed).
   Wall time, throughput, CPU seconds and peak memory of each command's whole process tree
   (summed over the process and its descendants, sampled every 50 ms; memory as PSS, which counts
   pages shared between forked processes once, and as RSS, which counts them in every process).

Both pyradiomics runs are also repeated with one BLAS thread (OPENBLAS_NUM_THREADS=1 etc.), to
show how much of the difference is pyradiomics' many small LAPACK calls fighting over threads.
Every comparison also checks that the numbers agree (max relative difference).

    .venv/bin/python benchmarks/bench_extraction.py [--repeats 3] [--out benchmarks/results/extraction.md]
"""
from __future__ import annotations

import argparse
import logging
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import SimpleITK as sitk

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
BIN = Path(sys.executable).parent
ONE_BLAS_THREAD = {name: "1" for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}


def process_kind(process: psutil.Process, root_pid: int) -> str:
    """main, fork server, resource tracker or worker: what a process of a measured tree is."""
    if process.pid == root_pid:
        return "main"
    command = " ".join(process.cmdline())
    if "resource_tracker" in command:
        return "resource tracker"
    if "forkserver" in command and process.ppid() == root_pid:
        return "fork server"
    return "worker"


def run_measured(command: list[str], env: dict | None = None, cwd: Path | None = None) -> dict:
    """Run a command; wall seconds, CPU seconds and peak PSS / RSS bytes of its process tree, and
    each process's PSS (by kind) at the moment the tree's PSS peaked."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env={**os.environ, **(env or {})}, cwd=cwd,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = {"pss": 0, "rss": 0, "kinds": []}
    cpu: dict[int, float] = {}
    stop = threading.Event()

    def sample() -> None:
        try:
            root = psutil.Process(process.pid)
        except psutil.NoSuchProcess:
            return
        while not stop.is_set():
            pss = rss = 0
            kinds = []
            try:
                tree = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                break
            for p in tree:
                try:
                    memory = p.memory_full_info()
                    times = p.cpu_times()
                    kind = process_kind(p, root.pid)
                except psutil.NoSuchProcess:
                    continue
                pss += memory.pss
                rss += memory.rss
                kinds.append((kind, memory.pss))
                cpu[p.pid] = max(cpu.get(p.pid, 0.0), times.user + times.system)
            if pss > peak["pss"]:
                peak["pss"], peak["kinds"] = pss, kinds
            peak["rss"] = max(peak["rss"], rss)
            stop.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, stderr = process.communicate()
    wall = time.perf_counter() - started
    stop.set()
    sampler.join()
    if process.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({process.returncode}):\n{stderr[-3000:]}")
    return {"wall": wall, "cpu": sum(cpu.values()), **peak}


def max_relative_difference(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    both_nan = np.isnan(a) & np.isnan(b)
    scale = np.maximum(np.abs(a), np.abs(b))
    diff = np.where(both_nan | (scale == 0), 0.0, np.abs(a - b) / np.where(scale == 0, 1, scale))
    return float(np.nanmax(diff))


def one_case(repeats: int) -> dict:
    from radiomics import featureextractor
    from threadpoolctl import threadpool_limits

    from DeepRadScoreLib import regions
    from DeepRadScoreLib.io import images as imaging
    from DeepRadScoreLib.features.radiomics import PARAMS_PATH, extract_case_features

    logging.getLogger("radiomics").setLevel(logging.ERROR)
    nifti = DATA / "ibsi_ct_phantom" / "nifti"
    case = imaging.load_case(nifti / "image.nii.gz", nifti / "mask.nii.gz")
    ring = regions.peritumoral_ring(case.mask, 3.0)
    extractor = featureextractor.RadiomicsFeatureExtractor(str(PARAMS_PATH))

    def plain() -> dict:
        out = {}
        for prefix, roi in (("tumor", case.mask), ("peritumoral", ring)):
            out.update({f"{prefix}_{k}": float(v) for k, v in extractor.execute(case.image, roi).items()
                        if not k.startswith("diagnostics_")})
        return out

    def plain_one_blas_thread() -> dict:
        with threadpool_limits(limits=1):
            return plain()

    from DeepRadScoreLib.features.native.backend import extract_case_features as native

    runs = {"deepradscore native backend (1 thread)": lambda: native(case.image, case.mask, ring),
            "deepradscore, pyradiomics path (2 processes)": lambda: extract_case_features(case.image, case.mask, ring, jobs=2),
            "deepradscore, pyradiomics path (1 process)": lambda: extract_case_features(case.image, case.mask, ring, jobs=1),
            "pyradiomics, tumour then ring": plain,
            "pyradiomics, tumour then ring, 1 BLAS thread": plain_one_blas_thread}
    times = {name: [] for name in runs}
    cpu = {name: [] for name in runs}
    values = {}
    for _ in range(repeats):
        for name, function in runs.items():
            started, started_cpu = time.perf_counter(), time.process_time()
            values[name] = function()
            times[name].append(time.perf_counter() - started)
            cpu[name].append(time.process_time() - started_cpu)
    reference = values["pyradiomics, tumour then ring"]
    ours = values["deepradscore, pyradiomics path (2 processes)"]
    return {"times": {n: statistics.median(t) for n, t in times.items()}, "all_times": times,
            "cpu": {n: statistics.median(c) for n, c in cpu.items()},
            "tumour_voxels": int(sitk.GetArrayViewFromImage(case.mask).sum()),
            "ring_voxels": int(sitk.GetArrayViewFromImage(ring).sum()),
            "max_rel_diff": max_relative_difference([ours[k] for k in reference], list(reference.values())),
            "same_names": list(ours) == list(reference)}


def cohort(work: Path) -> dict:
    from DeepRadScoreLib import regions
    from DeepRadScoreLib.io import images as imaging
    from DeepRadScoreLib.features.radiomics import PARAMS_PATH

    cases = sorted(p for p in (DATA / "ibsi_sts_ct").iterdir() if p.is_dir())
    manifest, batch = ["case_id,image,mask"], ["ID,Image,Mask"]
    voxels = []
    for folder in cases:
        image, mask = folder / "image.nii.gz", folder / "mask.nii.gz"
        loaded = imaging.load_case(image, mask)
        ring_file = work / "rings" / f"{folder.name}_ring.nii.gz"
        ring_file.parent.mkdir(parents=True, exist_ok=True)
        ring = regions.peritumoral_ring(loaded.mask, 3.0)
        sitk.WriteImage(ring, str(ring_file))
        voxels.append(int(sitk.GetArrayViewFromImage(loaded.mask).sum()))
        manifest.append(f"{folder.name},{image},{mask}")
        batch += [f"{folder.name}_tumor,{image},{mask}", f"{folder.name}_ring,{image},{ring_file}"]
    (work / "manifest.csv").write_text("\n".join(manifest) + "\n")
    (work / "batch.csv").write_text("\n".join(batch) + "\n")

    results = {"cases": len(cases), "tumour_voxels": (min(voxels), max(voxels))}
    ours_csv = work / "ours" / "features.csv"
    # Our pyradiomics path, asked for by name: `auto` (the default) is the native backend.
    results["deepradscore extract --workers 2 --radiomics-backend pyradiomics"] = run_measured(
        [str(BIN / "deepradscore"), "extract", "--manifest", str(work / "manifest.csv"), "-o", str(ours_csv),
         "--workers", "2", "--radiomics-backend", "pyradiomics"])
    native_csv = work / "native" / "features.csv"
    results["deepradscore extract --workers 2 --radiomics-backend native"] = run_measured(
        [str(BIN / "deepradscore"), "extract", "--manifest", str(work / "manifest.csv"), "-o", str(native_csv),
         "--workers", "2", "--radiomics-backend", "native"])
    pyradiomics_csv = work / "pyradiomics.csv"
    results["pyradiomics batch --jobs 2"] = run_measured(
        [str(BIN / "pyradiomics"), str(work / "batch.csv"), "--jobs", "2", "-p", str(PARAMS_PATH),
         "-f", "csv", "-o", str(pyradiomics_csv)], cwd=work)
    one_thread_csv = work / "pyradiomics_1thread.csv"
    results["pyradiomics batch --jobs 2, 1 BLAS thread"] = run_measured(
        [str(BIN / "pyradiomics"), str(work / "batch.csv"), "--jobs", "2", "-p", str(PARAMS_PATH),
         "-f", "csv", "-o", str(one_thread_csv)], env=ONE_BLAS_THREAD, cwd=work)

    ours = pd.read_csv(ours_csv, dtype={"case_id": str}).set_index("case_id")
    theirs = pd.read_csv(pyradiomics_csv, dtype={"ID": str}).set_index("ID")
    native_table = pd.read_csv(native_csv, dtype={"case_id": str}).set_index("case_id")
    results["native_vs_ours_max_rel_diff"] = max_relative_difference(
        native_table.loc[ours.index, ours.columns].to_numpy(float).ravel(), ours.to_numpy(float).ravel())
    worst = 0.0
    for case_id in ours.index:
        for prefix, suffix in (("tumor", "_tumor"), ("peritumoral", "_ring")):
            columns = [c for c in ours.columns if c.startswith(prefix + "_")]
            mine = ours.loc[case_id, columns].to_numpy(float)
            reference = theirs.loc[case_id + suffix, [c[len(prefix) + 1:] for c in columns]].to_numpy(float)
            worst = max(worst, max_relative_difference(mine, reference))
    results["max_rel_diff"] = worst
    return results


def machine() -> str:
    load = os.getloadavg()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from machine import cpu_model

    return (f"{cpu_model()}, {os.cpu_count()} logical CPUs, "
            f"{psutil.virtual_memory().total / 2 ** 30:.0f} GiB RAM, Python {platform.python_version()}, "
            f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")


def write_markdown(out: Path, single: dict, group: dict, before: str, after: str, seconds: float) -> None:
    import radiomics

    t = single["times"]
    base = t["pyradiomics, tumour then ring"]
    lines = [
        "# Extraction benchmark",
        "",
        f"Written by `benchmarks/bench_extraction.py` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{seconds:.0f} s in all). pyradiomics {radiomics.__version__}, parameter file "
        "`DeepRadScore/Resources/radiomics_params.yaml` (851 features per ROI).",
        "",
        f"Machine at the start: {before}.  ",
        f"At the end: {after}.",
        "",
        "A load average above the number of CPUs means other processes shared the cores during the run: "
        "wall times then vary from repeat to repeat (listed below); CPU times are steadier.",
        "",
        f"## One case: IBSI CT phantom, tumour ({single['tumour_voxels']} voxels) + 3 mm ring "
        f"({single['ring_voxels']} voxels)",
        "",
        "Median of the interleaved repeats, extraction only (image, mask and ring already in memory). "
        "CPU time is this process's (BLAS threads included); with 2 processes the work runs in the "
        "workers, so it is not shown.",
        "",
        "| run | wall time (s) | vs pyradiomics | CPU time (s) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, value in t.items():
        shown = "" if "2 processes" in name else f"{single['cpu'][name]:.2f}"
        lines.append(f"| {name} | {value:.2f} | {value / base:.2f}x | {shown} |")
    lines += [
        "",
        f"All repeats (s): " + "; ".join(f"{n}: {', '.join(f'{v:.2f}' for v in vs)}"
                                         for n, vs in single["all_times"].items()) + ".  ",
        f"Same 1702 names in the same order: {single['same_names']}; largest relative difference to "
        f"pyradiomics: {single['max_rel_diff']:.1e} (limit 1e-6).",
        "",
        f"## Cohort: {group['cases']} IBSI soft-tissue-sarcoma CTs (tumours of "
        f"{group['tumour_voxels'][0]} to {group['tumour_voxels'][1]} voxels), tumour + ring each",
        "",
        "| command | wall time (s) | cases / min | throughput vs pyradiomics | CPU time (s) | "
        "peak memory PSS (MiB) | peak memory RSS sum (MiB) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    reference_wall = group["pyradiomics batch --jobs 2"]["wall"]
    for name in ("deepradscore extract --workers 2 --radiomics-backend pyradiomics",
                 "deepradscore extract --workers 2 --radiomics-backend native",
                 "pyradiomics batch --jobs 2",
                 "pyradiomics batch --jobs 2, 1 BLAS thread"):
        m = group[name]
        lines.append(f"| `{name}` | {m['wall']:.1f} | {60 * group['cases'] / m['wall']:.1f} | "
                     f"{reference_wall / m['wall']:.2f}x | {m['cpu']:.0f} | {m['pss'] / 2 ** 20:.0f} | "
                     f"{m['rss'] / 2 ** 20:.0f} |")
    lines += ["", "PSS of each process at the moment its tree peaked (MiB):", ""]
    for name in ("deepradscore extract --workers 2 --radiomics-backend pyradiomics",
                 "deepradscore extract --workers 2 --radiomics-backend native",
                 "pyradiomics batch --jobs 2"):
        by_kind: dict[str, list[float]] = {}
        for kind, pss in group[name]["kinds"]:
            by_kind.setdefault(kind, []).append(pss / 2 ** 20)
        shown = "; ".join(f"{kind} {' + '.join(f'{v:.0f}' for v in sorted(values, reverse=True))}"
                          for kind, values in sorted(by_kind.items()))
        lines.append(f"- `{name}`: {shown}")
    lines += [
        "",
        "pyradiomics gets the 36 ROIs (18 tumours, 18 rings written beforehand, untimed) as its batch "
        "CSV; `deepradscore extract` gets the 18 cases and computes the rings itself, and also writes "
        "the deep-ROI patches and its per-case cache. "
        f"Largest relative difference between our (pyradiomics path) and pyradiomics' tables: "
        f"{group['max_rel_diff']:.1e}; between the native backend's and ours: "
        f"{group['native_vs_ours_max_rel_diff']:.1e}.",
        "",
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "extraction.md"))
    args = parser.parse_args()
    started = time.perf_counter()
    before = machine()
    print(f"machine: {before}", flush=True)
    single = one_case(args.repeats)
    print("one case:", single["times"], "max rel diff", single["max_rel_diff"], flush=True)
    work = Path(tempfile.mkdtemp(prefix="bench_extraction."))
    try:
        group = cohort(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("cohort:", group, flush=True)
    after = machine()
    write_markdown(Path(args.out), single, group, before, after, time.perf_counter() - started)
    print(Path(args.out).read_text())


if __name__ == "__main__":
    main()
