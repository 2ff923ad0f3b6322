"""The native LBP2D and LBP3D image types against pyradiomics' own, on this machine.

pyradiomics makes LBP2D with scikit-image and LBP3D with trimesh and scipy's ``sph_harm``; the
native backend rewrites both in numpy (``features/native/lbp.py``). The pieces are compared
exactly (scikit-image's ``local_binary_pattern`` for every method, trimesh's icosphere vertex for
vertex), then whole feature vectors against a live pyradiomics at the usual relative 1e-6.

SciPy 1.17 (this project's) has no ``sph_harm``, so pyradiomics' LBP3D would silently yield
nothing here. For the reference it gets ``sph_harm`` back as ``sph_harm_y`` with its arguments
swapped (the same function; the old one is defined as ``sph_harm_y(n, m, phi, theta)``), and a
test in the Slicer-like ``.venv-slicer`` (SciPy 1.13, the genuine ``sph_harm``) checks that the
native LBP3D there equals the native LBP3D here.
"""
from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

import native_cases as cases
from DeepRadScoreLib.errors import InputError
from DeepRadScoreLib.features import radiomics
from DeepRadScoreLib.features.native import backend, lbp, params
from test_native_parity import ALL_CLASSES, _generated, _mapping, _phantom_crop, check

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def sph_harm(monkeypatch):
    """pyradiomics' ``from scipy.special import sph_harm``, on a SciPy that removed it."""
    from scipy import special

    if not hasattr(special, "sph_harm"):
        monkeypatch.setattr(special, "sph_harm", lambda m, n, theta, phi: special.sph_harm_y(n, m, phi, theta),
                            raising=False)


