"""A trained model bundle: one directory that loads without running any code from it.

```
bundle.json              everything a person may want to read: versions, endpoints, parameters,
                         feature names, per endpoint the RadScores (features + coefficients by
                         name), chosen classifiers, thresholds, CV AUC tables; training summary;
                         deep-model provenance; data provenance; sha256 of every other file
deep.safetensors         the Deep-CT networks (tensors only)
<endpoint>_<model>.skops the fitted classifier pipelines
```
The RadScores are linear, so they live in bundle.json as plain numbers. The classifier pipelines
are skops files, loaded with :data:`ALLOWED_TYPES`: skops refuses any type it does not trust by
default unless we name it, and we name only the three our seven candidates need, so a file that
holds anything else (a crafted function call, a foreign estimator) is refused before it is built.
The hashes catch accidental damage and edits (bundle.json carries a hash of its own content too);
they are no signature: the allow-list is what keeps a hostile bundle from running code.
"""
from __future__ import annotations

import hashlib
import json
import platform
from importlib import metadata
from pathlib import Path

import numpy as np

from DeepRadScoreLib.model.classifiers import MODELS, positive_probability
from DeepRadScoreLib.errors import InputError
from DeepRadScoreLib.filehash import sha256_file
from DeepRadScoreLib.outputs import atomic_dir
from DeepRadScoreLib.model.radscore import RADSCORE_COLUMNS, RadScorePair

FORMAT_VERSION = 1
BUNDLE_JSON = "bundle.json"
DEEP_FILE = "deep.safetensors"

# Beyond skops' defaults, the fitted candidates hold these (CalibratedClassifierCV: SVM; Tree: RF).
ALLOWED_TYPES = frozenset({
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.tree._tree.Tree",
})

_VERSIONED_PACKAGES = ("numpy", "scipy", "scikit-learn", "skops", "safetensors", "torch", "torchvision",
                       "pyradiomics", "SimpleITK")


