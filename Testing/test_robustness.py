"""Feature robustness: perturbations, ICC(1,1) and the whole chain through the real extraction."""
from __future__ import annotations

import math
import os

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from conftest import PHANTOM, STS, make_case
from DeepRadScoreLib.cli.main import main
from DeepRadScoreLib.errors import InputError
from DeepRadScoreLib.features.settings import SettingsRequest
from DeepRadScoreLib.pipelines import robustness as chain
from DeepRadScoreLib.robustness import icc, perturb

from test_report import CHROMIUM, check_in_chromium

# Shrout & Fleiss (Psychol Bull 1979), table 2: 6 targets rated by 4 judges; their table 4 gives
# ICC(1,1) = 0.17 with the 95 % interval [-0.13, 0.72] (two decimals, as published).
SHROUT_FLEISS = np.array([[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]],
                         dtype=float)


def test_icc_1_1_matches_shrout_and_fleiss_and_a_hand_anova():
    value, low, high = (float(a[0]) for a in icc.icc_1_1(SHROUT_FLEISS))
    assert round(value, 2) == 0.17 and round(low, 2) == -0.13 and round(high, 2) == 0.72
    # The one-way ANOVA by hand, with loops.
    n, k = SHROUT_FLEISS.shape
    grand = SHROUT_FLEISS.mean()
    ssb = sum(k * (row.mean() - grand) ** 2 for row in SHROUT_FLEISS)
    ssw = sum(((row - row.mean()) ** 2).sum() for row in SHROUT_FLEISS)
    msb, msw = ssb / (n - 1), ssw / (n * (k - 1))
    assert value == pytest.approx((msb - msw) / (msb + (k - 1) * msw))
    # Identical copies: 1; a constant feature: undefined; pure noise: about 0.
    same = np.repeat(np.arange(5.0)[:, None], 3, axis=1)
    assert icc.icc_1_1(same)[0][0] == 1.0
    assert math.isnan(icc.icc_1_1(np.ones((5, 3)))[0][0])
    noise = np.random.default_rng(0).normal(size=(200, 4))
    assert abs(icc.icc_1_1(noise)[0][0]) < 0.1
    with pytest.raises(InputError, match="at least 2 cases"):
        icc.icc_1_1(np.ones((1, 3)))


def test_feature_class_and_robust_columns():
    assert icc.feature_class("tumor_original_shape_VoxelVolume") == "shape"
    assert icc.feature_class("peritumoral_wavelet-LLH_glcm_Contrast") == "glcm"
    assert icc.feature_class("tumor_log-sigma-1-0-mm-3D_firstorder_Mean") == "firstorder"
    assert icc.feature_class("age") == "other"
    iccs = {"a": 0.9, "b": 0.5, "c": float("nan")}
    assert icc.robust_columns(["a", "b", "c"], iccs, 0.75, "t.csv") == ["a"]
    with pytest.raises(InputError, match="t.csv: has no ICC for 1 feature"):
        icc.robust_columns(["a", "z"], iccs, 0.75, "t.csv")


def test_perturbations_are_seeded_and_do_what_they_say():
    image, mask = make_case(shape=(16, 32, 32), radius_mm=6.0)
    m = sitk.GetArrayFromImage(mask) > 0
    assert perturb.grow(m, 1).sum() > m.sum() > perturb.grow(m, -1).sum()
    assert (perturb.grow(m, 1) >= m).all() and (perturb.grow(m, -1) <= m).all()
    settings = perturb.PerturbationSettings()
    a = perturb.perturbed_copy(image, mask, settings, 0, "c1", 0)
    b = perturb.perturbed_copy(image, mask, settings, 0, "c1", 0)
    c = perturb.perturbed_copy(image, mask, settings, 0, "c1", 1)
    arr = lambda im: sitk.GetArrayFromImage(im)  # noqa: E731
    assert np.array_equal(arr(a[0]), arr(b[0])) and np.array_equal(arr(a[1]), arr(b[1]))
    assert not np.array_equal(arr(a[0]), arr(c[0]))
    noisy, _ = perturb.perturbed_copy(image, mask, perturb.PerturbationSettings(kinds=("noise",)), 0, "c1", 0)
    assert np.std(arr(noisy) - arr(image)) == pytest.approx(10.0, rel=0.05)
    rotated, rmask = perturb.rotate(image, mask, 90.0)
    assert abs(int(arr(rmask).sum()) - int(m.sum())) < 0.1 * m.sum()  # a sphere stays a sphere
    with pytest.raises(InputError, match="unknown blur"):
        perturb.PerturbationSettings(kinds=("blur",))


