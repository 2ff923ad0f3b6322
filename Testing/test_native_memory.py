"""The native backend's memory peak on a large ROI.

One generated case with a ~300k-voxel tumour (larger than the largest STS tumour, 262k) of smooth
texture: wide equal-grey zones, the worst case for the zone graph (GLSZM) and the run lengths
(GLRLM), whose per-voxel arrays made the peak. The extraction runs in a fresh subprocess, so that
nothing else this test process did counts; the subprocess reports its peak resident memory
(VmHWM, see ``peak_mib``) before and after the extraction, and the rise must stay under
``BOUND_MIB``.

Measured on this case (AMD EPYC, 2 cores): the rise was 191 MiB before the wavelet bands were made
one at a time, the run lengths counted per direction, the zones merged two neighbour steps at a
time and the farthest-pair search done in bounded blocks; it is 51 MiB now. The bound sits
between the two with margin either side (x2.2 above, x1.7 below); memory depends on the array
sizes, not on the CPU's instruction set. The child runs with one BLAS/OpenMP thread, as the
extraction's workers do, so a machine with more cores does not add per-thread buffers.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk

BOUND_MIB = 110

CHILD = r"""
import json, sys
import numpy as np
import SimpleITK as sitk
from DeepRadScoreLib.features.native import backend

def peak_mib():
    # This process's own peak resident memory (VmHWM, what ru_maxrss reports for it): not
    # ru_maxrss itself, which after exec also holds the forking parent's peak (the kernel keeps the
    # maximum over the pre-exec memory), so a large test process would hide the rise measured here.
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024

image, mask, ring = (sitk.ReadImage(path) for path in sys.argv[1:4])
# Every module and cache the extraction uses, loaded on a tiny case first: the rise measured
# below is the large case's data, not code.
tiny = np.zeros((8, 8, 8), np.uint8)
tiny[2:6, 2:6, 2:6] = 1
tiny_ring = np.zeros_like(tiny)
tiny_ring[1:7, 1:7, 1:7] = 1
tiny_ring[2:6, 2:6, 2:6] = 0
grey = sitk.GetImageFromArray(np.arange(8 ** 3, dtype=np.float32).reshape(8, 8, 8))
backend.extract_case_features(grey, sitk.GetImageFromArray(tiny), sitk.GetImageFromArray(tiny_ring))
before = peak_mib()
features = backend.extract_case_features(image, mask, ring)
print(json.dumps({"before": before, "after": peak_mib(), "n": len(features),
                  "zones": features["tumor_original_glszm_ZonePercentage"]}))
"""


def _large_case(folder):
    """A 64 x 176 x 176 CT with a 20 x 60 x 60-voxel ellipsoid tumour of smooth HU texture."""
    from scipy import ndimage

    from DeepRadScoreLib.regions import peritumoral_ring

    rng = np.random.default_rng(13)
    shape = (64, 176, 176)
    texture = ndimage.gaussian_filter(rng.normal(size=shape), sigma=3.0)
    hu = (40.0 + texture * (90.0 / texture.std())).astype(np.float32)
    k, j, i = np.indices(shape, sparse=True)
    tumour = ((k - 32) / 20.0) ** 2 + ((j - 88) / 60.0) ** 2 + ((i - 88) / 60.0) ** 2 <= 1.0
    hu[~tumour] -= 60.0  # the surroundings a little darker, as soft tissue around a tumour
    image = sitk.GetImageFromArray(hu)
    mask = sitk.GetImageFromArray(tumour.astype(np.uint8))
    for item in (image, mask):
        item.SetSpacing((0.8, 0.8, 2.0))
    ring = peritumoral_ring(mask, 3.0)
    paths = [folder / name for name in ("image.nrrd", "mask.nrrd", "ring.nrrd")]
    for item, path in zip((image, mask, ring), paths):
        sitk.WriteImage(item, str(path))
    return paths, int(tumour.sum())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_native_extraction_of_a_large_roi_stays_under_its_memory_bound(tmp_path):
    paths, voxels = _large_case(tmp_path)
    assert voxels > 290_000
    one_thread = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    run = subprocess.run([sys.executable, "-c", CHILD, *map(str, paths)], capture_output=True, text=True,
                         timeout=300, env={**os.environ, **one_thread})
    assert run.returncode == 0, run.stderr[-2000:]
    measured = json.loads(run.stdout.strip().splitlines()[-1])
    assert measured["n"] == 1702 and 0 < measured["zones"] < 1
    rise = measured["after"] - measured["before"]
    assert rise < BOUND_MIB, f"the extraction's peak rose {rise:.0f} MiB above its start (bound {BOUND_MIB})"
