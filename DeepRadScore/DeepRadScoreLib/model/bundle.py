"""A trained model bundle: one directory that loads without running any code from it.

```
bundle.json              everything a person may want to read: versions, endpoints, parameters,
                         the extraction settings, feature names, per endpoint the RadScores
                         (features + coefficients by name), chosen classifiers, thresholds, CV AUC
                         tables and nested-CV estimates; training summary; deep-model provenance;
                         data provenance; sha256 of every other file
deep.safetensors         the Deep-CT networks (tensors only): what torch trains and reads
deep.<member>.onnx       each network as an ONNX graph (format 4): what prediction runs, through
                         ONNX Runtime, without torch (``deep.onnx_ensemble``)
<endpoint>_<model>.skops the fitted classifier pipelines (scikit-learn)
<endpoint>_<model>.inference.json  the same classifier as plain numbers, applied with numpy
```
The RadScores are linear, so they live in bundle.json as plain numbers and are applied with numpy
(``inference.RadScoreTransform``). Each classifier is applied through its inference file where the
bundle has one (``model.inference``: exported at save and checked against the pipeline first), so
that loading a bundle imports neither scikit-learn nor skops (1.5 s of CPU); a model
without one (a format-2 bundle, an export that failed its check) is read from its skops file.
:attr:`Bundle.pipelines` gives the scikit-learn pipelines themselves, from the skops files, which
are loaded with :data:`ALLOWED_TYPES`: skops refuses any type it does not trust by
default unless we name it, and we name only the three our seven candidates need, so a file that
holds anything else (a crafted function call, a foreign estimator) is refused before it is built.
The hashes catch accidental damage and edits (bundle.json carries a hash of its own content too);
they are no signature: the allow-list is what keeps a hostile bundle from running code.

bundle.json is read into :class:`~DeepRadScoreLib.model.meta.BundleMeta` and so validated against
its schema before anything uses it; the networks file must be a safetensors file matching the
Deep-CT description. Any problem, even in a bundle whose hashes were recomputed after an edit, is
one :class:`InputError` naming the file: never a traceback, and nothing in it is ever executed.
"""
from __future__ import annotations

import hashlib
import json
import logging
import platform
import threading
from importlib import metadata
from pathlib import Path

import numpy as np

from DeepRadScoreLib.errors import InputError
from DeepRadScoreLib.features.settings import ExtractionSettings
from DeepRadScoreLib.filehash import sha256_file
# Only scikit-learn-free modules: a predict process reads bundle.json before the radiomics start,
# the networks and classifiers in a background thread meanwhile, and never imports scikit-learn
# or skops when every model it uses has an inference file.
from DeepRadScoreLib.model.inference import (InferenceClassifier, RadScoreTransform, positive_probability,
                                             read_inference, write_inference)
from DeepRadScoreLib.model.meta import MODELS, RADSCORE_COLUMNS, BundleMeta, ModelInfo
from DeepRadScoreLib.outputs import atomic_dir
from DeepRadScoreLib.resources import torch_threads
from DeepRadScoreLib.typedjson import SchemaError, from_json, to_json

logger = logging.getLogger(__name__)

# 2: typed, schema-checked bundle.json with the extraction settings and nested-CV estimates.
# 3: numpy inference files beside the skops files (``ModelInfo.inference_file``); 2 still loads.
# 4: the Deep-CT networks as ONNX graphs too (``BundleMeta.deep_onnx``); 2 and 3 load through torch.
FORMAT_VERSION = 4
OLDEST_FORMAT = 2
BUNDLE_JSON = "bundle.json"
DEEP_FILE = "deep.safetensors"

# Beyond skops' defaults, the fitted candidates hold these (CalibratedClassifierCV: SVM; Tree: RF).
ALLOWED_TYPES = frozenset({
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.tree._tree.Tree",
})

_VERSIONED_PACKAGES = ("numpy", "scipy", "scikit-learn", "skops", "safetensors", "torch", "torchvision",
                       "onnx", "onnxruntime", "pyradiomics", "SimpleITK")
# Which runtime runs the networks: "auto" = ONNX Runtime where the bundle has its graphs, else torch.
DEEP_RUNTIMES = ("auto", "torch")
_TORCH_NOTED: set[str] = set()  # bundles already said to run through torch (said once a process)


