"""Cases on which the native radiomics backend must equal pyradiomics.

Shared by the native backend's tests: the IBSI phantom, the 18 STS cases in ../shared/data, and
generated cases that stress the edges of pyradiomics' definitions (tiny, touching the image
border, anisotropic, one voxel thick, flat grey level, many zones). Each case is
``(name, image, mask)`` with SimpleITK images on the same grid, mask 0/1 uint8.

``pyradiomics_reference`` runs pyradiomics itself (the bundled parameter file, optionally only
some feature classes) so every equality test compares against a live pyradiomics, never against
stored numbers.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator, Optional

import numpy as np
import SimpleITK as sitk

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
PHANTOM = SHARED_DATA / "ibsi_ct_phantom" / "nifti"
STS = SHARED_DATA / "ibsi_sts_ct"
PARAMS = ROOT / "DeepRadScore" / "DeepRadScoreLib" / "features" / "radiomics_params.yaml"


def _read(image_path: Path, mask_path: Path) -> tuple[sitk.Image, sitk.Image]:
    if not image_path.exists():
        raise FileNotFoundError(f"real test data missing: {image_path} (../shared/data must sit beside the repo)")
    image = sitk.ReadImage(str(image_path))
    mask = sitk.ReadImage(str(mask_path))
    mask = sitk.Cast(mask > 0, sitk.sitkUInt8)
    mask.CopyInformation(image)
    return image, mask


def phantom() -> tuple[str, sitk.Image, sitk.Image]:
    image, mask = _read(PHANTOM / "image.nii.gz", PHANTOM / "mask.nii.gz")
    return "ibsi_phantom", image, mask


def sts_names() -> list[str]:
    return sorted(p.name for p in STS.glob("STS_*") if p.is_dir())


def sts_case(name: str) -> tuple[str, sitk.Image, sitk.Image]:
    image, mask = _read(STS / name / "image.nii.gz", STS / name / "mask.nii.gz")
    return name, image, mask


def _image(hu: np.ndarray, mask: np.ndarray, spacing=(0.8, 0.8, 2.5)) -> tuple[sitk.Image, sitk.Image]:
    image = sitk.GetImageFromArray(hu.astype(np.float32))
    roi = sitk.GetImageFromArray(mask.astype(np.uint8))
    for img in (image, roi):
        img.SetSpacing(spacing)
        img.SetOrigin((-10.0, 4.0, 20.0))
    return image, roi


def generated_cases(seed: int = 0) -> list[tuple[str, sitk.Image, sitk.Image]]:
    """Small cases (each well under a second for pyradiomics) at the edges of the definitions."""
    rng = np.random.default_rng(seed)
    cases = []
    shape = (24, 32, 32)
    k, j, i = np.indices(shape)

    # Tiny: a 3x3x3-ish blob (pyradiomics' minimum ROI is 2 voxels in two dimensions).
    hu = rng.normal(-800, 60, shape)
    m = (abs(k - 12) <= 1) & (abs(j - 16) <= 1) & (abs(i - 16) <= 1)
    hu[m] = rng.normal(40, 30, m.sum())
    cases.append(("tiny",) + _image(hu, m))

    # Touching the image border on three faces (the crop and the wavelet padding clamp there).
    hu = rng.normal(-700, 80, shape)
    m = (k < 6) & (j < 10) & (i >= 22)
    hu[m] = rng.normal(20, 40, m.sum())
    cases.append(("border",) + _image(hu, m))

    # Strongly anisotropic voxels (0.5 x 0.7 x 5 mm) and an ellipsoid.
    hu = rng.normal(-750, 50, shape)
    d = ((i - 15.3) / 9) ** 2 + ((j - 16.7) / 6) ** 2 + ((k - 11.5) / 3) ** 2
    m = d <= 1
    hu[m] = rng.normal(10, 50, m.sum())
    cases.append(("anisotropic",) + _image(hu, m, spacing=(0.5, 0.7, 5.0)))

    # One voxel thick: a plane of a single axial slice (a disc), and a thin oblique line.
    hu = rng.normal(-800, 40, shape)
    m = (k == 9) & ((i - 16) ** 2 + (j - 15) ** 2 <= 30)
    hu[m] = rng.normal(0, 35, m.sum())
    cases.append(("one_voxel_thick",) + _image(hu, m))

    # Flat: every ROI voxel has the same grey level (one bin; many features are degenerate).
    hu = rng.normal(-800, 40, shape)
    m = ((i - 16) ** 2 + (j - 16) ** 2 + ((k - 12) * 2) ** 2) <= 36
    hu[m] = 37.0
    cases.append(("flat",) + _image(hu, m))

    # Many zones: a checkerboard of 2-voxel cells with wide HU steps inside a box.
    hu = rng.normal(-800, 40, shape)
    m = (k >= 4) & (k < 20) & (j >= 6) & (j < 26) & (i >= 6) & (i < 26)
    board = ((k // 2 + j // 2 + i // 2) % 4) * 90.0 - 100 + rng.normal(0, 8, shape)
    hu[m] = board[m]
    cases.append(("many_zones",) + _image(hu, m))

    # A ring-like shell (hollow ROI), the shape of our peritumoral rings.
    hu = rng.normal(-600, 90, shape)
    r = np.sqrt((i - 16) ** 2 + (j - 16) ** 2 + ((k - 12) * 1.5) ** 2)
    m = (r >= 5) & (r <= 8)
    hu[m] = rng.normal(-200, 150, m.sum())
    cases.append(("shell",) + _image(hu, m))
    return cases


def pyradiomics_reference(image: sitk.Image, mask: sitk.Image,
                          classes: Optional[Iterable[str]] = None,
                          image_types: Optional[Iterable[str]] = None,
                          params: Path = PARAMS) -> dict[str, float]:
    """Live pyradiomics features (diagnostics dropped) for the bundled settings.

    ``classes`` limits the feature classes (e.g. ``["glcm"]``), ``image_types`` the image types
    (``["Original"]`` or ``["Wavelet"]``); both default to what the parameter file enables.
    """
    import logging

    from radiomics import featureextractor

    # Its per-image notes ("GLCM is symmetrical ...") would flood the test log; tests only.
    logging.getLogger("radiomics").setLevel(logging.ERROR)
    extractor = featureextractor.RadiomicsFeatureExtractor(str(params))
    if classes is not None:
        extractor.disableAllFeatures()
        for name in classes:
            extractor.enableFeatureClassByName(name)
    if image_types is not None:
        extractor.disableAllImageTypes()
        for name in image_types:
            extractor.enableImageTypeByName(name)
    result = extractor.execute(image, mask, label=1)
    return {k: float(v) for k, v in result.items() if not k.startswith("diagnostics_")}


def compare(reference: dict[str, float], ours: dict[str, float], rtol: float = 1e-6,
            atol: float = 1e-9) -> list[str]:
    """Names that differ (or are missing / extra), each with both values: empty when equal.

    Equality is ``|a - b| <= atol + rtol * |b|``; NaN equals NaN (pyradiomics returns NaN for
    some degenerate ROIs and so must we).
    """
    problems = []
    for name in reference.keys() | ours.keys():
        if name not in ours:
            problems.append(f"{name}: missing (pyradiomics {reference[name]!r})")
            continue
        if name not in reference:
            problems.append(f"{name}: extra (ours {ours[name]!r})")
            continue
        a, b = float(ours[name]), float(reference[name])
        if np.isnan(a) and np.isnan(b):
            continue
        if not abs(a - b) <= atol + rtol * abs(b):
            problems.append(f"{name}: ours {a!r} vs pyradiomics {b!r}")
    return sorted(problems)


def all_cases(include_sts: bool = True) -> Iterator[tuple[str, sitk.Image, sitk.Image]]:
    yield phantom()
    yield from generated_cases()
    if include_sts:
        for name in sts_names():
            yield sts_case(name)