def uniform_case(folder, name, radius_mm):
    """A tumour of exactly 40 HU in -850 HU lung: only the added noise moves its maximum."""
    image, mask = make_case(shape=(14, 28, 28), radius_mm=radius_mm, seed=1)
    hu = sitk.GetArrayFromImage(image)
    hu[:] = -850.0
    hu[sitk.GetArrayFromImage(mask) > 0] = 40.0
    flat = sitk.GetImageFromArray(hu)
    flat.CopyInformation(image)
    sitk.WriteImage(flat, str(folder / f"{name}_ct.nii.gz"))
    sitk.WriteImage(mask, str(folder / f"{name}_mask.nii.gz"))
    return {"case_id": name, "image": f"{name}_ct.nii.gz", "mask": f"{name}_mask.nii.gz"}


NOISE_ARGS = ["--copies", "3", "--perturbations", "noise", "--noise-sd", "25", "--radiomics-backend", "native"]


@pytest.fixture(scope="module")
def noise_run(tmp_path_factory):
    """`deepradscore robustness` on four uniform tumours of different sizes, noise only."""
    folder = tmp_path_factory.mktemp("uniform")
    rows = [uniform_case(folder, f"u{r}", r) for r in (4.0, 5.0, 6.0, 7.0)]
    pd.DataFrame(rows).to_csv(folder / "cohort.csv", index=False)
    out = folder / "icc.csv"
    assert main(["robustness", "--manifest", str(folder / "cohort.csv"), "-o", str(out), *NOISE_ARGS]) == 0
    return folder, out


def test_noise_makes_a_feature_unrobust_but_not_the_volume(noise_run):
    folder, out = noise_run
    table = pd.read_csv(out).set_index("feature")
    assert list(pd.read_csv(out).columns) == icc.COLUMNS
    assert (table.icc_type == "ICC(1,1)").all() and (table.n_cases == 4).all() and (table.n_copies == 3).all()
    assert len(table) == 1702
    assert table.at["tumor_original_shape_VoxelVolume", "icc"] == 1.0  # the mask never moved
    # The tumours are uniform: their mean and variance differ between copies (noise) but not
    # between cases, so these features measure the noise only.
    for name in ("tumor_original_firstorder_Mean", "tumor_original_firstorder_Variance"):
        assert table.at[name, "icc"] < 0.3, name
    finite = table.dropna(subset=["icc"])
    assert ((finite.icc_ci_low <= finite.icc + 1e-9) & (finite.icc <= finite.icc_ci_high + 1e-9)).all()
    html = out.with_suffix(".html").read_text(encoding="utf-8")
    assert "ICC distribution per feature class" in html and html.count("data:image/png;base64,") == 1
    # A rerun finds every copy and every extraction in the cache: nothing is computed again.
    again = chain.run_robustness(folder / "cohort.csv", out, copies=3,
                                 perturbation=perturb.PerturbationSettings(kinds=("noise",), noise_sd_hu=25.0),
                                 settings=SettingsRequest(backend="native"))
    assert again.extraction.computed == [] and len(again.extraction.cached) == 12
    pd.testing.assert_frame_equal(again.table.set_index("feature"), table, check_dtype=False)


def test_robustness_report_renders_in_chromium(noise_run, tmp_path):
    if CHROMIUM is None and not os.environ.get("CI"):
        pytest.skip("chromium not installed")
    seen = check_in_chromium(noise_run[1].with_suffix(".html"), tmp_path)
    assert len(seen["imgs"]) == 1 and seen["imgs"][0]["ok"] and seen["imgs"][0]["w"] > 300
    assert len(seen["tables"]) == 1 and seen["tables"][0]["rows"] == 7  # the seven feature classes


