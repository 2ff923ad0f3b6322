"""The synthetic cohort: labels, split, files, determinism, chest-CT look, and planted signals.

Signals are checked with counterfactual pairs: the same case generated with one label flipped.
For endpoints that do not move the tumour, every voxel outside the mechanism's region must be
identical, and the mechanism's statistic must move the documented way; TP53 must change nothing.
Those twins show every mechanism of the label (``full_expression``); the penetrance draws (the
share of positives that show a mechanism) are checked on their own, and a positive that shows
nothing must be its negative twin.
"""
from __future__ import annotations

import importlib.util
import json

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from scipy import ndimage

from DeepRadScoreLib import ENDPOINTS
from DeepRadScoreLib.synthetic import cohort as synth
from DeepRadScoreLib.cli.main import main
from DeepRadScoreLib.errors import Cancelled, InputError
from DeepRadScoreLib.io.images import check_same_grid
from DeepRadScoreLib.regions import peritumoral_ring

SEED, N_CASES = 5, 10
# A small case (5 mm slices, 23 mm tumour) whose counterfactual twins are quick to generate.
BASE = (2, 4)
# In-plane reach of the scanner blur (3 sigma, sigma <= 0.7 px) plus rounding.
BLUR_PX = 3


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "cohort"
    manifest = synth.synthesise_cohort(out, N_CASES, seed=SEED, workers=2)
    return out, manifest


def _read_manifest(path, expected):
    """The raw CSV; also read through the engine's reader (when that module exists) and check it
    sees the same endpoints, splits and labels (blank = NaN)."""
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    if importlib.util.find_spec("DeepRadScoreLib.io.manifest") is not None:
        from DeepRadScoreLib.io.manifest import read_manifest

        manifest = read_manifest(path)
        assert list(manifest.endpoints) == list(ENDPOINTS)
        assert len(manifest.rows("train")) == (expected.split == "train").sum()
        for e in ENDPOINTS:
            values = manifest.labels(e).to_numpy()
            want = np.where(expected.known[e], expected.truth[e], np.nan)
            assert np.array_equal(values, want, equal_nan=True), e
    return table


def test_labels_follow_table_1_with_exclusive_drivers_and_cohort_blanks():
    labels = synth.assign_labels(500, seed=0)
    for e in ENDPOINTS:
        known = labels.known[e]
        rate = labels.truth[e][known].mean()
        assert abs(rate - synth.PREVALENCE[e]) < 0.03, (e, rate)
        assert abs(labels.truth[e].mean() - synth.PREVALENCE[e]) <= 0.5 / 500 + 1e-9, e
    drivers = sum(labels.truth[e].astype(int) for e in synth.DRIVERS)
    assert drivers.max() == 1
    cohort_ii = labels.cohort == "II"
    assert abs(cohort_ii.mean() - synth.COHORT_II_FRACTION) < 0.005
    assert not labels.known["PDL1"][cohort_ii].any() and labels.known["PDL1"][~cohort_ii].all()
    for e, rate in synth.RANDOM_BLANK.items():
        assert (~labels.known[e]).sum() == int(rate * 500)
    assert all(labels.known[e].all() for e in ("LVI", "PI", "T4"))
    # Small cohorts still have a positive of every endpoint.
    small = synth.assign_labels(12, seed=3)
    assert all(small.truth[e].sum() >= 1 for e in ENDPOINTS)


@pytest.mark.parametrize("n", [40, 500])
def test_split_is_7_to_3_and_stratified(n):
    labels = synth.assign_labels(n, seed=1)
    train = labels.split == "train"
    assert set(labels.split) == {"train", "test"}
    assert abs(train.sum() - 0.7 * n) <= 1.0
    for e in ENDPOINTS:
        pos = labels.known[e] & (labels.truth[e] == 1)
        expected = 0.7 * pos.sum()
        # Iterative stratification puts each label's positives 7:3 up to one case.
        assert abs((pos & train).sum() - expected) <= 1.0, (e, (pos & train).sum(), expected)
    ii = labels.cohort == "II"
    assert abs((ii & train).sum() - 0.7 * ii.sum()) <= 1.0


