"""Peritumoral ring and deep-ROI patch: exact definitions checked by brute force and by hand."""
from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import make_case
from DeepRadScoreLib import regions
from DeepRadScoreLib.errors import InputError
from DeepRadScoreLib.regions import (AIR_HU, deep_roi_patch, network_input, patch_to_volume,
                                     peritumoral_ring, sample_patch)

ROTATED = (0.0, -0.6, 0.8, 1.0, 0.0, 0.0, 0.0, 0.8, 0.6)  # orthonormal, far from identity


def image_from(values: np.ndarray, spacing=(1.0, 1.0, 1.0), direction=None, origin=(3.0, -7.0, 11.0)) -> sitk.Image:
    image = sitk.GetImageFromArray(values)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    if direction is not None:
        image.SetDirection(direction)
    return image


def brute_force_ring(tumour: np.ndarray, spacing_ijk, thickness: float) -> np.ndarray:
    """{v not in T : min over t in T of |v - t|_mm <= thickness}, by checking every pair."""
    spacing_kji = np.array(spacing_ijk[::-1], dtype=float)
    voxels = np.argwhere(np.ones_like(tumour)) * spacing_kji
    tumour_mm = np.argwhere(tumour) * spacing_kji
    nearest = np.full(len(voxels), np.inf)
    for start in range(0, len(tumour_mm), 256):
        chunk = tumour_mm[start:start + 256]
        d = np.sqrt(((voxels[:, None, :] - chunk[None, :, :]) ** 2).sum(-1)).min(axis=1)
        nearest = np.minimum(nearest, d)
    ring = (nearest <= thickness + regions.DISTANCE_TOLERANCE_MM).reshape(tumour.shape)
    return ring & ~tumour


@pytest.mark.parametrize("spacing, thickness, seed", [
    ((0.7, 1.3, 2.9), 3.0, 0),
    ((0.6, 0.6, 1.5), 3.0, 1),   # 5 x 0.6 mm is exactly 3 mm: the boundary voxel must count
    ((1.1, 0.45, 0.8), 2.2, 2),
])
def test_ring_equals_brute_force_distance_definition(spacing, thickness, seed):
    rng = np.random.default_rng(seed)
    tumour = np.zeros((11, 17, 19), dtype=bool)
    tumour[3:7, 5:11, 6:12] = rng.random((4, 6, 6)) < 0.6  # irregular, with holes and concavities
    tumour[0, 0, 18] = True  # a voxel at the image corner: the ring is clipped there
    tumour[10, 16, 3] = True
    ring = peritumoral_ring(image_from(tumour.astype(np.uint8), spacing), thickness)
    got = sitk.GetArrayFromImage(ring) > 0
    expected = brute_force_ring(tumour, spacing, thickness)
    np.testing.assert_array_equal(got, expected)
    assert expected.sum() > 100 and not (got & tumour).any()


def voxelised_sphere(spacing, radius, shape, centre_kji):
    k, j, i = np.indices(shape)
    d = np.sqrt(((i - centre_kji[2]) * spacing[0]) ** 2 + ((j - centre_kji[1]) * spacing[1]) ** 2
                + ((k - centre_kji[0]) * spacing[2]) ** 2)
    return d, image_from((d <= radius).astype(np.uint8), spacing)


def test_ring_of_voxelised_sphere_lies_between_analytic_shells():
    """Exact sandwich for a sphere of radius R voxelised by centres, h = half a voxel diagonal:
    {R < d <= R + t - 2h} is inside the ring (the segment from v to the centre passes a point at
    R - h whose voxel is tumour and within d - R + 2h of v), and the ring is inside {R < d <= R + t}
    (its nearest tumour voxel lies in the ball)."""
    spacing, radius, thickness = (0.6, 0.75, 1.25), 12.0, 3.0
    d, sphere = voxelised_sphere(spacing, radius, (24, 42, 52), (11.6, 20.7, 25.1))
    ring = sitk.GetArrayFromImage(peritumoral_ring(sphere, thickness)) > 0
    h = 0.5 * np.linalg.norm(spacing)
    inner = (d > radius) & (d <= radius + thickness - 2 * h)
    outer = (d > radius) & (d <= radius + thickness)
    assert inner.sum() > 1000
    assert not (inner & ~ring).any() and not (ring & ~outer).any()
    assert ring.sum() < outer.sum()  # measured on the way: the ring is thinner than the shell here