@pytest.mark.parametrize("dtype", [np.int16, np.float32, np.float64])
def test_local_binary_pattern_equals_scikit_image(dtype):
    from skimage.feature import local_binary_pattern

    rng = np.random.default_rng(3)
    image = rng.normal(0, 60, (19, 27)).astype(dtype)
    image[4:9, 3:12] = 7  # a flat patch: ties with the centre, the variance's NaN
    for samples, radius in [(8, 1), (9, 1), (12, 2.5), (1, 1), (31, 1.5)]:
        for method in ("default", "ror", "uniform", "var"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # its float-image warning
                expected = local_binary_pattern(image, samples, radius, method)
            ours = lbp.local_binary_pattern(image, samples, radius, method)
            assert np.array_equal(ours, expected, equal_nan=True), (samples, radius, method)


@pytest.mark.parametrize("subdivisions", [0, 1, 2, 3])
def test_icosphere_equals_trimesh_vertex_for_vertex(subdivisions):
    import trimesh

    for radius in (1.0, 2.5):
        expected = np.array(trimesh.creation.icosphere(subdivisions, radius).vertices)
        assert np.array_equal(lbp.icosphere(subdivisions, radius), expected)


LBP_TYPES = [
    ({"LBP2D": {}}, {}),
    ({"LBP2D": {"lbp2DMethod": "var", "lbp2DSamples": 12, "lbp2DRadius": 2, "binCount": 16}}, {}),
    ({"LBP2D": {"lbp2DMethod": "ror"}}, {"force2D": True, "force2Ddimension": 1}),
    ({"LBP2D": {"lbp2DMethod": "default", "binWidth": 20}}, {"force2D": True, "force2Ddimension": 2}),
    ({"LBP3D": {}}, {}),
    ({"LBP3D": {"lbp3DLevels": 3, "lbp3DIcosphereRadius": 1.5}}, {"binCount": 9}),
    ({"LBP3D": {"lbp3DIcosphereSubdivision": 0}, "Original": {}}, {"resegmentRange": [-100, 400]}),
]


@pytest.mark.parametrize("image_type, setting", LBP_TYPES)
def test_lbp_image_types_equal_pyradiomics(image_type, setting, sph_harm):
    flat_nan = "LBP3D" in image_type or "var" in str(image_type)
    for name, image, mask in _generated("tiny", "border", "anisotropic", "flat", "shell"):
        if name == "flat" and flat_nan:
            continue  # NaN inside the ROI: refused (the test below)
        if name == "tiny" and "resegmentRange" in setting:
            continue
        check(_mapping({"preCrop": True, "binWidth": 0.5, **setting}, image_type, dict(ALL_CLASSES)), image, mask)


def test_lbp_on_the_phantom_an_int16_ct(sph_harm):
    """An int16 CT: LBP2D is written back as int16, LBP3D's samples are rounded to int16."""
    name, image, mask = _phantom_crop()
    image = sitk.Cast(image, sitk.sitkInt16)  # stored as float32; a CT's HU as most scanners write them
    check(_mapping({"preCrop": True, "binWidth": 0.5}, {"LBP2D": {}, "LBP3D": {}},
                   {"firstorder": [], "glcm": [], "glszm": []}), image, mask)


def test_lbp3d_with_more_vertices_on_a_small_roi(sph_harm):
    for name, image, mask in _generated("tiny"):
        check(_mapping({"preCrop": False, "binWidth": 0.25},
                       {"LBP3D": {"lbp3DIcosphereSubdivision": 2, "lbp3DLevels": 2}},
                       {"firstorder": [], "glrlm": []}), image, mask)


def test_lbp3d_in_chunks_equals_one_piece(monkeypatch):
    name, image, mask = cases.phantom()
    array = sitk.GetArrayFromImage(image)[40:60, 60:120, 60:120]
    roi = sitk.GetArrayFromImage(mask)[40:60, 60:120, 60:120] > 0
    whole = lbp.lbp3d(array, roi, 2, 1.0, 1)
    monkeypatch.setattr(lbp, "CHUNK", 97)
    assert roi.sum() > 10 * 97
    for a, b in zip(lbp.lbp3d(array, roi, 2, 1.0, 1), whole):
        assert np.array_equal(a, b)


def test_a_nan_lbp_inside_the_roi_is_refused_with_one_line():
    """A flat ROI: the LBP variance is NaN there, and pyradiomics' binning raises on it."""
    name, image, mask = _generated("flat")[0]
    mapping = _mapping({"preCrop": True}, {"LBP2D": {"lbp2DMethod": "var", "binCount": 16}}, dict(ALL_CLASSES))
    with pytest.raises(ValueError):
        from test_native_parity import pyradiomics_features
        pyradiomics_features(mapping, image, mask)
    with pytest.raises(InputError, match=r"^mask: the lbp-2D image has non-finite values inside the ROI") as err:
        backend.extract_roi(image, mask, params.from_dict(mapping))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("setting, what", [
    ({"lbp3DLevels": 1}, "lbp3DLevels 1"),
    ({"lbp2DMethod": "nri_uniform"}, "invalid value 'nri_uniform'"),
    ({"lbp2DSamples": 0}, "invalid value 0"),
    ({"lbp3DIcosphereRadius": -1}, "invalid value -1"),
    (None, "unknown image type 'LBP4D'"),
])
def test_lbp_settings_pyradiomics_cannot_follow_are_refused(setting, what):
    image_type = "LBP4D" if setting is None else "LBP3D" if "lbp3D" in next(iter(setting)) else "LBP2D"
    with pytest.raises(InputError, match=what) as err:
        params.from_dict({"imageType": {image_type: setting or {}}})
    assert "\n" not in str(err.value)


def test_the_pyradiomics_backend_refuses_lbp3d_where_pyradiomics_yields_nothing():
    """Without ``sph_harm`` (SciPy 1.17) pyradiomics logs a warning and makes no LBP3D image; our
    pyradiomics path then says so in one line instead of writing a table without the columns."""
    from scipy import special

    if hasattr(special, "sph_harm"):
        pytest.skip("this SciPy still has sph_harm, so pyradiomics makes LBP3D images")
    parameters = radiomics.shared.from_text("imageType:\n  LBP3D: {}\n", "lbp3d.yaml")
    with pytest.raises(InputError, match=r"^lbp3d.yaml: pyradiomics cannot make the LBP3D images here .*native"):
        radiomics.feature_names(parameters)
    assert "lbp-3D-k_firstorder_Mean" in backend.roi_feature_names(params.load(parameters))


SLICER_LBP3D = """
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
import scipy
from scipy import special
from DeepRadScoreLib.features.native import lbp
data = np.load(sys.argv[2])
out = lbp.lbp3d(data["array"], data["roi"], 3, 1.0, 1)
np.save(sys.argv[3], np.stack(out))
print(json.dumps({"scipy": scipy.__version__, "sph_harm_y": hasattr(special, "sph_harm_y")}))
"""


def test_lbp3d_with_scipy_1_13s_sph_harm_in_the_slicer_environment(tmp_path):
    sys.path.insert(0, str(ROOT / "tools"))
    import setup_slicer_env

    python = setup_slicer_env.ensure()
    name, image, mask = _generated("shell")[0]
    array = sitk.GetArrayFromImage(image)
    roi = sitk.GetArrayFromImage(mask) > 0
    np.savez(tmp_path / "in.npz", array=array, roi=roi)
    done = subprocess.run([str(python), "-c", SLICER_LBP3D, str(ROOT / "DeepRadScore"), str(tmp_path / "in.npz"),
                           str(tmp_path / "out.npy")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    info = json.loads(done.stdout.strip().splitlines()[-1])
    assert info == {"scipy": "1.13.1", "sph_harm_y": False}  # the genuine sph_harm branch ran
    theirs = np.load(tmp_path / "out.npy")
    ours = np.stack(lbp.lbp3d(array, roi, 3, 1.0, 1))
    assert np.allclose(theirs[:, roi], ours[:, roi], rtol=1e-12, atol=1e-12)
