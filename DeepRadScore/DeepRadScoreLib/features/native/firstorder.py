"""pyradiomics' 18 first-order (histogram) features of an ROI, from their definitions.

The grey values ``X`` are the ROI's voxels in float64 (``voxelArrayShift`` is added to them in the
three energy features only). Percentiles are
numpy's linear ones; the histogram ``p`` is the fraction of voxels per discretised bin (only
bins that occur). Definitions (N voxels, mean ``mu``, central moments ``m_k = mean((X - mu)^k)``):
Energy ``sum X^2``, TotalEnergy Energy times the voxel volume (mm^3), Entropy
``-sum p log2(p + eps)`` with eps the float64 machine epsilon, Uniformity ``sum p^2``,
RootMeanSquared ``sqrt(Energy / N)``, MeanAbsoluteDeviation ``mean |X - mu|``,
RobustMeanAbsoluteDeviation the same over the voxels between the 10th and 90th percentile
(inclusive), Skewness ``m3 / m2^1.5`` and Kurtosis ``m4 / m2^2`` (0 for a flat ROI, where
``m2 = 0``; not the excess kurtosis), Variance the square of the population standard deviation.
"""
from __future__ import annotations


import numpy as np

from DeepRadScoreLib.features.native.preprocess import discretise


# pyradiomics' order (its getFeatureNames: alphabetical on the method names), deprecated
# StandardDeviation left out.
NAMES = ("10Percentile", "90Percentile", "Energy", "Entropy", "InterquartileRange", "Kurtosis",
         "Maximum", "MeanAbsoluteDeviation", "Mean", "Median", "Minimum", "Range",
         "RobustMeanAbsoluteDeviation", "RootMeanSquared", "Skewness", "TotalEnergy", "Uniformity",
         "Variance")

# Deprecated in pyradiomics, yet computed when listed by name: the population standard deviation.
DEPRECATED = ("StandardDeviation",)


def features(image: np.ndarray, mask: np.ndarray, spacing, bin_width: float, bin_count=None,
             shift: float = 0, deprecated: bool = False, q: np.ndarray | None = None) -> dict[str, float]:
    """The first-order features of the ROI ``mask`` (boolean) of ``image`` (grey levels).

    ``spacing`` is the voxel size in SimpleITK (x, y, z) order (for TotalEnergy), ``bin_width``
    the discretisation's bin width (for Entropy and Uniformity; ``bin_count`` instead where set),
    ``shift`` pyradiomics' ``voxelArrayShift``, added to the grey values in Energy, TotalEnergy and
    RootMeanSquared only, ``q`` the image already discretised with these bins where the caller
    has it (the texture classes need it too). Returns {name: value} in :data:`NAMES` order.
    """
    x = image[mask].astype(np.float64)
    q = discretise(image, mask, bin_width, bin_count) if q is None else q
    counts = np.bincount(q[mask])
    counts = counts[counts > 0]
    p = counts / float(counts.sum())

    p10, p25, p75, p90 = np.percentile(x, [10, 25, 75, 90])
    mean = x.mean()
    deviation = x - mean
    squared = deviation * deviation
    m2 = squared.mean()
    m3 = (squared * deviation).mean()
    m4 = (squared * squared).mean()
    shifted = x + shift if shift else x
    energy = float(np.sum(shifted * shifted))
    voxel_volume = float(np.prod(np.asarray(spacing, dtype=np.float64)))
    robust = x[(x >= p10) & (x <= p90)]
    flat = m2 == 0

    values = {
        "10Percentile": p10,
        "90Percentile": p90,
        "Energy": energy,
        "Entropy": -np.sum(p * np.log2(p + np.spacing(1))),
        "InterquartileRange": p75 - p25,
        "Kurtosis": 0.0 if flat else m4 / m2 ** 2,
        "Maximum": x.max(),
        "MeanAbsoluteDeviation": np.abs(deviation).mean(),
        "Mean": mean,
        "Median": np.median(x),
        "Minimum": x.min(),
        "Range": x.max() - x.min(),
        "RobustMeanAbsoluteDeviation": np.abs(robust - robust.mean()).mean(),
        "RootMeanSquared": np.sqrt(energy / len(x)),
        "Skewness": 0.0 if flat else m3 / m2 ** 1.5,
        "TotalEnergy": energy * voxel_volume,
        "Uniformity": np.sum(p * p),
        "Variance": m2,
    }
    values["StandardDeviation"] = np.sqrt(m2)
    return {name: float(values[name]) for name in NAMES + (DEPRECATED if deprecated else ())}
