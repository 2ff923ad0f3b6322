"""The paper's figures as PNG files: ROC curves, CV AUC distributions, correlation, SHAP, Grad-CAM.

Drawn with matplotlib's object API on the Agg canvas (no pyplot global state, no display), so it
works headless, in worker threads and inside Slicer alike. Each function writes one PNG and
returns its path.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure


MODEL_LABELS = {"radiomics": "Radiomics-Score", "deep": "Deep-CT", "fusion": "Deep-RadScore"}
MODEL_COLOURS = {"radiomics": "#1f77b4", "deep": "#ff7f0e", "fusion": "#d62728"}
DPI = 110


def _save(fig: Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight", format="png")
    return path


def roc_points(y_true, score) -> tuple[np.ndarray, np.ndarray]:
    """Empirical ROC (1 - specificity, sensitivity), one vertex per distinct threshold."""
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(score, dtype=float)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last_of_run = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]
    tp = np.cumsum(y)[last_of_run]
    fp = np.cumsum(~y)[last_of_run]
    return np.r_[0.0, fp / max(fp[-1], 1)], np.r_[0.0, tp / max(tp[-1], 1)]


def roc_figure(endpoint: str, curves: Mapping[str, tuple], path: Path) -> Path:
    """ROC curves of the models of one endpoint; ``curves[model] = (y, score, auc, lo, hi)``."""
    fig = Figure(figsize=(4.6, 4.4))
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color="0.7", lw=1, ls="--")
    for model, (y, score, auc, lo, hi) in curves.items():
        fpr, tpr = roc_points(y, score)
        ax.plot(fpr, tpr, lw=1.8, color=MODEL_COLOURS.get(model),
                label=f"{MODEL_LABELS.get(model, model)}: AUC {auc:.3f} [{lo:.3f}, {hi:.3f}]")
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="1 - specificity", ylabel="Sensitivity",
           title=f"{endpoint}: test ROC", aspect="equal")
    ax.legend(loc="lower right", fontsize=7.5)
    return _save(fig, path)


def cv_auc_figure(endpoint: str, cv: Mapping[str, Mapping[str, Sequence[float]]],
                  chosen: Mapping[str, str], path: Path) -> Path:
    """Cross-validated AUC of each candidate classifier, one panel per model (Fig. 3b-d).

    ``cv[model][classifier]`` is the list of per-fold AUCs of the training cross-validation
    (5 folds x repeats, from the bundle); the chosen classifier is drawn in the model's colour.
    """
    models = [m for m in cv if cv[m]]
    fig = Figure(figsize=(3.3 * max(len(models), 1), 3.4), layout="constrained")
    axes = fig.subplots(1, max(len(models), 1), squeeze=False, sharey=True)[0]
    for ax, model in zip(axes, models):
        names = list(cv[model])
        data = [np.asarray(cv[model][c], dtype=float) for c in names]
        colours = [MODEL_COLOURS.get(model, "C0") if c == chosen.get(model) else "0.6" for c in names]
        box = ax.boxplot(data, widths=0.6, patch_artist=True, showfliers=False)
        for patch, colour in zip(box["boxes"], colours):
            patch.set(facecolor=colour, alpha=0.45)
        rng = np.random.default_rng(0)
        for i, values in enumerate(data, start=1):
            ax.scatter(i + rng.uniform(-0.15, 0.15, values.size), values, s=5, color="k", alpha=0.5)
        ax.set_xticks(range(1, len(names) + 1), names, fontsize=8)
        ax.axhline(0.5, color="0.7", lw=1, ls="--")
        ax.set(ylim=(0, 1.02), title=f"{MODEL_LABELS.get(model, model)}")
    axes[0].set_ylabel("CV AUC")
    fig.suptitle(f"{endpoint}: cross-validated AUC of the candidate classifiers", fontsize=10)
    return _save(fig, path)


def correlation_figure(endpoint: str, corr, path: Path) -> Path:
    """Pearson correlation heatmap of the fused features (a square DataFrame) (Fig. 4a)."""
    names = list(corr.columns)
    fig = Figure(figsize=(0.42 * len(names) + 2.2, 0.42 * len(names) + 1.4))
    ax = fig.add_subplot()
    image = ax.imshow(corr.to_numpy(dtype=float), cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    for (r, c), value in np.ndenumerate(corr.to_numpy(dtype=float)):
        if np.isfinite(value):
            ax.text(c, r, f"{value:.1f}", ha="center", va="center", fontsize=5.5,
                    color="white" if abs(value) > 0.6 else "black")
    fig.colorbar(image, ax=ax, shrink=0.8, label="Pearson r")
    ax.set_title(f"{endpoint}: correlation of the fused features", fontsize=10)
    return _save(fig, path)


def shap_figure(endpoint: str, shap_values: np.ndarray, values: np.ndarray,
                feature_names: Sequence[str], path: Path) -> Path:
    """SHAP summary (Fig. 4b): one row per feature, ordered by mean |SHAP|; dots coloured by the
    feature's value (blue low, red high), so the sign of each feature's effect is visible."""
    shap_values = np.asarray(shap_values, dtype=float)
    values = np.asarray(values, dtype=float)
    order = np.argsort(np.abs(shap_values).mean(axis=0))  # most important at the top
    fig = Figure(figsize=(5.6, 0.32 * len(order) + 1.2))
    ax = fig.add_subplot()
    rng = np.random.default_rng(0)
    for row, j in enumerate(order):
        v = values[:, j]
        span = np.nanmax(v) - np.nanmin(v)
        colour = (v - np.nanmin(v)) / span if span > 0 else np.full(v.shape, 0.5)
        ax.scatter(shap_values[:, j], row + rng.uniform(-0.18, 0.18, v.size), c=colour, cmap="coolwarm",
                   vmin=0, vmax=1, s=9, alpha=0.8, linewidths=0)
    ax.axvline(0, color="0.5", lw=1)
    ax.set_yticks(range(len(order)), [feature_names[j] for j in order], fontsize=8)
    ax.set(xlabel="SHAP value (impact on the Deep-RadScore probability)",
           title=f"{endpoint}: feature contributions (SHAP)")
    return _save(fig, path)


def gradcam_figure(panels: Sequence[tuple[str, np.ndarray, np.ndarray]], path: Path) -> Path:
    """Grad-CAM overlays: for each ``(title, patch_hu 160x160, heatmap 160x160 0..1)`` the patch
    in a lung window and the heatmap over it."""
    n = max(len(panels), 1)
    fig = Figure(figsize=(2.3 * n, 2.6))
    axes = fig.subplots(1, n, squeeze=False)[0]
    for ax, (title, patch, heat) in zip(axes, panels):
        ax.imshow(np.clip((patch + 1350.0) / 1500.0, 0, 1), cmap="gray", vmin=0, vmax=1)
        ax.imshow(np.ma.masked_less(heat, 0.05), cmap="jet", alpha=0.45, vmin=0, vmax=1)
        ax.set_title(title, fontsize=7.5)
        ax.set_axis_off()
    return _save(fig, path)


def case_overview_figure(image, mask, ring, heatmap, patch, title: str, path: Path) -> Path:
    """One case at a glance: the deep-ROI slice with the patch box, and the patch with the tumour
    (red) and ring (yellow) outlines and the Grad-CAM heatmap over it. Inputs are SimpleITK images
    on one grid and the case's :class:`~regions.DeepRoiPatch`."""
    import SimpleITK as sitk

    from DeepRadScoreLib.regions import sample_patch

    lung = lambda hu: np.clip((hu + 1350.0) / 1500.0, 0, 1)  # noqa: E731  (lung window)
    fig = Figure(figsize=(9.0, 4.4))
    full, zoom = fig.subplots(1, 2)
    full.imshow(lung(sitk.GetArrayViewFromImage(image)[patch.slice_index]), cmap="gray", vmin=0, vmax=1)
    full.add_patch(_box(patch))
    full.set_title("axial slice of largest tumour area, deep-ROI patch", fontsize=8)
    zoom.imshow(lung(patch.hu), cmap="gray", vmin=0, vmax=1)
    heat = sample_patch(heatmap, patch)
    zoom.imshow(np.ma.masked_less(heat, 0.05), cmap="inferno", alpha=0.45, vmin=0, vmax=1)
    for region, colour in ((ring, "yellow"), (mask, "red")):
        zoom.contour(sample_patch(region, patch), levels=[0.5], colors=colour, linewidths=0.9)
    zoom.set_title("tumour (red), 3 mm ring (yellow), Grad-CAM", fontsize=8)
    for ax in (full, zoom):
        ax.set_axis_off()
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def _box(patch):
    from matplotlib.patches import Rectangle

    return Rectangle((patch.column0 - 0.5, patch.row0 - 0.5), patch.size, patch.size, fill=False,
                     edgecolor="cyan", linewidth=0.8)