def test_ring_volume_of_a_finely_voxelised_sphere_is_the_analytic_shell():
    """At 0.5 mm isotropic the voxel-centre distance thins the shell by a few % (the tumour's outer
    voxel centres lie inside the sphere); coarser CT grids thin it more (docs/architecture.md)."""
    spacing, radius, thickness = (0.5, 0.5, 0.5), 12.0, 3.0
    d, sphere = voxelised_sphere(spacing, radius, (68, 68, 68), (33.8, 34.3, 33.6))
    ring = sitk.GetArrayFromImage(peritumoral_ring(sphere, thickness)) > 0
    shell = 4.0 / 3.0 * np.pi * ((radius + thickness) ** 3 - radius ** 3)
    volume = ring.sum() * np.prod(spacing)
    print(f"voxelised ring {volume:.0f} mm3 vs analytic shell {shell:.0f} mm3 ({volume / shell - 1:+.1%})")
    assert volume == pytest.approx(shell, rel=0.04)


def test_ring_does_not_depend_on_direction_cosines():
    _, mask = make_case(shape=(20, 30, 30), spacing=(0.8, 0.8, 2.5), radius_mm=6.0)
    rotated = sitk.Image(mask)
    rotated.SetDirection(ROTATED)
    a = sitk.GetArrayFromImage(peritumoral_ring(mask, 3.0))
    b_image = peritumoral_ring(rotated, 3.0)
    np.testing.assert_array_equal(a, sitk.GetArrayFromImage(b_image))
    assert b_image.GetDirection() == pytest.approx(ROTATED) and a.sum() > 0


def test_ring_constraint_and_hu_range():
    image, mask = make_case(shape=(20, 30, 30), spacing=(0.8, 0.8, 2.5), radius_mm=6.0)
    hu = sitk.GetArrayFromImage(image)
    hu[:, :, :15] = -1000.0  # "outside the body" on the left half
    image = image_from(hu, image.GetSpacing(), origin=image.GetOrigin())
    full = sitk.GetArrayFromImage(peritumoral_ring(mask, 3.0)) > 0
    body = np.zeros(full.shape, dtype=np.uint8)
    body[:, :, 15:] = 1
    constrained = sitk.GetArrayFromImage(peritumoral_ring(mask, 3.0, constraint=_on(mask, body))) > 0
    np.testing.assert_array_equal(constrained, full & (body > 0))
    by_hu = sitk.GetArrayFromImage(peritumoral_ring(mask, 3.0, image=image, hu_range=(-900, 300))) > 0
    np.testing.assert_array_equal(by_hu, full & (hu >= -900) & (hu <= 300))
    assert 0 < by_hu.sum() < full.sum()
    with pytest.raises(InputError, match="needs the CT image"):
        peritumoral_ring(mask, 3.0, hu_range=(-900, 300))
    with pytest.raises(InputError, match="LOW < HIGH"):
        peritumoral_ring(mask, 3.0, image=image, hu_range=(300, -900))
    from DeepRadScoreLib.features.settings import SettingsRequest, check_thickness, resolve_settings

    for thickness in (0.0, -1.0, 0.49, float("inf"), float("nan"), 50.01):
        with pytest.raises(InputError, match=r"--thickness-mm .*: the ring thickness must be from 0.5 to 50 mm"):
            check_thickness(thickness)
        with pytest.raises(InputError, match=r"--thickness-mm .*: the ring thickness must be from 0.5 to 50 mm"):
            resolve_settings(SettingsRequest(thickness_mm=thickness))
    for limit in (0.5, 50.0):  # the limits themselves are fine
        assert resolve_settings(SettingsRequest(thickness_mm=limit)).thickness_mm == limit
    assert sitk.GetArrayViewFromImage(peritumoral_ring(mask, 50.0)).any()
    with pytest.raises(InputError, match="the tumour mask is empty"):
        peritumoral_ring(_on(mask, np.zeros(full.shape, np.uint8)), 3.0)
    wrong = image_from(body, (1.0, 1.0, 1.0))
    with pytest.raises(InputError, match="ring constraint: mask is not on the image's grid"):
        peritumoral_ring(mask, 3.0, constraint=wrong)


