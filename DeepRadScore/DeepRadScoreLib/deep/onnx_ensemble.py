"""The Deep-CT ensemble at prediction through ONNX Runtime: no torch, no torchvision.

:class:`OnnxEnsemble` has :class:`~DeepRadScoreLib.deep.ensemble.DeepEnsemble`'s prediction
interface (``features``, ``probabilities``, ``features_and_probabilities``, ``gradcam``,
``gradcams``, ``features_and_gradcams``, ``config.k``, ``endpoints``, ``provenance``, ...), so
scoring, the one-case analysis and the evaluation use either without knowing which. Importing
torch costs ~1.8 s of a 5 s ``predict`` and the Slicer module a PyTorch install of up to 2.5 GB;
torch is needed to train the networks, not to run them.

Each network is one graph (written by :mod:`~DeepRadScoreLib.deep.onnx_export`): ``patch_hu``
``(N, 160, 160)`` -> ``features (N, E, k)``, ``probabilities (N, E)``, ``activations (N, C, h,
w)``. Grad-CAM is computed without autograd: the class-1 logit of head e is
``fc2[1] . (fc1 . mean(A) + b1) + b2``, linear in the activations A, so d logit / d A is
``(fc2.weight[1] @ fc1.weight)[c] / (h w)`` in every cell and Grad-CAM's channel weights (the
spatial mean of that gradient) are this constant. The head's weights come from the bundle's
``deep.safetensors`` (read as numpy). The map is then torch's: ReLU of the weighted channel
sum, bilinear upsampling with half-pixel centres, min-max scaled to 0..1.

Execution provider: CUDA when ``device`` allows it and ``onnxruntime-gpu`` has it, else CPU;
``runtime`` says which ran. Intra-op threads: the number the caller gives (``predict``: 1, its
Deep-CT runs beside the radiomics), else the free cores (``resources.free_cores``); threads do
not spin while waiting, since a spinning pool under load made the torch path 15-50x slower.
"""
from __future__ import annotations

import types
from pathlib import Path
from typing import Mapping, Optional

import numpy as np

from DeepRadScoreLib.errors import InputError
from DeepRadScoreLib.regions import PATCH_SIZE


OPSET = 17
# Opset 17 runs from ONNX Runtime 1.14; we ask for 1.16 (pyproject.toml says the same) and have
# run 1.32 only.
MIN_ONNXRUNTIME = (1, 16)
INPUT_NAME = "patch_hu"
OUTPUT_NAMES = ("features", "probabilities", "activations")
# Backbones whose pooling is a spatial mean (Grad-CAM in closed form): see onnx_export.
LINEAR_POOL_BACKBONES = ("densenet121", "resnet50", "resnet101", "inception_v3")
INFERENCE_BATCH = 32
CPU, CUDA = "CPUExecutionProvider", "CUDAExecutionProvider"


def network_file(prefix: str) -> str:
    """The .onnx file name of the network whose tensors are prefixed ``prefix``."""
    return f"deep.{prefix}onnx"


def import_onnxruntime(file: Path):
    """onnxruntime, of a version that runs our graphs; else InputError naming ``file``."""
    try:
        import onnxruntime
    except ImportError:
        raise InputError(f"{file}: running the Deep-CT networks needs onnxruntime >= "
                         f"{'.'.join(map(str, MIN_ONNXRUNTIME))}, which is not installed "
                         f"(pip install onnxruntime)") from None
    version = str(getattr(onnxruntime, "__version__", "0"))
    parts = []
    for part in version.split(".")[:2]:
        digits = "".join(c for c in part if c.isdigit())
        parts.append(int(digits) if digits else 0)
    if tuple(parts) < MIN_ONNXRUNTIME:
        raise InputError(f"{file}: onnxruntime {version} is too old to run the Deep-CT networks; "
                         f"install onnxruntime >= {'.'.join(map(str, MIN_ONNXRUNTIME))}")
    return onnxruntime


def providers_for(device: str, ort) -> list:
    """ONNX Runtime providers for ``--device``: ``auto`` CUDA if available then CPU, ``cpu``
    CPU, ``cuda[:i]`` CUDA (device i) or an InputError when onnxruntime has no CUDA."""
    has_cuda = CUDA in ort.get_available_providers()
    if device == "cpu":
        return [CPU]
    if device == "auto":
        return ([CUDA] if has_cuda else []) + [CPU]
    if device.startswith("cuda"):
        index = device.partition(":")[2] or "0"
        if not index.isdigit():
            raise InputError(f"unknown device '{device}': choose auto, cpu or cuda[:i]")
        if not has_cuda:
            raise InputError(f"device '{device}' asked for, but onnxruntime has no CUDA execution "
                             f"provider here (install onnxruntime-gpu)")
        return [(CUDA, {"device_id": int(index)}), CPU]
    raise InputError(f"unknown device '{device}': choose auto, cpu or cuda")