def test_train_drops_unrobust_features_and_the_bundle_records_the_table(noise_run, tmp_path, capsys):
    from test_training import PLANTED_FEATURES, make_cohort, train_args

    from DeepRadScoreLib.filehash import sha256_file
    from DeepRadScoreLib.model.bundle import Bundle

    table_csv = noise_run[1]
    table = pd.read_csv(table_csv).set_index("feature")
    cohort = make_cohort(tmp_path / "cohort")
    # evaluate reads the manifest's files: point every row at one small real CT.
    image, mask = make_case(shape=(12, 24, 24), radius_mm=5.0)
    sitk.WriteImage(image, str(tmp_path / "cohort" / "ct.nii.gz"))
    sitk.WriteImage(mask, str(tmp_path / "cohort" / "mask.nii.gz"))
    manifest = pd.read_csv(cohort["manifest"]).assign(image="ct.nii.gz", mask="mask.nii.gz")
    manifest.to_csv(cohort["manifest"], index=False)
    bundle_dir = tmp_path / "bundle"
    assert main(train_args(cohort, bundle_dir) + ["--robustness", str(table_csv), "--min-icc", "0.75"]) == 0
    bundle = Bundle.load(bundle_dir, device="cpu")
    record = bundle.meta.data["robustness"]
    assert record["min_icc"] == 0.75 and record["icc_type"] == "ICC(1,1)"
    assert record["table_sha256"] == sha256_file(table_csv)
    kept = set(bundle.feature_names)
    assert kept == {f for f in table.index if table.at[f, "icc"] >= 0.75}
    assert record["n_kept"] == len(kept) and record["n_dropped"] == 1702 - len(kept)
    assert "tumor_original_firstorder_Mean" in PLANTED_FEATURES and "tumor_original_firstorder_Mean" not in kept
    assert "robustness filter:" in capsys.readouterr().err
    # evaluate's report shows the training filter: the ICC figure and the TRIPOD+AI row.
    from DeepRadScoreLib.pipelines.evaluate import evaluate_bundle

    evaluate_bundle(bundle_dir, cohort["manifest"], tmp_path / "report", features_csv=cohort["features"],
                    device="cpu", gradcam_cases=0, shap_cases=5)
    html = (tmp_path / "report" / "report.html").read_text(encoding="utf-8")
    assert "ICC distribution per feature class" in html and "Dashed: the training filter&#x27;s bound 0.75" in html
    assert f"features with ICC below 0.75 dropped before selection (ICC table sha256 {record['table_sha256'][:12]})" in html
    # Bad options: refused before any work, one line, exit 2.
    for extra, message in ((["--min-icc", "0.8"], "--min-icc needs --robustness"),
                           (["--robustness", str(tmp_path / "none.csv")], "robustness table not found"),
                           (["--robustness", str(table_csv), "--min-icc", "1.5"], "between 0 and 1")):
        assert main(train_args(cohort, tmp_path / "b2") + extra) == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert err.startswith("error: ") and message in err, err
        assert not (tmp_path / "b2").exists()


def test_shape_volume_is_robust_to_one_voxel_mask_changes_on_real_ct(tmp_path):
    """The phantom and three STS sarcomas (8,900 to 188,000 voxels, the spread of a real cohort:
    an ICC compares the change within a case to the differences between cases), each dilated
    and eroded by one voxel."""
    rows = [{"case_id": "phantom", "image": str(PHANTOM / "nifti" / "image.nii.gz"),
             "mask": str(PHANTOM / "nifti" / "mask.nii.gz")}]
    rows += [{"case_id": c, "image": str(STS / c / "image.nii.gz"), "mask": str(STS / c / "mask.nii.gz")}
             for c in ("STS_002", "STS_005", "STS_008")]
    pd.DataFrame(rows).to_csv(tmp_path / "cohort.csv", index=False)
    result = chain.run_robustness(tmp_path / "cohort.csv", tmp_path / "icc.csv", copies=2,
                                  perturbation=perturb.PerturbationSettings(kinds=("volume",)),
                                  settings=SettingsRequest(backend="native"))
    table = result.table.set_index("feature")
    copies = pd.read_csv(chain.work_dir(tmp_path / "icc.csv") / "features.csv", index_col="case_id")
    volume = copies["tumor_original_shape_VoxelVolume"]
    for case in ("phantom", "STS_002", "STS_005", "STS_008"):  # copy 0 dilated, copy 1 eroded
        assert volume[f"{case}~p0"] > 1.1 * volume[f"{case}~p1"]
    assert table.at["tumor_original_shape_VoxelVolume", "icc"] > 0.9
    assert table.at["tumor_original_shape_MeshVolume", "icc"] > 0.9
    assert result.left_out == {}