class Bundle:
    """A trained Deep-RadScore: per endpoint a RadScorePair and three fitted classifiers, plus the
    Deep-CT ensemble. ``meta`` is bundle.json as a :class:`BundleMeta`."""

    def __init__(self, meta: BundleMeta, radscores: dict, classifiers: dict | None, deep,
                 path: Path | None = None, endpoints: list[str] | None = None,
                 inference: dict | None = None):
        self.meta = meta
        self._radscores: dict | None = radscores
        self._classifiers: dict[tuple[str, str], object] | None = classifiers
        # {(endpoint, model): exported inference document} of classifiers given as scikit-learn
        # pipelines (training exports them on the training inputs); save() writes them.
        self._inference: dict = dict(inference or {})
        self._pipelines: dict | None = None
        self._deep = deep
        self.path = path
        # The endpoints loaded (a partial load reads only these); default: all trained ones.
        self._loaded = list(endpoints) if endpoints is not None else list(meta.endpoints)
        self._loader = None  # a thread still reading the networks and classifiers (background load)
        # Set by that thread once the networks are in (before the classifiers): the Deep-CT of a
        # case can start while scikit-learn and the classifiers still load.
        self._deep_ready = threading.Event()
        self._load_error: BaseException | None = None

    @property
    def radscores(self) -> dict:
        """``{endpoint: RadScores}``: ``transform(features, names) -> (n, 2)``; a loaded bundle's
        are numpy ``RadScoreTransform`` from bundle.json's coefficients (a freshly trained one's
        the fitted ``RadScorePair``; ``RadScorePair.from_coefficients`` rebuilds those)."""
        self.wait()
        return self._radscores

    @radscores.setter
    def radscores(self, value) -> None:
        self._radscores = value

    @property
    def classifiers(self) -> dict[tuple[str, str], object]:
        """``{(endpoint, model): fitted classifier}`` of the loaded endpoints, each with
        ``predict_proba(X) -> (n, 2)``: the numpy :class:`InferenceClassifier` where the bundle has
        its inference file, else the scikit-learn pipeline from the skops file."""
        self.wait()
        return self._classifiers

    @classifiers.setter
    def classifiers(self, value) -> None:
        self._classifiers = value
        self._pipelines = None

    @property
    def pipelines(self) -> dict[tuple[str, str], object]:
        """``{(endpoint, model): fitted scikit-learn pipeline}`` of the loaded endpoints. Where
        :attr:`classifiers` holds an inference form, the pipeline is read from its skops file on
        first use (hash-checked; this imports scikit-learn and skops)."""
        if self._pipelines is None:
            pipelines = {}
            for key, model in self.classifiers.items():
                if isinstance(model, InferenceClassifier):
                    name = self.meta.model(*key).file
                    folder = Path(self.path or ".")
                    _check_hash(folder, self.meta, name)
                    model = _load_skops(folder / name, model.n_features_in_)
                pipelines[key] = model
            self._pipelines = pipelines
        return self._pipelines

    @property
    def has_onnx(self) -> bool:
        """The bundle carries its networks as ONNX graphs (bundle.json's ``deep_onnx`` is not
        empty), so prediction runs them without torch."""
        return bool(self.meta.deep_onnx)

    @property
    def deep(self):
        """The Deep-CT ensemble: an :class:`~DeepRadScoreLib.deep.onnx_ensemble.OnnxEnsemble`
        (ONNX Runtime) where the bundle has its ONNX graphs, else a
        :class:`~DeepRadScoreLib.deep.ensemble.DeepEnsemble` (torch); the same interface, and
        ``runtime`` says which. During a background load it is available as soon as the networks
        are, before the classifiers."""
        if self._loader is not None:
            self._deep_ready.wait()
            # Networks that loaded are usable even if a classifier file then failed: that error
            # is raised where the classifiers are needed (classifiers, wait()).
            if self._deep is not None:
                return self._deep
        self.wait()
        return self._deep

    @deep.setter
    def deep(self, value) -> None:
        self._deep = value

    def wait(self) -> "Bundle":
        """Block until a background load has finished; re-raise its error (an :class:`InputError`
        naming the file) here, in the caller's thread.

        :returns: the bundle itself, fully loaded.
        """
        if self._loader is not None:
            self._loader.join()
            self._loader = None
        if self._load_error is not None:
            raise self._load_error
        return self

    # --- what the rest of the engine (and the Slicer module) reads ----------------------------
    @property
    def endpoints(self) -> list[str]:
        """The endpoints with trained models that were loaded (all of them unless
        :meth:`load` was given ``endpoints``; skipped ones are in ``skipped``)."""
        return list(self._loaded)

    @property
    def skipped(self) -> dict[str, str]:
        return dict(self.meta.skipped_endpoints)

    @property
    def feature_names(self) -> list[str]:
        return list(self.meta.feature_names)

    @property
    def synthetic(self) -> bool:
        return bool(self.meta.data.get("synthetic", False))

    @property
    def settings(self) -> ExtractionSettings:
        """The extraction settings the bundle was trained with: ``settings.thickness_mm`` (the
        ring), ``settings.parameters()`` (its pyradiomics parameters)."""
        return self.meta.settings

    def model_info(self, endpoint: str, model: str = "fusion") -> ModelInfo:
        """One endpoint's model: chosen classifier, threshold, CV AUCs, nested-CV estimate."""
        return self.meta.model(self.check_endpoint(endpoint), model)

    def threshold(self, endpoint: str, model: str = "fusion") -> float:
        return float(self.model_info(endpoint, model).threshold)

    def check_endpoint(self, endpoint: str) -> str:
        where = f"{self.path}: " if self.path else ""
        if endpoint in self._loaded:
            return endpoint
        if endpoint in self.meta.models:
            raise InputError(f"{where}endpoint {endpoint} was not loaded (loaded: {', '.join(self._loaded)})")
        if endpoint in self.skipped:
            raise InputError(f"{where}endpoint {endpoint} was skipped at training: {self.skipped[endpoint]}")
        raise InputError(f"{where}endpoint {endpoint} is not in this bundle (it has: {', '.join(self.endpoints)})")

    def fusion_head(self, endpoint: str):
        """``(predict_proba, feature_names)``: the fitted fusion classifier on the fused matrix
        ``[deep_1..deep_k, radscore_tumor, radscore_peritumoral]`` -> positive probability."""
        model = self.classifiers[(self.check_endpoint(endpoint), "fusion")]
        k = int(self.deep.config.k)
        names = [f"deep_{i + 1}" for i in range(k)] + list(RADSCORE_COLUMNS)
        return (lambda matrix: positive_probability(model, np.asarray(matrix, dtype=float))), names

    # --- save / load ------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the bundle directory atomically (all of it or nothing): per classifier its skops
        file and, where the export passes its check, its inference file (a classifier without an
        exported document is exported here, checked on rows made from its fitted state).

        :param path: the bundle directory to create (replaced if it exists).
        :returns: ``path``.
        """
        import skops.io

        from DeepRadScoreLib.model.inference_export import export_classifier

        if self._loaded != list(self.meta.endpoints):
            raise ValueError("a partially loaded bundle cannot be saved: load every endpoint")
        path = Path(path)
        meta = to_json(self.meta)  # a private copy, plain JSON types only
        meta["format_version"] = FORMAT_VERSION  # a format-2 bundle saved again gains its forms
        with atomic_dir(path) as tmp:
            meta["deep_onnx"] = _save_networks(self, tmp)
            for (endpoint, model), pipeline in self.pipelines.items():
                entry = meta["models"][endpoint]["models"][model]
                entry["file"] = f"{endpoint}_{model}.skops"
                skops.io.dump(pipeline, tmp / entry["file"])
                current = self.classifiers[(endpoint, model)]
                doc = (current.to_json() if isinstance(current, InferenceClassifier)
                       else self._inference.get((endpoint, model))
                       or export_classifier(pipeline, name=f"{endpoint} {model}"))
                entry["inference_file"] = f"{endpoint}_{model}.inference.json" if doc else ""
                if doc:
                    write_inference(doc, tmp / entry["inference_file"])
                    self._inference[(endpoint, model)] = doc
            meta["files"] = {f.name: sha256_file(f) for f in sorted(tmp.iterdir())}
            meta["content_sha256"] = _content_hash(meta)
            (tmp / BUNDLE_JSON).write_text(json.dumps(meta, indent=1, allow_nan=False) + "\n")
        self.meta, self.path = from_json(BundleMeta, meta), path
        return path

    @classmethod
    def load(cls, path: str | Path, device: str = "auto", endpoints: list[str] | None = None,
             background: bool = False, threads: int | None = None,
             deep_runtime: str = "auto") -> "Bundle":
        """Read and check a bundle.

        :param path: the bundle directory.
        :param device: ``auto``, ``cpu`` or ``cuda`` for the Deep-CT networks.
        :param endpoints: load only these endpoints' classifiers (their inference or skops files
            alone are read and hashed; the networks file is shared by all endpoints and always
            read); ``None``: every trained endpoint.
        :param background: return once bundle.json is read and checked; the networks and
            classifiers are read by a thread meanwhile (``predict`` overlaps that with the
            radiomics). :attr:`deep`, :attr:`classifiers` and :meth:`wait` block until it is done
            and raise its error, if any.
        :param threads: ONNX Runtime intra-op threads of the networks (``None``: the free
            cores); on the torch path, torch's threads while the networks are built (``None``:
            as they are; the count is put back afterwards).
        :param deep_runtime: ``auto`` (ONNX Runtime where the bundle has ONNX graphs, else torch)
            or ``torch`` (torch even so: to compare the two).
        :returns: the :class:`Bundle`.
        :raises InputError: any problem, as one message naming the file.
        """
        path = Path(path)
        if deep_runtime not in DEEP_RUNTIMES:
            raise ValueError(f"deep_runtime must be one of {DEEP_RUNTIMES}, got {deep_runtime!r}")
        meta_file = path / BUNDLE_JSON
        raw = _read_checked_json(path, meta_file)
        try:
            meta = from_json(BundleMeta, raw)
        except SchemaError as err:
            raise InputError(f"{meta_file}: malformed bundle description: {err}") from None
        for name in meta.files:
            if Path(name).name != name or not (path / name).is_file():
                raise InputError(f"{path / name}: file listed in the bundle is missing")
        k = meta.parameters.deep.get("k")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise InputError(f"{meta_file}: malformed bundle description: parameters.deep.k: expected "
                             f"a positive integer, got {k!r}")
        bundle = cls(meta, None, None, None, path, endpoints=list(meta.endpoints))
        if endpoints is not None:
            wanted = [bundle.check_endpoint(e) for e in dict.fromkeys(endpoints)]
            bundle._loaded = [e for e in meta.endpoints if e in wanted]
        if not background:
            bundle._deep = _load_networks(path, meta, bundle._loaded, k, device, threads, deep_runtime)
            bundle._radscores = _radscores(meta)
            bundle._classifiers = _load_classifiers(path, meta, bundle._loaded, k)
            return bundle

        def load_heavy():
            try:
                bundle._deep = _load_networks(path, meta, bundle._loaded, k, device, threads, deep_runtime)
                bundle._deep_ready.set()
                bundle._radscores = _radscores(meta)
                bundle._classifiers = _load_classifiers(path, meta, bundle._loaded, k)
            except BaseException as err:  # handed to the caller's thread by wait()
                bundle._load_error = err
            finally:
                bundle._deep_ready.set()

        bundle._loader = threading.Thread(target=load_heavy, name="bundle-load", daemon=True)
        bundle._loader.start()
        return bundle


def _radscores(meta: BundleMeta) -> dict:
    """Every endpoint's RadScores (numpy) from its coefficients in bundle.json."""
    return {endpoint: RadScoreTransform.from_coefficients(to_json(info.radscore))
            for endpoint, info in meta.models.items()}