def calibration_figure(endpoint: str, curves: Mapping[str, object], path: Path) -> Path:
    """Calibration of the models of one endpoint, one panel per model: the smoothed curve with its
    95 % band, the binned observed rates with Wilson CIs, the diagonal of perfect calibration and
    a rug of the predictions. ``curves[model]`` is a :class:`calibration.CalibrationCurve`."""
    models = list(curves)
    fig = Figure(figsize=(3.2 * max(len(models), 1), 3.5), layout="constrained")
    axes = fig.subplots(1, max(len(models), 1), squeeze=False, sharey=True)[0]
    for ax, model in zip(axes, models):
        c, colour = curves[model], MODEL_COLOURS.get(model, "C0")
        ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="ideal")
        if np.isfinite(c.observed).any():
            ax.fill_between(c.grid, c.band_low, c.band_high, color=colour, alpha=0.2, lw=0)
            ax.plot(c.grid, c.observed, color=colour, lw=1.8, label="smoothed, 95 % band")
        ax.errorbar(c.bin_predicted, c.bin_observed,
                    yerr=[c.bin_observed - c.bin_low, c.bin_high - c.bin_observed],
                    fmt="o", ms=4, color="k", ecolor="0.35", capsize=2, lw=0.8, label="binned, 95 % CI")
        ax.set(xlim=(0, 1), ylim=(-0.03, 1.03), xlabel="Predicted probability",
               title=MODEL_LABELS.get(model, model), aspect="equal")
        ax.tick_params(labelsize=8)
    axes[0].set_ylabel("Observed proportion")
    axes[0].legend(loc="upper left", fontsize=7)
    fig.suptitle(f"{endpoint}: calibration on the test cases", fontsize=10)
    return _save(fig, path)