def check_patches(patches_hu) -> np.ndarray:
    """(N, 160, 160) or one (160, 160) HU array -> float32 (N, 160, 160); InputError on shape/NaN."""
    patches = np.asarray(patches_hu, dtype=np.float32)
    if patches.ndim == 2:
        patches = patches[None]
    if patches.ndim != 3 or patches.shape[1:] != (PATCH_SIZE, PATCH_SIZE):
        raise InputError(f"deep-ROI patches must be (N, {PATCH_SIZE}, {PATCH_SIZE}) HU arrays, "
                         f"got shape {patches.shape}")
    if not np.isfinite(patches).all():
        raise InputError("deep-ROI patches contain NaN or infinite values")
    return np.ascontiguousarray(patches)


def _bilinear_matrix(size_in: int, size_out: int) -> np.ndarray:
    """(size_out, size_in) weights of torch's bilinear interpolation, align_corners=False."""
    matrix = np.zeros((size_out, size_in))
    scale = size_in / size_out
    for o in range(size_out):
        source = max((o + 0.5) * scale - 0.5, 0.0)
        i0 = min(int(source), size_in - 1)
        i1 = min(i0 + 1, size_in - 1)
        weight = source - i0
        matrix[o, i0] += 1.0 - weight
        matrix[o, i1] += weight
    return matrix


def gradcam_map(activations: np.ndarray, weights: np.ndarray, size=(PATCH_SIZE, PATCH_SIZE)) -> np.ndarray:
    """Grad-CAM from one activation map ``(C, h, w)`` and channel weights ``(C,)``: ReLU of the
    weighted sum, bilinear upsampling (half-pixel centres) to ``size``, min-max to 0..1 (a map
    without variation stays all zero). float32 ``size``."""
    cam = np.maximum(np.tensordot(weights.astype(np.float64), activations.astype(np.float64), 1), 0.0)
    cam = _bilinear_matrix(cam.shape[0], size[0]) @ cam @ _bilinear_matrix(cam.shape[1], size[1]).T
    cam -= cam.min()
    top = cam.max()
    return (cam / top if top > 0 else np.zeros_like(cam)).astype(np.float32)


class _Network:
    """One ONNX Runtime session: a fold's network and the Grad-CAM weights of its heads."""

    def __init__(self, fold: int, endpoints: list[str], session, cam_weights: np.ndarray, file: Path):
        self.fold, self.endpoints, self.session = fold, endpoints, session
        self.cam_weights = cam_weights  # (E, C): fc2.weight[1] @ fc1.weight per head
        self.file = file

    def run(self, patches: np.ndarray) -> list[np.ndarray]:
        try:
            return self.session.run(list(OUTPUT_NAMES), {INPUT_NAME: patches})
        except Exception as err:  # onnxruntime's own error types
            raise InputError(f"{self.file}: ONNX Runtime could not run the network "
                             f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})") from None