def test_cohort_files_manifest_provenance_and_montage(cohort, tmp_path):
    out, manifest = cohort
    expected = synth.assign_labels(N_CASES, SEED)
    table = _read_manifest(manifest, expected)
    assert list(table.columns) == ["case_id", "image", "mask", "split", "cohort", *ENDPOINTS]
    assert len(table) == N_CASES
    for i, row in table.iterrows():
        assert not row["image"].startswith("/") and not row["mask"].startswith("/")
        assert all(row[e] == expected.manifest_value(e, i) for e in ENDPOINTS)
        assert row["split"] == expected.split[i]
        image = sitk.ReadImage(str(out / row["image"]))
        mask = sitk.ReadImage(str(out / row["mask"]))
        assert image.GetPixelID() == sitk.sitkInt16 and mask.GetPixelID() == sitk.sitkUInt8
        check_same_grid(image, mask, "mask")
        sx, sy, sz = image.GetSpacing()
        assert 0.6 <= sx == sy <= 0.9 and sz in synth.SLICE_THICKNESSES
        size = image.GetSize()
        assert size[0] <= 384 and 30 <= size[2] <= 100 and np.prod(size) <= synth.MAX_VOXELS
        m = sitk.GetArrayViewFromImage(mask)
        assert m.max() == 1 and set(np.unique(m)) == {0, 1}
    info = json.loads((out / "SYNTHETIC.json").read_text())
    assert info["statement"] == "synthetic data: not for clinical use"
    assert (info["seed"], info["n_cases"], info["version"]) == (SEED, N_CASES, synth.GENERATOR_VERSION)
    assert set(info["mechanisms"]) == set(ENDPOINTS) and info["independent_endpoints"] == ["TP53"]
    truth = pd.read_csv(out / "synthetic_truth.csv")
    assert (truth[list(ENDPOINTS)].to_numpy() == np.stack([expected.truth[e] for e in ENDPOINTS], 1)).all()
    png = synth.save_montage(out / "images" / "synth-0000.nii.gz", out / "masks" / "synth-0000.nii.gz",
                             tmp_path / "case.png")
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


def test_same_seed_gives_the_same_bytes_whatever_the_worker_count(cohort, tmp_path):
    # (Uses the same module fixture as the test above: under xdist it may be built twice.)
    out, _ = cohort
    first, again = synth.assign_labels(N_CASES, SEED), synth.assign_labels(N_CASES, SEED)
    assert all(np.array_equal(first.truth[e], again.truth[e]) for e in ENDPOINTS)
    assert list(first.split) == list(again.split)
    # The cohort was written by 2 worker processes; cases rewritten here in this process, in
    # another order, must give the same bytes.
    for folder in ("images", "masks"):
        (tmp_path / folder).mkdir()
    for i in (7, 0):
        labels = {e: int(first.truth[e][i]) for e in ENDPOINTS}
        synth._write_case((SEED, i, labels, str(tmp_path)))
        for folder in ("images", "masks"):
            name = f"{folder}/synth-{i:04d}.nii.gz"
            assert (tmp_path / name).read_bytes() == (out / name).read_bytes(), name
    # A second call on a finished cohort reuses it instead of regenerating.
    stamp = (out / "images" / "synth-0000.nii.gz").stat().st_mtime_ns
    messages = []
    synth.synthesise_cohort(out, N_CASES, seed=SEED, progress=lambda f, m: messages.append(m))
    assert (out / "images" / "synth-0000.nii.gz").stat().st_mtime_ns == stamp
    assert "reusing" in messages[-1]


def test_bad_requests_are_refused_and_leave_nothing(tmp_path, capsys):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("keep me")
    assert main(["synth", "-o", str(busy), "--cases", "10"]) == 2
    assert "error:" in capsys.readouterr().err and (busy / "notes.txt").read_text() == "keep me"
    with pytest.raises(InputError, match="at least 10"):
        synth.synthesise_cohort(tmp_path / "few", 3)
    with pytest.raises(Cancelled):
        synth.synthesise_cohort(tmp_path / "cancelled", 10, cancel=lambda: True)
    assert not (tmp_path / "cancelled").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["busy"]


@pytest.fixture(scope="module")
def base_case():
    return synth.generate_case(*BASE, {})


def _in_plane_dilation(region: np.ndarray, px: int = BLUR_PX) -> np.ndarray:
    structure = np.zeros((1, 3, 3), dtype=bool)
    structure[0] = True   # the separable blur reaches a square around each voxel
    return ndimage.binary_dilation(region, structure, iterations=px)


def _ring(case) -> np.ndarray:
    _, mask = case.images()
    return sitk.GetArrayFromImage(peritumoral_ring(mask, 3.0)) > 0


