"""A cohort's features, the one way every pipeline gets them: extracted here unless a feature
table is given, whose recorded settings are then checked.

Features are only comparable when made the same way (:mod:`DeepRadScoreLib.features.settings`),
so the check differs only in what the table must agree with: for training, the values the user
asked for (the table's settings then go into the bundle); for an evaluation, the bundle's.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from DeepRadScoreLib.errors import InputError
from DeepRadScoreLib.features.settings import ExtractionSettings, SettingsRequest, read_settings, resolve_settings
from DeepRadScoreLib.progress import report, scaled

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class CohortFeatures:
    """The cases' radiomics (index case_id, in the asked order), their deep-ROI patches, the
    settings they were extracted with and the table they came from."""

    features: pd.DataFrame
    patches: np.ndarray
    settings: ExtractionSettings
    features_csv: Path


def cohort_features(cohort, case_ids: list[str], features_csv=None, *, extract_to: Path,
                    request: SettingsRequest | None = None, expected: ExtractionSettings | None = None,
                    bundle_where: str = "bundle", workers: int = 1, progress=None, cancel=None) -> CohortFeatures:
    """The features of ``case_ids``: read from ``features_csv``, else extracted into ``extract_to``.

    :param cohort: the :class:`~DeepRadScoreLib.io.manifest.Manifest` holding the cases.
    :param request: what the user asked for (``None`` values: the table's, else the defaults);
        used where there is no ``expected``.
    :param expected: the settings the features must have (an evaluation: the bundle's, resolved
        with what was asked), or ``None`` (training: the table's settings, else the asked ones,
        are the bundle's to be).
    :param bundle_where: the bundle's path, named in the errors.
    :param progress: fills 0..1 with the extraction (nothing to report when a table is read).
    :raises InputError: a table without settings or with contradicting ones, an asked value
        that contradicts the bundle's, and every extraction error.
    """
    from DeepRadScoreLib.features.extraction import extract_cohort, read_feature_table

    extracted = features_csv is None
    if extracted:
        settings = expected or resolve_settings(request)
        report(progress, 0.0, f"extracting the features of {len(case_ids)} cases into {extract_to}", cancel)
        extract_cohort(cohort.subset(case_ids), extract_to, settings, workers=workers,
                       progress=scaled(progress, 0.0, 1.0), cancel=cancel)
        features_csv = extract_to
    recorded = read_settings(features_csv)
    if expected is not None:
        problems = expected.contradictions(recorded)
        if problems:
            raise InputError(f"{features_csv}: extracted with other settings than the bundle "
                             f"{bundle_where}: {'; '.join(problems)}")
    elif request is not None and not extracted and (request.thickness_mm, request.params_path) != (None, None):
        resolve_settings(request, recorded, str(features_csv))
    features, patches = read_feature_table(features_csv, case_ids)
    return CohortFeatures(features, patches, recorded, Path(features_csv))


def cohort_patches(cohort, case_ids: list[str], features_csv=None, progress=None, cancel=None) -> np.ndarray:
    """Deep-ROI patches of ``case_ids``: from a feature table's patches file, else from the CTs
    (a patch depends on no extraction setting, so none is checked; the radiomics are not run)."""
    if features_csv is not None:
        from DeepRadScoreLib.features.extraction import read_feature_table

        return read_feature_table(features_csv, case_ids)[1]
    from DeepRadScoreLib.io.images import load_case
    from DeepRadScoreLib.regions import deep_roi_patch

    patches = []
    for i, case in enumerate(cohort.cases(case_ids)):
        report(progress, i / len(case_ids), f"deep-ROI patch {i + 1}/{len(case_ids)}", cancel)
        loaded = load_case(case.image, case.mask, label=case.label, roi_name=case.roi_name)
        patches.append(deep_roi_patch(loaded.image, loaded.mask).hu)
    return np.stack(patches).astype(np.float32)