def _classifier_files(path: Path, meta: BundleMeta, endpoints: list[str]) -> dict:
    """``{(endpoint, model): file name}`` the load reads for the classifiers of ``endpoints``:
    the inference file where there is one, else the skops file."""
    files = {}
    for endpoint in endpoints:
        for model in MODELS:
            info = meta.models[endpoint].models[model]
            name = info.inference_file or info.file
            if name not in meta.files:
                raise InputError(f"{path / (name or f'{endpoint}_{model}.skops')}: not covered by the "
                                 f"bundle's hashes")
            files[(endpoint, model)] = name
    return files


def _load_networks(path: Path, meta: BundleMeta, endpoints: list[str], k: int, device: str,
                   threads: int | None, deep_runtime: str = "auto"):
    """Check the hashes of every file the load will use, then read the Deep-CT networks.

    The classifiers are read afterwards (:func:`_load_classifiers`), so that a case's Deep-CT
    can run while they are still being read; nothing is read before all hashes match.
    """
    files = _classifier_files(path, meta, endpoints)
    onnx = {n.prefix: n.file for n in meta.deep_onnx} if deep_runtime == "auto" else {}
    for name in [DEEP_FILE, *onnx.values()]:
        if name not in meta.files:
            raise InputError(f"{path / name}: not covered by the bundle's hashes")
    # A full load checks every file the bundle lists (a whole bundle should be intact); a
    # partial one reads, and so hashes, only the files it uses. Each before it is used.
    used = (set(meta.files) if list(endpoints) == list(meta.endpoints)
            else {DEEP_FILE, *files.values(), *onnx.values()})
    for name in [n for n in meta.files if n in used]:
        _check_hash(path, meta, name)
    if onnx:
        deep = _load_onnx(path, meta, onnx, device, threads)
    else:
        import torch  # noqa: F401  (imported before torch_threads, so that it applies)

        with torch_threads(threads):
            deep = _load_deep(path, meta, device)
        if deep_runtime == "auto":
            deep.note = ("the bundle has no ONNX networks (made before format 4, or its backbone "
                         "could not be exported): the Deep-CT ran through torch")
            if str(path) not in _TORCH_NOTED:
                _TORCH_NOTED.add(str(path))
                logger.warning("%s: %s; train it again to predict without torch", path, deep.note)
    if int(deep.config.k) != k or not set(meta.endpoints) <= set(deep.endpoints):
        raise InputError(f"{path / DEEP_FILE}: the Deep-CT networks do not serve the bundle's "
                         f"endpoints with k = {k} features")
    return deep