def _on(reference: sitk.Image, values: np.ndarray) -> sitk.Image:
    image = sitk.GetImageFromArray(values)
    image.CopyInformation(reference)
    return image


# ------------------------------------------------------------------------ deep-ROI patch

def indexed_ct(shape=(9, 200, 190), spacing=(0.7, 0.8, 2.0), direction=None):
    """A CT whose every voxel value encodes its own index: hu = 1e4 k + 100 j + i (exact in float32)."""
    k, j, i = np.indices(shape)
    return image_from((k * 10000 + j * 100 + i).astype(np.float32), spacing, direction)


def test_patch_slice_choice_and_centring():
    image = indexed_ct()
    tumour = np.zeros((9, 200, 190), dtype=np.uint8)
    tumour[2, 50:60, 40:50] = 1   # area 100
    tumour[5, 90:101, 70:81] = 1  # area 121, the largest; centroid (row 95, col 75)
    tumour[6, 90:100, 70:80] = 1
    patch = deep_roi_patch(image, _on(image, tumour))
    assert (patch.slice_index, patch.tumour_area_voxels) == (5, 121)
    assert patch.hu.shape == (160, 160) and patch.hu.dtype == np.float32
    assert patch.centroid_index == (75.0, 95.0, 5.0)
    assert (patch.row0, patch.column0) == (95 - 80, 75 - 80)
    # hu[r, c] is the CT at (i, j, k) = (column0 + c, row0 + r, slice_index)
    assert patch.hu[80, 80] == 5 * 10000 + 95 * 100 + 75
    assert patch.hu[3, 150] == 5 * 10000 + (patch.row0 + 3) * 100 + patch.column0 + 150
    # Half-voxel centroids round up: rows 90..99 -> 94.5 -> 95; cols 70..79 -> 74.5 -> 75.
    tumour[5] = 0
    tumour[5, 90:100, 70:80] = 1
    tumour[6] = 0
    tumour[4, 90:100, 70:80] = 1  # slices 4 and 5 tie at 100 with slice 2; the 3D centroid is 3.67
    patch = deep_roi_patch(image, _on(image, tumour))
    assert patch.slice_index == 4  # nearest to the 3D centroid among the tied slices
    assert (patch.row0 + 80, patch.column0 + 80) == (95, 75)


def test_patch_tie_equally_near_the_centroid_takes_the_lower_slice():
    image = indexed_ct(shape=(7, 170, 170))
    tumour = np.zeros((7, 170, 170), dtype=np.uint8)
    tumour[2, 80:90, 80:90] = 1
    tumour[4, 80:90, 80:90] = 1  # centroid k = 3, equally near slices 2 and 4
    assert deep_roi_patch(image, _on(image, tumour)).slice_index == 2


def test_patch_is_padded_with_air_beyond_the_image():
    image = indexed_ct(shape=(3, 120, 100))
    tumour = np.zeros((3, 120, 100), dtype=np.uint8)
    tumour[1, 2:6, 90:96] = 1  # near the top-right corner: centroid (row 3.5 -> 4, col 92.5 -> 93)
    patch = deep_roi_patch(image, _on(image, tumour))
    assert (patch.row0, patch.column0) == (4 - 80, 93 - 80)
    inside = np.zeros((160, 160), dtype=bool)
    inside[76:, :87] = True  # rows 0..119 of the CT are patch rows 76.., columns 13..99 are 0..86
    assert np.all(patch.hu[~inside] == AIR_HU)
    r, c = np.nonzero(inside)
    np.testing.assert_array_equal(patch.hu[inside], 10000 + (patch.row0 + r) * 100 + patch.column0 + c)
    outline = np.zeros((160, 160), dtype=bool)
    outline[2 + 76:6 + 76, 90 - 13:96 - 13] = True
    np.testing.assert_array_equal(sample_patch(_on(image, tumour), patch) > 0, outline)