class OnnxEnsemble:
    """The K (per-endpoint: K x E) Deep-CT networks of a bundle, run through ONNX Runtime.

    Built by :meth:`from_saved`. ``runtime`` = ``{"engine": "onnxruntime", "version",
    "provider", "threads"}``: what ran, for result.json.
    """

    def __init__(self, json_dict: Mapping, networks: list[_Network], runtime: dict):
        self.config = types.SimpleNamespace(**json_dict["config"])
        self.endpoints = list(json_dict["endpoints"])
        self.provenance = dict(json_dict["provenance"])
        self.summary = dict(json_dict["summary"])
        k = int(self.config.k)
        self.oof_features = {e: np.asarray(v, dtype=np.float32).reshape(-1, k)
                             for e, v in json_dict["oof_features"].items()}
        self.oof_probabilities = {e: np.asarray(v, dtype=np.float32)
                                  for e, v in json_dict.get("oof_probabilities", {}).items()}
        self.folds_of_case = np.asarray(json_dict["folds_of_case"], dtype=int)
        self.networks = networks
        self.runtime = runtime

    @property
    def n_networks(self) -> int:
        return max(n.fold for n in self.networks) + 1

    def _check(self, endpoints) -> list[str]:
        endpoints = list(self.endpoints if endpoints is None else endpoints)
        for endpoint in endpoints:
            if endpoint not in self.endpoints:
                raise InputError(f"endpoint {endpoint} has no Deep-CT network "
                                 f"(trained: {', '.join(self.endpoints)})")
        return endpoints

    def features(self, patches_hu) -> dict[str, np.ndarray]:
        """``{endpoint: (folds, N, k)}`` deep features of every fold's network."""
        return self.features_and_probabilities(patches_hu)[0]

    def probabilities(self, patches_hu) -> dict[str, np.ndarray]:
        """``{endpoint: (folds, N)}`` the networks' own softmax probability of class 1."""
        return self.features_and_probabilities(patches_hu)[1]

    def features_and_probabilities(self, patches_hu) -> tuple[dict, dict]:
        """``({endpoint: (folds, N, k)}, {endpoint: (folds, N)})``, float32, row f = network f."""
        hu = check_patches(patches_hu)
        k = int(self.config.k)
        features = {e: np.zeros((self.n_networks, len(hu), k), dtype=np.float32) for e in self.endpoints}
        probabilities = {e: np.zeros((self.n_networks, len(hu)), dtype=np.float32) for e in self.endpoints}
        for network in self.networks:
            for start in range(0, len(hu), INFERENCE_BATCH):
                f, p, _ = network.run(hu[start:start + INFERENCE_BATCH])
                for j, endpoint in enumerate(network.endpoints):
                    features[endpoint][network.fold, start:start + len(f)] = f[:, j]
                    probabilities[endpoint][network.fold, start:start + len(f)] = p[:, j]
        return features, probabilities

    def gradcam(self, patch_hu, endpoint: str) -> np.ndarray:
        """Grad-CAM of ``endpoint``'s class 1 for one patch, (160, 160) in 0..1, mean over folds."""
        return self.gradcams(patch_hu, [endpoint])[endpoint]

    def gradcams(self, patch_hu, endpoints: Optional[list[str]] = None) -> dict[str, np.ndarray]:
        """``{endpoint: (160, 160) float32 in 0..1}``, the mean of the networks' maps."""
        return self.features_and_gradcams(patch_hu, self._check(endpoints))[1]

    def features_and_gradcams(self, patch_hu, endpoints: list[str]) -> tuple[dict, dict]:
        """Deep features ``{endpoint: (folds, 1, k)}`` and Grad-CAM maps ``{endpoint: (160,
        160)}`` of one patch (of a batch, the first) from one run per network."""
        endpoints = self._check(endpoints)
        hu = check_patches(patch_hu)[:1]
        features = {e: np.zeros((self.n_networks, 1, int(self.config.k)), dtype=np.float32)
                    for e in self.endpoints}
        maps = {e: [] for e in endpoints}
        for network in self.networks:
            f, _, activations = network.run(hu)
            for j, endpoint in enumerate(network.endpoints):
                features[endpoint][network.fold] = f[:, j]
                if endpoint in maps:
                    maps[endpoint].append(gradcam_map(activations[0], network.cam_weights[j]))
        return features, {e: np.mean(m, axis=0).astype(np.float32) for e, m in maps.items()}

    @classmethod
    def from_saved(cls, json_dict: Mapping, files: Mapping[str, Path], weights_file: Path,
                   device: str = "auto", threads: int | None = None) -> "OnnxEnsemble":
        """Open every network's ONNX file and check it is the network the bundle describes.

        :param json_dict: the Deep-CT description (bundle.json's ``deep``).
        :param files: ``{member prefix: .onnx path}`` (hash-checked by the caller).
        :param weights_file: deep.safetensors (hash-checked): the heads' weights for Grad-CAM.
        :param device: ``auto``, ``cpu`` or ``cuda[:i]``.
        :param threads: intra-op threads per session (``None``: the free cores).
        :raises InputError: naming the file: onnxruntime absent or too old, an unreadable
            graph, one with other inputs or outputs than the description's network.
        """
        first = next(iter(files.values()))
        ort = import_onnxruntime(first)
        providers = providers_for(device, ort)
        if threads is None:
            from DeepRadScoreLib.resources import free_cores

            threads = free_cores()
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, int(threads))
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3  # errors only: its notes would reach every predict's stderr
        try:
            k = int(json_dict["config"]["k"])
            members = [(int(m["fold"]), list(m["endpoints"]), str(m["prefix"])) for m in json_dict["members"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"Deep-CT description is malformed ({type(exc).__name__}: {exc})") from None
        networks, provider = [], None
        for fold, endpoints, prefix in members:
            if prefix not in files:
                raise InputError(f"{weights_file.parent}: network {prefix[:-1]} has no ONNX file")
            file = Path(files[prefix])
            heads = _head_weights(weights_file, prefix, len(endpoints), k)
            try:
                session = ort.InferenceSession(str(file), options, providers=providers)
            except Exception as err:  # a truncated or foreign file: onnxruntime's own error types
                raise InputError(f"{file}: not a readable ONNX network ({type(err).__name__}: "
                                 f"{str(err).splitlines()[0][:200] if str(err) else ''})") from None
            _check_signature(session, file, len(endpoints), k, heads.shape[1])
            if isinstance(providers[0], tuple) and session.get_providers()[0] != CUDA:
                raise InputError(f"device '{device}' asked for, but ONNX Runtime sees no CUDA GPU here")
            provider = session.get_providers()[0]
            networks.append(_Network(fold, endpoints, session, heads, file))
        runtime = {"engine": "onnxruntime", "version": str(ort.__version__), "provider": provider,
                   "threads": int(options.intra_op_num_threads)}
        try:
            return cls(json_dict, networks, runtime)
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"Deep-CT description is malformed ({type(exc).__name__}: {exc})") from None