def _check_hash(path: Path, meta: BundleMeta, name: str) -> None:
    """``path / name`` is listed in bundle.json and its content matches the recorded sha256."""
    if name not in meta.files or sha256_file(path / name) != meta.files[name]:
        raise InputError(f"{path / name}: sha256 does not match bundle.json (tampered or damaged)")


def _load_classifiers(path: Path, meta: BundleMeta, endpoints: list[str], k: int) -> dict:
    """The fitted classifiers of ``endpoints`` (their hashes were checked by _load_networks)."""
    n_inputs = {"radiomics": len(RADSCORE_COLUMNS), "deep": k, "fusion": k + len(RADSCORE_COLUMNS)}
    classifiers = {}
    for (endpoint, model), name in _classifier_files(path, meta, endpoints).items():
        info = meta.model(endpoint, model)
        classifiers[(endpoint, model)] = (
            read_inference(path / name, n_inputs[model], kind=info.chosen) if info.inference_file
            else _load_skops(path / name, n_inputs[model]))
    return classifiers


def _read_checked_json(path: Path, meta_file: Path) -> dict:
    """bundle.json parsed, of a format this version reads, its content matching its own hash."""
    if not meta_file.is_file():
        raise InputError(f"{path}: not a DeepRadScore bundle (no {BUNDLE_JSON})")
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise InputError(f"{meta_file}: not valid JSON ({err})") from None
    if not isinstance(meta, dict):
        raise InputError(f"{meta_file}: not a bundle description")
    version = meta.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise InputError(f"{meta_file}: missing or invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        raise InputError(f"{meta_file}: bundle format {version} is newer than this DeepRadScore "
                         f"reads ({FORMAT_VERSION}); update DeepRadScore")
    if version < OLDEST_FORMAT:
        raise InputError(f"{meta_file}: bundle format {version} does not record its extraction "
                         f"settings or nested-CV estimates; train it again with this version")
    try:
        matches = meta.get("content_sha256") == _content_hash(meta)
    except ValueError:  # NaN/inf were written by something else than this engine
        matches = False
    if not matches:
        raise InputError(f"{meta_file}: content does not match its recorded hash (edited or damaged)")
    return meta


