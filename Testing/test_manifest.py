"""manifest: the cohort CSV, checked with every problem reported at once."""
from __future__ import annotations

import math

import pytest

from DeepRadScoreLib.errors import InputError
from DeepRadScoreLib.io.manifest import read_manifest


def write(folder, text: str, name: str = "cohort.csv"):
    for file in ("a.nii.gz", "a_mask.nii.gz", "b.nii.gz", "b_mask.nii.gz", "sub/c.nrrd", "sub/c.seg.nrrd"):
        (folder / file).parent.mkdir(parents=True, exist_ok=True)
        (folder / file).write_bytes(b"x")
    path = folder / name
    path.write_text(text)
    return path


def test_a_good_manifest(tmp_path):
    path = write(tmp_path, "case_id,image,mask,split,cohort,EGFR,KRAS,age,label,roi_name\n"
                           "p1,a.nii.gz,a_mask.nii.gz,train,A,1,,61,2,\n"
                           "\n"
                           "p2, b.nii.gz ,b_mask.nii.gz,TEST,B,0.0,1,70,,GTV\n"
                           f"p3,sub/c.nrrd,{tmp_path / 'sub/c.seg.nrrd'},train,A,,0,55,,\n")
    m = read_manifest(path)
    assert m.case_ids == ["p1", "p2", "p3"]
    assert m.endpoints == ["EGFR", "KRAS"]  # the paper's endpoints present, in the paper's order
    assert list(m.table["image"]) == [str(tmp_path / "a.nii.gz"), str(tmp_path / "b.nii.gz"),
                                      str(tmp_path / "sub" / "c.nrrd")]
    assert m.table["mask"].iloc[2] == str(tmp_path / "sub" / "c.seg.nrrd")
    assert list(m.table["split"]) == ["train", "test", "train"]
    assert list(m.table["age"]) == ["61", "70", "55"] and list(m.table["cohort"]) == ["A", "B", "A"]
    egfr = m.labels("EGFR")
    assert list(egfr.index) == ["p1", "p2", "p3"] and egfr["p1"] == 1.0 and egfr["p2"] == 0.0 and math.isnan(egfr["p3"])
    assert list(m.labels("KRAS", split="train"))[1] == 0.0
    assert list(m.rows("test")["case_id"]) == ["p2"] and list(m.rows("train")["case_id"]) == ["p1", "p3"]
    cases = m.cases()
    assert [(c.case_id, c.label, c.roi_name, c.row) for c in cases] == [("p1", 2, None, 2), ("p2", None, "GTV", 4),
                                                                       ("p3", None, None, 5)]
    sub = m.subset(["p3", "p1"])
    assert sub.case_ids == ["p3", "p1"] and [c.row for c in sub.cases()] == [5, 2]
    with pytest.raises(InputError, match="no case p9"):
        m.subset(["p9"])
    with pytest.raises(InputError, match="no endpoint column ALK"):
        m.labels("ALK")


def test_named_endpoints_and_no_split_column(tmp_path):
    path = write(tmp_path, "case_id,image,mask,Response\np1,a.nii.gz,a_mask.nii.gz,1\np2,b.nii.gz,b_mask.nii.gz,0\n")
    m = read_manifest(path, endpoints=["Response"])
    assert m.endpoints == ["Response"] and list(m.labels("Response")) == [1.0, 0.0]
    assert len(m.rows("train")) == 2 and m.rows("test").empty  # no split column: all training
    assert read_manifest(path).endpoints == []


def test_every_problem_is_reported_at_once_with_its_row(tmp_path):
    path = write(tmp_path, "case_id,image,mask,split,EGFR,label\n"
                           "p1,a.nii.gz,a_mask.nii.gz,train,1,\n"
                           "p2,missing.nii.gz,b_mask.nii.gz,train,yes,\n"
                           "p1,b.nii.gz,,validation,2,x\n"
                           ",b.nii.gz,b_mask.nii.gz,test,0,\n")
    with pytest.raises(InputError) as err:
        read_manifest(path)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{path}: ")
    for problem in ("row 3: image not found: missing.nii.gz",
                    "row 3: EGFR must be 0, 1 or blank, got 'yes'",
                    "row 4: case_id p1 repeats row 2",
                    "row 4: mask is blank",
                    "row 4: split must be train or test, got 'validation'",
                    "row 4: label must be a whole number, got 'x'",
                    "row 4: EGFR must be 0, 1 or blank, got '2'",
                    "row 5: case_id is blank"):
        assert problem in message
    # The missing file check can be left to the machine that will read the files.
    with pytest.raises(InputError) as err:
        read_manifest(path, check_files=False)
    assert "not found" not in str(err.value) and "repeats row 2" in str(err.value)


@pytest.mark.parametrize("text, expected", [
    ("case_id,picture,mask\np1,a.nii.gz,a_mask.nii.gz\n", "missing required column image (columns: case_id, picture, mask)"),
    ("image\na.nii.gz\n", "missing required columns case_id, mask"),
    ("case_id,image,mask\n", "no cases (only a header)"),
    ("", "empty file"),
    ("case_id,image,mask\np1,a.nii.gz\n", "row 2: 2 cells, the header has 3"),
    ("case_id,image,mask,mask\np1,a.nii.gz,a_mask.nii.gz,b.nii.gz\n", "duplicate column mask"),
])
def test_structural_problems(tmp_path, text, expected):
    with pytest.raises(InputError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        read_manifest(write(tmp_path, text))


def test_unknown_endpoint_and_missing_file(tmp_path):
    path = write(tmp_path, "case_id,image,mask,EGFR\np1,a.nii.gz,a_mask.nii.gz,1\n")
    with pytest.raises(InputError, match="endpoint columns PDL1, ALK not in the manifest"):
        read_manifest(path, endpoints=["EGFR", "PDL1", "ALK"])
    with pytest.raises(InputError, match="split cannot be an endpoint"):
        read_manifest(write(tmp_path, "case_id,image,mask,split\np1,a.nii.gz,a_mask.nii.gz,train\n"), ["split"])
    with pytest.raises(InputError, match="nope.csv: file not found"):
        read_manifest(tmp_path / "nope.csv")


def test_long_problem_lists_stay_one_line(tmp_path):
    rows = "".join(f"p{i},a.nii.gz,a_mask.nii.gz,maybe\n" for i in range(30))
    with pytest.raises(InputError) as err:
        read_manifest(write(tmp_path, "case_id,image,mask,EGFR\n" + rows))
    assert str(err.value).endswith("; and 10 more problems") and "row 21:" in str(err.value)
