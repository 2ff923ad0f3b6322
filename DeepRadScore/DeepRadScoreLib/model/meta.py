"""bundle.json as typed dataclasses: the schema a bundle is validated against before any use.

:class:`BundleMeta` is the whole document. Per endpoint an :class:`EndpointModels` holds the label
counts, the two RadScores (:class:`RadScoreDescription`, plain numbers by feature name) and per
model (radiomics, deep, fusion) a :class:`ModelInfo`: the chosen candidate, its threshold, every
candidate's CV AUCs, and the nested-CV estimate of the whole selection procedure. Reading goes
through :func:`DeepRadScoreLib.typedjson.from_json`, which checks every field's type; the
``__post_init__`` methods add the checks that need more than a type (known candidate names, the
three models present, RadScore features among the bundle's feature columns), so a bundle whose
hashes were recomputed after an edit still cannot reach the code as something malformed.

``deep`` (the Deep-CT description), ``training``, ``data`` and ``software`` stay free-form objects:
``deep`` is checked by ``DeepEnsemble.from_saved``, the others are only shown to people.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from DeepRadScoreLib.features.settings import ExtractionSettings

# The names bundle.json is checked against live here, not in ``classifiers``: reading a bundle's
# description must not import scikit-learn (0.7 s of a predict process).
CANDIDATES = ("SVM", "KNN", "RF", "NB", "LR", "MLP", "LDA")
MODELS = ("radiomics", "deep", "fusion")
RADSCORE_COLUMNS = ("radscore_tumor", "radscore_peritumoral")


ROIS = ("tumor", "peritumoral")


@dataclass
class CandidateAUC:
    """One candidate's CV AUCs: one value per held-out fold (repeats x folds), mean and SD."""

    mean: float
    sd: float
    aucs: list[float]


@dataclass
class NestedCV:
    """The honest estimate of the selection procedure (issue: the chosen mean is a max of 7).

    For each outer fold the inner CV, run on the outer fold's training part only, chose a
    candidate (``chosen``); ``aucs`` are those choices' AUCs on their outer held-out folds.
    """

    mean: float
    sd: float
    aucs: list[float]
    chosen: list[str]

    def __post_init__(self):
        if len(self.aucs) != len(self.chosen) or not self.aucs:
            raise ValueError("nested CV needs one AUC and one choice per outer fold")
        unknown = sorted(set(self.chosen) - set(CANDIDATES))
        if unknown:
            raise ValueError(f"unknown classifier {unknown[0]!r}")


@dataclass
class ModelInfo:
    """One endpoint's one model: what was chosen, how well it did in CV, where its file is."""

    chosen: str
    threshold: float
    cv_auc: dict[str, CandidateAUC]
    nested_cv_auc: NestedCV
    file: str = ""  # the .skops file's name inside the bundle (set when saved)
    # Its numpy inference form (``model.inference``), set when saved if the export passed its
    # check; "" (and in format-2 bundles): applied through the skops file.
    inference_file: str = ""

    def __post_init__(self):
        if self.chosen not in CANDIDATES:
            raise ValueError(f"unknown classifier {self.chosen!r}")
        if set(self.cv_auc) != set(CANDIDATES):
            raise ValueError(f"cv_auc must list the candidates {', '.join(CANDIDATES)}")

    @property
    def chosen_cv_auc(self) -> CandidateAUC:
        """The winner's CV AUC: the best of seven on the same folds, hence optimistic."""
        return self.cv_auc[self.chosen]


@dataclass
class RadScoreFeature:
    name: str
    coefficient: float
    mean: float
    sd: float
    median: float

    def __post_init__(self):
        if not self.sd > 0:
            raise ValueError(f"feature {self.name}: sd must be positive, got {self.sd}")


@dataclass
class SelectionCounts:
    input: int
    after_near_constant: int
    after_univariate: int
    after_correlation: int
    after_lasso: int


@dataclass
class RadScoreDescription:
    """One ROI's fitted RadScore (see :meth:`RadScore.coefficients`)."""

    intercept: float
    C: float | None
    selection_counts: SelectionCounts
    features: list[RadScoreFeature]


@dataclass
class LabelCounts:
    n: int
    n_pos: int
    n_neg: int


@dataclass
class EndpointModels:
    """Everything one endpoint's predictions need, besides the networks and the .skops files."""

    n: int
    n_pos: int
    n_neg: int
    radscore: dict[str, RadScoreDescription]
    models: dict[str, ModelInfo]

    def __post_init__(self):
        if set(self.radscore) != set(ROIS):
            raise ValueError(f"radscore must have {' and '.join(ROIS)}")
        if set(self.models) != set(MODELS):
            raise ValueError(f"models must be {', '.join(MODELS)}")


@dataclass
class NestedCVSettings:
    """How the nested-CV estimates were made (see ``classifiers.select_classifier``)."""

    outer_folds: int
    outer_repeats: int
    inner_folds: int
    rule: str


@dataclass
class Parameters:
    cv_folds: int
    cv_repeats: int
    seed: int
    min_per_class: int
    nested_cv: NestedCVSettings
    radscore: dict[str, Any]
    threshold_rule: str
    deep: dict[str, Any]


@dataclass
class OnnxNetwork:
    """One Deep-CT network as an ONNX graph (format 4): the tensor prefix of its weights in
    deep.safetensors, its file in the bundle, the ONNX opset it was exported with."""

    prefix: str
    file: str
    opset: int


@dataclass
class BundleMeta:
    """The content of bundle.json (see :mod:`DeepRadScoreLib.model.bundle` for the files)."""

    format_version: int
    created: str
    software: dict[str, str]
    endpoints: list[str]
    skipped_endpoints: dict[str, str]
    label_counts: dict[str, LabelCounts]
    parameters: Parameters
    settings: ExtractionSettings
    feature_names: list[str]
    models: dict[str, EndpointModels]
    deep: dict[str, Any]
    training: dict[str, Any]
    data: dict[str, Any]
    # The networks as ONNX graphs, one per member of ``deep`` (format 4); empty: torch runs them
    # (format 3 and older, or a backbone / export that could not be exported).
    deep_onnx: list[OnnxNetwork] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    content_sha256: str = ""

    def __post_init__(self):
        if not self.endpoints:
            raise ValueError("endpoints: the bundle has no trained endpoint")
        if len(set(self.endpoints)) != len(self.endpoints) or set(self.endpoints) != set(self.models):
            raise ValueError("endpoints and models must name the same endpoints, once each")
        known = set(self.feature_names)
        for endpoint, models in self.models.items():
            for roi, score in models.radscore.items():
                absent = [f.name for f in score.features if f.name not in known]
                if absent:
                    raise ValueError(f"models.{endpoint}.radscore.{roi}: feature {absent[0]} is not "
                                     f"among feature_names")
        if self.deep_onnx and self.format_version < 4:
            raise ValueError("deep_onnx: ONNX networks came with bundle format 4")
        prefixes = [n.prefix for n in self.deep_onnx]
        if len(set(prefixes)) != len(prefixes):
            raise ValueError("deep_onnx: a network is listed twice")
        for network in self.deep_onnx:
            if not network.file.endswith(".onnx") or "/" in network.file or "\\" in network.file:
                raise ValueError(f"deep_onnx: {network.file!r} is not an .onnx file name")

    def model(self, endpoint: str, model: str) -> ModelInfo:
        return self.models[endpoint].models[model]