def _head_weights(weights_file: Path, prefix: str, n_heads: int, k: int) -> np.ndarray:
    """``(E, C)``: per head ``fc2.weight[1] @ fc1.weight``, from deep.safetensors as numpy."""
    from safetensors import safe_open

    rows = []
    try:
        tensors = safe_open(str(weights_file), framework="numpy")
    except Exception as err:  # SafetensorError, OSError, ...: e.g. a pickle in its place
        raise InputError(f"{weights_file}: not a readable safetensors file ({type(err).__name__}: "
                         f"{str(err).splitlines()[0] if str(err) else ''})") from None
    try:
        with tensors:
            for j in range(n_heads):
                fc1 = tensors.get_tensor(f"{prefix}heads.{j}.fc1.weight").astype(np.float64)
                fc2 = tensors.get_tensor(f"{prefix}heads.{j}.fc2.weight").astype(np.float64)
                if fc1.ndim != 2 or fc1.shape[0] != k or fc2.shape != (2, k):
                    raise ValueError(f"head {j} has shapes {fc1.shape}, {fc2.shape}")
                rows.append(fc2[1] @ fc1)
    except Exception as err:  # SafetensorError, a missing tensor, a wrong shape
        raise InputError(f"{weights_file}: no Deep-CT head weights for {prefix[:-1]} "
                         f"({type(err).__name__}: {err})") from None
    return np.stack(rows)


def _check_signature(session, file: Path, n_heads: int, k: int, channels: int) -> None:
    """The graph is a Deep-CT network of this bundle: one (N, 160, 160) input, our three outputs
    with the description's heads, k and the heads' channels."""
    def dims(shape):
        return [d if isinstance(d, int) else None for d in shape]

    inputs, outputs = session.get_inputs(), session.get_outputs()
    expected = {"features": [None, n_heads, k], "probabilities": [None, n_heads],
                "activations": [None, channels, None, None]}
    problem = None
    if len(inputs) != 1 or dims(inputs[0].shape) != [None, PATCH_SIZE, PATCH_SIZE] \
            or inputs[0].type != "tensor(float)" or inputs[0].name != INPUT_NAME:
        problem = (f"takes {', '.join(f'{i.name} {i.shape}' for i in inputs)}, not "
                   f"{INPUT_NAME} [N, {PATCH_SIZE}, {PATCH_SIZE}]")
    elif [o.name for o in outputs] != list(OUTPUT_NAMES):
        problem = f"gives {len(outputs)} outputs {[o.name for o in outputs]}, not {list(OUTPUT_NAMES)}"
    else:
        for output in outputs:
            got = dims(output.shape)
            want = expected[output.name]
            if len(got) != len(want) or any(w is not None and g != w for g, w in zip(got, want)):
                problem = f"gives {output.name} of shape {output.shape}, the bundle's network {want}"
                break
    if problem:
        raise InputError(f"{file}: not this bundle's Deep-CT network: it {problem}")


__all__ = ["OnnxEnsemble", "OPSET", "MIN_ONNXRUNTIME", "INPUT_NAME", "OUTPUT_NAMES",
           "LINEAR_POOL_BACKBONES", "gradcam_map", "import_onnxruntime", "network_file",
           "providers_for"]
