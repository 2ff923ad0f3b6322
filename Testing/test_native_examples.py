"""pyradiomics' own example parameter files through the native backend and through pyradiomics.

The files are pyradiomics' ``examples/exampleSettings`` (Testing/data/pyradiomics_examples, see
its README for their origin). Each runs on small edge cases (an anisotropic 5 mm-slice ellipsoid,
a mask touching the image border, a one-voxel-thick disc), on 8 slices of the IBSI phantom and,
for the cheaper files, on an STS tumour; both sides run here, in this process, so the comparison
holds on any CPU. The tolerance is relative 1e-6 throughout: the resampling and the LoG are
SimpleITK's own calls on both sides, so interpolation adds no difference.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

import native_cases as cases
from DeepRadScoreLib.errors import InputError
from DeepRadScoreLib.features.native import backend, params

EXAMPLES = Path(__file__).resolve().parent / "data" / "pyradiomics_examples"
REPRODUCED = ["Params.yaml", "exampleCT.yaml", "exampleMR_3mm.yaml", "exampleMR_5mm.yaml",
              "exampleMR_NoResampling.yaml", "exampleVoxel.yaml", "example_allShape.yaml",
              "MR_2D_extraction.yaml"]
CHEAP = ["Params.yaml", "exampleVoxel.yaml", "example_allShape.yaml", "exampleMR_NoResampling.yaml"]


def _reference(path: Path, image, mask) -> dict[str, float]:
    from radiomics import featureextractor

    logging.getLogger("radiomics").setLevel(logging.ERROR)
    result = featureextractor.RadiomicsFeatureExtractor(str(path)).execute(image, mask)
    return {k: float(v) for k, v in result.items() if not k.startswith("diagnostics_")}


def _compare(path: Path, image, mask) -> None:
    reference = _reference(path, image, mask)
    settings = params.load(path)
    ours = backend.extract_roi(image, mask, settings)
    assert list(ours) == list(reference) == list(backend.roi_feature_names(settings))
    assert cases.compare(reference, ours) == []


def _phantom_slices():
    _, image, mask = cases.phantom()
    k = np.flatnonzero(sitk.GetArrayViewFromImage(mask).any(axis=(1, 2)))
    lo = max(int(k[0]) + 6, 0)
    return image[:, :, lo:lo + 8], mask[:, :, lo:lo + 8]


def test_every_example_file_is_read():
    assert sorted(p.name for p in EXAMPLES.glob("*.yaml")) == sorted(REPRODUCED)
    for name in REPRODUCED:
        params.load(EXAMPLES / name)


def test_the_2d_example_on_a_one_slice_roi_and_its_refusal_on_a_volume():
    """MR_2D_extraction.yaml asks for shape2D, which pyradiomics computes only for a one-slice
    ROI; on a volume it raises, and so do we."""
    path = EXAMPLES / "MR_2D_extraction.yaml"
    for case, image, mask in cases.generated_cases():
        if case == "one_voxel_thick":
            _compare(path, image, mask)
        if case == "anisotropic":
            with pytest.raises(InputError, match="cannot compute 2D shape"):
                backend.extract_roi(image, mask, params.load(path))


VOLUMES = [n for n in REPRODUCED if n != "MR_2D_extraction.yaml"]


@pytest.mark.parametrize("name", VOLUMES)
def test_example_file_on_edge_cases(name):
    for case, image, mask in cases.generated_cases():
        if case in ("anisotropic", "border", "one_voxel_thick"):
            _compare(EXAMPLES / name, image, mask)


@pytest.mark.parametrize("name", VOLUMES)
def test_example_file_on_the_phantom(name):
    _compare(EXAMPLES / name, *_phantom_slices())


@pytest.mark.parametrize("name", CHEAP)
def test_example_file_on_an_sts_tumour(name):
    _, image, mask = cases.sts_case(cases.sts_names()[0])
    _compare(EXAMPLES / name, image, mask)