class Bundle:
    """A trained Deep-RadScore: per endpoint a RadScorePair and three fitted classifiers, plus the
    Deep-CT ensemble. ``meta`` is the content of bundle.json."""

    def __init__(self, meta: dict, radscores: dict, classifiers: dict, deep, path: Path | None = None):
        self.meta = meta
        self.radscores: dict[str, RadScorePair] = radscores
        self.classifiers: dict[tuple[str, str], object] = classifiers
        self.deep = deep
        self.path = path

    # --- what the rest of the engine reads -------------------------------------------------
    @property
    def endpoints(self) -> list[str]:
        """The endpoints with trained models (skipped ones are in ``skipped``)."""
        return list(self.meta["endpoints"])

    @property
    def skipped(self) -> dict[str, str]:
        return dict(self.meta.get("skipped_endpoints", {}))

    @property
    def feature_names(self) -> list[str]:
        return list(self.meta["feature_names"])

    @property
    def synthetic(self) -> bool:
        return bool(self.meta.get("data", {}).get("synthetic", False))

    def model_info(self, endpoint: str, model: str = "fusion") -> dict:
        """``{"chosen", "threshold", "cv_auc", "file"}`` of one endpoint's model."""
        return self.meta["models"][self.check_endpoint(endpoint)]["models"][model]

    def threshold(self, endpoint: str, model: str = "fusion") -> float:
        return float(self.model_info(endpoint, model)["threshold"])

    def check_endpoint(self, endpoint: str) -> str:
        if endpoint in self.meta["models"]:
            return endpoint
        if endpoint in self.skipped:
            raise InputError(f"endpoint {endpoint} was skipped at training: {self.skipped[endpoint]}")
        raise InputError(f"endpoint {endpoint} is not in this bundle (it has: {', '.join(self.endpoints)})")

    def fusion_head(self, endpoint: str):
        """``(predict_proba, feature_names)``: the fitted fusion classifier on the fused matrix
        ``[deep_1..deep_k, radscore_tumor, radscore_peritumoral]`` -> positive probability."""
        model = self.classifiers[(self.check_endpoint(endpoint), "fusion")]
        k = int(self.meta["parameters"]["deep"]["k"])
        names = [f"deep_{i + 1}" for i in range(k)] + list(RADSCORE_COLUMNS)
        return (lambda matrix: positive_probability(model, np.asarray(matrix, dtype=float))), names

    # --- save / load ------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the bundle directory atomically (all of it or nothing)."""
        import safetensors.torch
        import skops.io

        path = Path(path)
        meta = json.loads(json.dumps(self.meta))  # a private copy, plain JSON types only
        with atomic_dir(path) as tmp:
            tensors = {name: t.detach().cpu().contiguous() for name, t in self.deep.state_tensors().items()}
            safetensors.torch.save_file(tensors, str(tmp / DEEP_FILE))
            for (endpoint, model), pipeline in self.classifiers.items():
                name = f"{endpoint}_{model}.skops"
                skops.io.dump(pipeline, tmp / name)
                meta["models"][endpoint]["models"][model]["file"] = name
            meta["files"] = {f.name: sha256_file(f) for f in sorted(tmp.iterdir())}
            meta["content_sha256"] = _content_hash(meta)
            (tmp / BUNDLE_JSON).write_text(json.dumps(meta, indent=1, allow_nan=False) + "\n")
        self.meta, self.path = meta, path
        return path

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> "Bundle":
        """Read and check a bundle; any problem is an :class:`InputError` naming the file."""
        import safetensors.torch

        path = Path(path)
        meta_file = path / BUNDLE_JSON
        if not meta_file.is_file():
            raise InputError(f"{path}: not a DeepRadScore bundle (no {BUNDLE_JSON})")
        try:
            meta = json.loads(meta_file.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise InputError(f"{meta_file}: not valid JSON ({err})") from None
        if not isinstance(meta, dict):
            raise InputError(f"{meta_file}: not a bundle description")
        version = meta.get("format_version")
        if not isinstance(version, int) or version < 1:
            raise InputError(f"{meta_file}: missing or invalid format_version {version!r}")
        if version > FORMAT_VERSION:
            raise InputError(f"{meta_file}: bundle format {version} is newer than this DeepRadScore "
                             f"reads ({FORMAT_VERSION}); update DeepRadScore")
        if meta.get("content_sha256") != _content_hash(meta):
            raise InputError(f"{meta_file}: content does not match its recorded hash (edited or damaged)")
        files = meta.get("files", {})
        for name, digest in files.items():
            file = path / name
            if Path(name).name != name or not file.is_file():
                raise InputError(f"{path / name}: file listed in the bundle is missing")
            if sha256_file(file) != digest:
                raise InputError(f"{file}: sha256 does not match bundle.json (tampered or damaged)")
        try:
            classifiers = {}
            radscores = {}
            for endpoint, info in meta["models"].items():
                radscores[endpoint] = RadScorePair.from_coefficients(info["radscore"])
                for model in MODELS:
                    name = info["models"][model]["file"]
                    if name not in files:
                        raise InputError(f"{path / name}: not covered by the bundle's hashes")
                    classifiers[(endpoint, model)] = _load_skops(path / name)
            if DEEP_FILE not in files:
                raise InputError(f"{path / DEEP_FILE}: not covered by the bundle's hashes")
            tensors = safetensors.torch.load_file(str(path / DEEP_FILE))
        except (KeyError, TypeError) as err:
            raise InputError(f"{meta_file}: incomplete bundle description ({err})") from None
        from DeepRadScoreLib.deep.training import DeepEnsemble

        deep = DeepEnsemble.from_saved(meta["deep"], tensors, device=device)
        return cls(meta, radscores, classifiers, deep, path)


def _load_skops(file: Path):
    """Load a skops file only if every type it needs beyond skops' defaults is ours."""
    import skops.io

    try:
        untrusted = skops.io.get_untrusted_types(file=file)
    except Exception as err:  # a damaged archive can fail in zipfile, json or skops itself
        raise InputError(f"{file}: not a readable skops file ({type(err).__name__}: {err})") from None
    foreign = sorted(set(untrusted) - ALLOWED_TYPES)
    if foreign:
        raise InputError(f"{file}: refusing to load unexpected types {', '.join(foreign)}")
    return skops.io.load(file, trusted=list(untrusted))


def package_versions() -> dict[str, str]:
    from DeepRadScoreLib import __version__

    versions = {"deepradscore": __version__, "python": platform.python_version()}
    for name in _VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _content_hash(meta: dict) -> str:
    body = {k: v for k, v in meta.items() if k != "content_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, allow_nan=False).encode()).hexdigest()