def _save_networks(bundle: "Bundle", tmp: Path) -> list[dict]:
    """Write deep.safetensors and the ONNX graphs into ``tmp``; returns bundle.json's
    ``deep_onnx``. A bundle loaded through ONNX Runtime has no torch networks to write: its
    files are copied (they were hash-checked at load)."""
    import shutil

    deep = bundle.deep
    if not hasattr(deep, "state_tensors"):
        for name in [DEEP_FILE, *(n.file for n in bundle.meta.deep_onnx)]:
            shutil.copyfile(Path(bundle.path) / name, tmp / name)
        return to_json(bundle.meta)["deep_onnx"]
    import safetensors.torch

    from DeepRadScoreLib.deep.onnx_export import export_networks

    tensors = {name: t.detach().cpu().contiguous() for name, t in deep.state_tensors().items()}
    safetensors.torch.save_file(tensors, str(tmp / DEEP_FILE))
    return export_networks(deep, tmp)


def _load_onnx(path: Path, meta: BundleMeta, onnx: dict, device: str, threads: int | None):
    """The Deep-CT ensemble through ONNX Runtime (no torch): the graphs, the heads' weights
    for Grad-CAM from deep.safetensors, the description in bundle.json."""
    from DeepRadScoreLib.deep.onnx_ensemble import OnnxEnsemble

    described = meta.deep.get("members")
    if not isinstance(described, list) or not all(isinstance(m, dict) for m in described):
        raise InputError(f"{path / DEEP_FILE}: Deep-CT description is malformed (no list of members)")
    if set(onnx) != {str(m.get("prefix")) for m in described}:
        raise InputError(f"{path / BUNDLE_JSON}: deep_onnx does not list one file per Deep-CT network")
    return OnnxEnsemble.from_saved(meta.deep, {p: path / f for p, f in onnx.items()}, path / DEEP_FILE,
                                   device=device, threads=threads)