def test_patch_corners_in_physical_space_with_a_rotated_direction():
    spacing, origin = (0.7, 0.8, 2.0), np.array([3.0, -7.0, 11.0])
    image = indexed_ct(shape=(5, 100, 100), spacing=spacing, direction=ROTATED)
    tumour = np.zeros((5, 100, 100), dtype=np.uint8)
    tumour[3, 40:50, 60:70] = 1
    patch = deep_roi_patch(image, _on(image, tumour))
    matrix = np.array(ROTATED).reshape(3, 3) * np.array(spacing)
    corners_index = [(patch.column0 + c, patch.row0 + r, 3) for r, c in ((0, 0), (0, 159), (159, 0), (159, 159))]
    expected = np.array([origin + matrix @ np.array(idx, dtype=float) for idx in corners_index])
    np.testing.assert_allclose(patch.corners, expected, atol=1e-9)
    # Pixel (r, c) sits at corner0 + c * (column step) + r * (row step): a rigid 2D grid in space.
    assert np.linalg.norm(patch.corners[1] - patch.corners[0]) == pytest.approx(159 * 0.7)
    assert np.linalg.norm(patch.corners[2] - patch.corners[0]) == pytest.approx(159 * 0.8)
    d = patch.to_dict()
    assert d["slice_index"] == 3 and d["size"] == 160 and np.allclose(d["corners_lps_mm"], expected)


def test_patch_refuses_masks_off_the_grid_and_empty_masks():
    image = indexed_ct(shape=(3, 50, 50))
    with pytest.raises(InputError, match="the tumour mask is empty"):
        deep_roi_patch(image, _on(image, np.zeros((3, 50, 50), np.uint8)))
    with pytest.raises(InputError, match="tumour mask: mask is not on the image's grid"):
        deep_roi_patch(image, image_from(np.ones((3, 50, 50), np.uint8), (1.0, 1.0, 1.0)))


def test_network_input_windows_and_imagenet_normalisation():
    hu = np.array([[-1000.0, -600.0, 40.0], [0.0, 1000.0, 3000.0]], dtype=np.float32)
    x = network_input(hu)
    assert x.shape == (3, 2, 3) and x.dtype == np.float32
    # lung window C -600 W 1500 -> [-1350, 150]; mediastinal C 40 W 400 -> [-160, 240];
    # wide C 0 W 2000 -> [-1000, 1000]; each clipped to 0..1 then (v - mean) / std, ImageNet's.
    lung = (np.array([[350 / 1500, 0.5, 1390 / 1500], [1350 / 1500, 1.0, 1.0]]) - 0.485) / 0.229
    mediastinal = (np.array([[0.0, 0.0, 0.5], [0.4, 1.0, 1.0]]) - 0.456) / 0.224
    wide = (np.array([[0.0, 0.2, 0.52], [0.5, 1.0, 1.0]]) - 0.406) / 0.225
    np.testing.assert_allclose(x[0], lung, rtol=1e-6)
    np.testing.assert_allclose(x[1], mediastinal, rtol=1e-6)
    np.testing.assert_allclose(x[2], wide, rtol=1e-6)
    assert x[0, 0, 1] == pytest.approx(0.0655022, abs=1e-6)   # -600 HU, lung channel
    assert x[1, 0, 2] == pytest.approx(0.1964286, abs=1e-6)   # 40 HU, mediastinal channel
    assert x[2, 1, 1] == pytest.approx(2.6400000, abs=1e-6)   # 1000 HU, wide channel
    batch = network_input(np.stack([hu, hu]))
    assert batch.shape == (2, 3, 2, 3)
    np.testing.assert_array_equal(batch[1], x)


def test_patch_to_volume_round_trip_at_the_image_edge():
    image = indexed_ct(shape=(4, 120, 100), direction=ROTATED)
    tumour = np.zeros((4, 120, 100), dtype=np.uint8)
    tumour[2, 100:110, 5:15] = 1  # near the bottom-left: part of the patch is outside the image
    patch = deep_roi_patch(image, _on(image, tumour))
    values = np.random.default_rng(0).random((160, 160)).astype(np.float32)
    volume = patch_to_volume(patch, values, image)
    assert volume.GetDirection() == pytest.approx(ROTATED) and volume.GetSize() == image.GetSize()
    back = sample_patch(volume, patch, fill=-1.0)
    outside = patch.hu == AIR_HU  # the indexed CT has no -1000, so these are exactly the padded pixels
    np.testing.assert_array_equal(back[~outside], values[~outside])
    assert np.all(back[outside] == -1.0) and outside.any()
    array = sitk.GetArrayFromImage(volume)
    assert not array[[0, 1, 3]].any()
    assert np.count_nonzero(array[2]) == np.count_nonzero(values[~outside])
    with pytest.raises(ValueError, match="160 x 160"):
        patch_to_volume(patch, values[:10], image)