def decision_curve_figure(endpoint: str, thresholds: np.ndarray, net_benefits: Mapping[str, np.ndarray],
                          treat_all: np.ndarray, path: Path) -> Path:
    """Decision curves of one endpoint: net benefit against threshold probability for each model,
    treat-all (grey) and treat-none (black, 0)."""
    fig = Figure(figsize=(5.4, 4.0))
    ax = fig.add_subplot()
    ax.plot(thresholds, treat_all, color="0.55", lw=1.4, label="treat all")
    ax.axhline(0, color="k", lw=1.2, label="treat none")
    for model, nb in net_benefits.items():
        ax.plot(thresholds, nb, lw=1.8, color=MODEL_COLOURS.get(model), label=MODEL_LABELS.get(model, model))
    top = max([float(np.nanmax(v)) for v in [treat_all, *net_benefits.values()] if np.isfinite(v).any()] + [0.05])
    ax.set(xlim=(0, 1), ylim=(-0.05 * max(top, 0.1) - 0.02, top * 1.1 + 0.01),
           xlabel="Threshold probability", ylabel="Net benefit", title=f"{endpoint}: decision curves")
    ax.legend(loc="upper right", fontsize=7.5)
    return _save(fig, path)


def icc_figure(table, path: Path, min_icc: float | None = None) -> Path:
    """The ICC distribution of each feature class (box, points), with the filter's bound."""
    classes = [c for c in ("shape", "firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm", "other")
               if (table.feature_class == c).any()]
    data = [table.icc[(table.feature_class == c)].dropna().to_numpy(dtype=float) for c in classes]
    fig = Figure(figsize=(1.0 * len(classes) + 2.4, 3.8))
    ax = fig.add_subplot()
    box = ax.boxplot([d if d.size else [np.nan] for d in data], widths=0.6, patch_artist=True, showfliers=False)
    for patch in box["boxes"]:
        patch.set(facecolor="#1f77b4", alpha=0.35)
    rng = np.random.default_rng(0)
    for i, values in enumerate(data, start=1):
        ax.scatter(i + rng.uniform(-0.18, 0.18, values.size), values, s=3, color="k", alpha=0.35)
    if min_icc is not None:
        ax.axhline(min_icc, color="#d62728", lw=1.2, ls="--", label=f"bound {min_icc:g}")
        ax.legend(loc="lower left", fontsize=7.5)
    ax.set_xticks(range(1, len(classes) + 1), [f"{c}\n(n={d.size})" for c, d in zip(classes, data)], fontsize=8)
    low = min([float(d.min()) for d in data if d.size] + [0.0])
    ax.set(ylim=(max(low, -1.0) - 0.05, 1.05), ylabel=f"{table.icc_type.iloc[0]} over the perturbed copies",
           title="Feature robustness by feature class")
    return _save(fig, path)