def _load_deep(path: Path, meta: BundleMeta, device: str):
    """The Deep-CT ensemble from deep.safetensors and its description in bundle.json."""
    import safetensors.torch

    file = path / DEEP_FILE
    if DEEP_FILE not in meta.files:
        raise InputError(f"{file}: not covered by the bundle's hashes")
    try:
        tensors = safetensors.torch.load_file(str(file))
    except Exception as err:  # SafetensorError, OSError, ...: e.g. a pickle in its place
        raise InputError(f"{file}: not a readable safetensors file ({type(err).__name__}: "
                         f"{str(err).splitlines()[0] if str(err) else ''})") from None
    from DeepRadScoreLib.deep.ensemble import DeepEnsemble

    try:
        return DeepEnsemble.from_saved(meta.deep, tensors, device=device)
    except InputError as err:
        raise InputError(f"{file}: {err}") from None
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError, IndexError) as err:
        raise InputError(f"{file}: does not match the bundle's Deep-CT description "
                         f"({type(err).__name__}: {err})") from None


def _load_skops(file: Path, n_inputs: int):
    """Load a skops file only if every type it needs beyond skops' defaults is ours."""
    import skops.io

    try:
        untrusted = skops.io.get_untrusted_types(file=file)
    except Exception as err:  # a damaged archive can fail in zipfile, json or skops itself
        raise InputError(f"{file}: not a readable skops file ({type(err).__name__}: {err})") from None
    foreign = sorted(set(untrusted) - ALLOWED_TYPES)
    if foreign:
        raise InputError(f"{file}: refusing to load unexpected types {', '.join(foreign)}")
    try:
        model = skops.io.load(file, trusted=list(untrusted))
    except Exception as err:  # a well-formed archive whose content does not build
        raise InputError(f"{file}: not a loadable classifier ({type(err).__name__}: {err})") from None
    # skops trusts every scikit-learn type by default: make sure this is a fitted probabilistic
    # classifier on the inputs its model gets, not some other estimator in its place.
    if not hasattr(model, "predict_proba") or getattr(model, "n_features_in_", None) != n_inputs:
        raise InputError(f"{file}: not a fitted classifier on {n_inputs} inputs")
    return model


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
