"""Shared fixtures: the real CT cases in ../shared/data and small generated cases."""
from __future__ import annotations

import os
from pathlib import Path

# The suite runs as `pytest -n 2` on 2 cores: one thread per worker. Oversubscribed torch/BLAS
# threads made training steps about 10x slower here.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np
import pytest
import SimpleITK as sitk


def pytest_configure(config):
    import torch

    torch.set_num_threads(1)


ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
PHANTOM = SHARED_DATA / "ibsi_ct_phantom"
STS = SHARED_DATA / "ibsi_sts_ct"


@pytest.fixture(scope="session")
def phantom_paths() -> tuple[Path, Path]:
    image, mask = PHANTOM / "nifti" / "image.nii.gz", PHANTOM / "nifti" / "mask.nii.gz"
    if not image.exists():
        pytest.fail(f"real test data missing: {image} (../shared/data must sit beside the repo)")
    return image, mask


def make_case(shape=(40, 64, 64), spacing=(0.8, 0.8, 2.5), radius_mm=8.0, seed=0,
              direction=None, origin=(-25.0, -30.0, 10.0)) -> tuple[sitk.Image, sitk.Image]:
    """A small CT (lung-like noise, a soft-tissue sphere) and its mask; shape is (k, j, i)."""
    rng = np.random.default_rng(seed)
    hu = rng.normal(-850, 40, size=shape).astype(np.float32)
    k, j, i = np.indices(shape)
    c = np.array(shape) / 2.0
    d = np.sqrt(((i - c[2]) * spacing[0]) ** 2 + ((j - c[1]) * spacing[1]) ** 2 + ((k - c[0]) * spacing[2]) ** 2)
    tumour = d <= radius_mm
    hu[tumour] = rng.normal(30, 20, size=tumour.sum())
    image = sitk.GetImageFromArray(hu)
    mask = sitk.GetImageFromArray(tumour.astype(np.uint8))
    for img in (image, mask):
        img.SetSpacing(spacing)
        img.SetOrigin(origin)
        if direction is not None:
            img.SetDirection(direction)
    return image, mask
