"""The README's main job, end to end on a small cohort: every product, then a second run that
reuses the cohort, the feature cache and the bundle."""
from __future__ import annotations

import json

import pandas as pd

from DeepRadScoreLib.cli.demo import run_demo

CASES = 30


def test_demo_runs_end_to_end_and_reuses_its_caches(tmp_path, capsys):
    out = tmp_path / "demo"
    products = run_demo(out, CASES)
    first = capsys.readouterr().out

    for key in ("report", "prediction", "heatmap", "overview"):
        assert products[key].is_file() and products[key].stat().st_size > 0, key
    html = products["report"].read_text()
    assert "not for clinical use" in html.lower()
    result = json.loads(products["prediction"].read_text())
    assert result["gradcam"]["file"] == str(products["heatmap"])
    metrics = pd.read_csv(out / "report" / "metrics.csv")
    assert set(metrics["model"]) == {"radiomics", "deep", "fusion"}
    assert "SYNTHETIC DATA" in first and str(products["report"]) in first

    bundle_mtime = (out / "bundle" / "bundle.json").stat().st_mtime_ns
    run_demo(out, CASES)
    second = capsys.readouterr()
    assert "reusing the bundle" in second.out
    assert (out / "bundle" / "bundle.json").stat().st_mtime_ns == bundle_mtime
    assert f"{CASES} from the cache" in second.err