def test_hu_statistics_look_like_chest_ct(base_case):
    hu, tissue = base_case.hu.astype(float), base_case.tissue
    body = ndimage.binary_fill_holes(tissue[0] != synth.AIR)
    outside = (tissue == synth.AIR) & ~body[None]
    assert abs(hu[outside].mean() + 1000) < 10
    lung = (tissue == synth.LUNG) & ~ndimage.binary_dilation(base_case.mask > 0, iterations=6)
    assert abs(hu[lung].mean() + 850) < 50
    assert 0 < hu[tissue == synth.SOFT].mean() < 80 and 0 < hu[tissue == synth.BLOOD].mean() < 80
    assert -130 < hu[tissue == synth.FAT].mean() < -70 and hu[tissue == synth.BONE].mean() > 400
    # Noise is spatially correlated (not white): neighbouring air voxels agree.
    a = hu[:, :20, :20] + 1000
    assert np.corrcoef(a[:, :, :-1].ravel(), a[:, :, 1:].ravel())[0, 1] > 0.3


# endpoint -> (where its voxels may change, statistic that must rise, minimum rise)
def _tumour(case):
    return case.mask > 0


def _stat(case, endpoint):
    hu, t = case.hu.astype(float), case.mask > 0
    if endpoint == "EGFR":
        v = hu[t]
        return np.mean((v > -700) & (v < -300))
    if endpoint == "KRAS":
        return np.percentile(hu[t], 90)
    if endpoint == "ALK":
        return hu[t].max()
    if endpoint == "ROS1":
        # A less dense solid part: the tumour's median falls.
        return -np.median(hu[t])
    ring = _ring(case)
    if endpoint == "LVI":
        v = hu[ring]
        return np.mean((v > -400) & (v < -50))
    if endpoint == "PDL1":
        return np.median(hu[ring])
    raise AssertionError(endpoint)


@pytest.mark.parametrize("endpoint,region,rise", [
    ("EGFR", "tumour", 0.1), ("KRAS", "tumour", 10.0), ("ALK", "tumour", 200.0),
    ("ROS1", "tumour", 15.0), ("LVI", "ring", 0.03), ("PDL1", "ring", 100.0)])
def test_planted_signal_sits_where_documented(base_case, endpoint, region, rise):
    # Every mechanism of the label shown (penetrance aside), so that the rise is the mechanism's.
    flipped = synth.generate_case(*BASE, {endpoint: 1}, full_expression=True)
    assert np.array_equal(flipped.mask, base_case.mask)
    changed = flipped.hu != base_case.hu
    assert changed.any()
    if region == "ring":
        allowed = _in_plane_dilation(_ring(base_case))
    else:
        allowed = _in_plane_dilation(base_case.mask > 0)
    # The deep-slice sign (every one of these labels has one) is the only change elsewhere, on
    # the deep-ROI slice alone (test_slice_sign_is_invisible_to_tumour_and_ring_radiomics).
    elsewhere = changed & ~allowed
    assert set(np.nonzero(elsewhere)[0]) == {base_case.deep_slice}
    assert not (elsewhere & (_ring(base_case) | (base_case.mask > 0))).any(), \
        f"{endpoint} changed voxels outside its {region} and not in its deep-slice sign"
    if region == "ring":
        # Ring mechanisms leave the tumour interior alone (beyond the blur at its edge).
        core = ndimage.binary_erosion(base_case.mask > 0, iterations=BLUR_PX)
        assert not (changed & core).any()
    assert _stat(flipped, endpoint) - _stat(base_case, endpoint) > rise


def test_tp53_is_independent_of_the_image(base_case):
    flipped = synth.generate_case(*BASE, {"TP53": 1})
    assert np.array_equal(flipped.hu, base_case.hu) and np.array_equal(flipped.mask, base_case.mask)


def _axes_mm(case):
    pts = np.argwhere(case.mask > 0) * np.array(case.spacing[::-1])
    eig = np.sort(np.linalg.eigvalsh(np.cov(pts.T)))[::-1]
    return 4 * np.sqrt(eig)   # full axis lengths of the equivalent ellipsoid


def test_size_shape_and_pleural_contact_mechanisms(base_case):
    base_axes = _axes_mm(base_case)
    assert base_axes[0] < 50
    t4 = synth.generate_case(*BASE, {"T4": 1}, full_expression=True)
    assert _axes_mm(t4)[0] > 55
    pik = synth.generate_case(*BASE, {"PIK3CA": 1}, full_expression=True)
    axes = _axes_mm(pik)
    # Short axes 0.58-0.78 of the long one against 0.72-1.0 for its round twin.
    assert axes[1] / axes[0] < 0.8 and axes[1] / axes[0] < base_axes[1] / base_axes[0] - 0.05

    def non_lung_share_of_ring(case):
        ring = _ring(case)
        return np.mean(case.tissue[ring] != synth.LUNG)

    pi = synth.generate_case(*BASE, {"PI": 1}, full_expression=True)
    assert non_lung_share_of_ring(pi) > 0.05
    assert non_lung_share_of_ring(base_case) == 0.0


def test_penetrance_rates_and_silent_positives():
    # Over many cases each mechanism shows in about its documented share of positives, never in
    # a negative, and the volume and slice draws are independent (so fusion can gain).
    everything = {e: 1 for e in ENDPOINTS}
    draws = [synth.case_expression(SEED, i, everything) for i in range(600)]
    for e, (p_volume, p_slice) in synth.PENETRANCE.items():
        volume = np.array([d.volume[e] for d in draws])
        slice_ = np.array([d.slice[e] for d in draws])
        # 600 draws: binomial sd <= 0.021, so 0.07 is over 3 sd.
        assert abs(volume.mean() - p_volume) < 0.07 and abs(slice_.mean() - p_slice) < 0.07, e
        if 0 < p_volume < 1 and 0 < p_slice < 1:
            assert abs((volume & slice_).mean() - p_volume * p_slice) < 0.07, e
        none = synth.case_expression(SEED, 0, {})
        assert not none.volume[e] and not none.slice[e]
    assert synth.MECHANISMS["TP53"]["penetrance"] == 0 and synth.PENETRANCE["TP53"] == (0.0, 0.0)


def test_the_documented_penetrances_and_version_are_the_generators():
    # docs/synthetic-cohort.md's table of planted labels is written by hand: it must name this
    # generator version and, per endpoint, the penetrances the generator draws with.
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "synthetic-cohort.md").read_text()
    assert f"Generator version {synth.GENERATOR_VERSION}." in doc
    rows = {}
    for line in doc.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and cells[0] in synth.PENETRANCE:
            rows[cells[0]] = cells
    assert set(rows) == set(synth.PENETRANCE)
    for e, (p_volume, p_slice) in synth.PENETRANCE.items():
        documented = tuple(0.0 if v == "-" else float(v) for v in (rows[e][3], rows[e][5]))
        assert documented == (p_volume, p_slice), e


def _first_case(endpoint, volume, slice_):
    for i in range(200):
        show = synth.case_expression(SEED, i, {endpoint: 1})
        if (show.volume[endpoint], show.slice[endpoint]) == (volume, slice_):
            return i
    raise AssertionError(f"no {endpoint} case with volume={volume}, slice={slice_}")


def test_silent_positive_is_its_negative_twin():
    # A positive whose mechanisms are both silent is voxel for voxel its negative twin.
    i = _first_case("EGFR", False, False)
    negative, silent = synth.generate_case(SEED, i, {}), synth.generate_case(SEED, i, {"EGFR": 1})
    assert np.array_equal(negative.hu, silent.hu) and silent.params["expressed"] == ""


@pytest.mark.parametrize("endpoint", sorted(synth.SLICE_SIGNS))
def test_slice_sign_is_invisible_to_tumour_and_ring_radiomics(endpoint):
    # A positive showing only its deep-slice sign differs from its negative twin on the deep-ROI
    # slice alone, in lung 6 mm or more from the tumour, so that even after the scanner blur no
    # voxel of tumour or 3 mm ring changes (no radiomics feature of theirs can), inside the
    # 160 x 160 patch, and conspicuously (the Deep-CT must be able to learn it).
    i = _first_case(endpoint, False, True)
    negative, shown = synth.generate_case(SEED, i, {}), synth.generate_case(SEED, i, {endpoint: 1})
    assert shown.params["expressed"] == f"{endpoint}:slice"
    assert np.array_equal(shown.mask, negative.mask)
    changed = shown.hu != negative.hu
    k = negative.deep_slice
    assert set(np.nonzero(changed)[0]) == {k}
    assert not (changed & (_ring(negative) | (negative.mask > 0))).any()
    # Before the blur the sign sits in lung only.
    lung = negative.tissue[k] == synth.LUNG
    assert not (changed[k] & ~_in_plane_dilation(lung[None])[0]).any()
    rows, cols = np.nonzero(negative.mask[k])
    cy, cx = np.floor(rows.mean() + 0.5), np.floor(cols.mean() + 0.5)
    sj, si = np.nonzero(changed[k])
    assert np.abs(sj - cy).max() < 80 and np.abs(si - cx).max() < 80
    # Bold and large: over a hundred pixels change by more than 100 HU.
    delta = np.abs(shown.hu[k].astype(float) - negative.hu[k])
    assert (delta > 100).sum() > 100, (delta > 100).sum()
