"""The arguments of every ``deepradscore`` sub-command (argparse lives in ``cli`` only)."""
from __future__ import annotations

import argparse

from DeepRadScoreLib import ENDPOINTS, __version__
from DeepRadScoreLib.features.settings import (DEFAULT_THICKNESS_MM, MAX_THICKNESS_MM, MIN_THICKNESS_MM,
                                               SettingsRequest)


def _endpoints(value: str) -> list[str]:
    names = [v.strip() for v in value.replace(",", " ").split() if v.strip()]
    if not names:
        raise argparse.ArgumentTypeError("give at least one endpoint name")
    return names


def _add_mask_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--label", type=int, default=None,
                   help="label value of the tumour in a multi-label mask")
    p.add_argument("--roi-name", default=None,
                   help="ROI / segment name in a DICOM RTSTRUCT, DICOM SEG or .seg.nrrd")


def _add_settings_options(p: argparse.ArgumentParser, recorded: str | None = None,
                          radiomics: bool = True) -> None:
    """The extraction settings' options, the same for every command (read back by
    :func:`settings_request`).

    :param recorded: the recorded settings the options must agree with ("the bundle's"), or
        ``None``: the options are the settings (their defaults included).
    :param radiomics: also the parameter file and the backend (not for ``ring``).
    """
    where = f"; {MIN_THICKNESS_MM:g}-{MAX_THICKNESS_MM:g} mm"
    if recorded is None:
        p.add_argument("--thickness-mm", type=float, default=DEFAULT_THICKNESS_MM,
                       help=f"peritumoral ring thickness (default {DEFAULT_THICKNESS_MM:g}{where})")
    else:
        p.add_argument("--thickness-mm", type=float, default=None,
                       help=f"ring thickness (default: {recorded}; a different one is refused{where})")
    if not radiomics:
        return
    p.add_argument("--params", default=None,
                   help="pyradiomics parameter file (default: the 851-feature one)" if recorded is None else
                        f"pyradiomics parameter file (default: {recorded}; different content is refused)")
    p.add_argument("--radiomics-backend", default="auto", choices=["auto", "pyradiomics", "native"],
                   help="what computes the radiomics features: pyradiomics, or DeepRadScore's native "
                        "numpy backend (the same numbers, no compiler needed); auto (default): "
                        "pyradiomics where it is installed, else native")


def _kinds(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.replace(",", " ").split() if v.strip())


def settings_request(args: argparse.Namespace) -> SettingsRequest:
    """What the options of :func:`_add_settings_options` asked for."""
    return SettingsRequest(thickness_mm=args.thickness_mm, params_path=getattr(args, "params", None),
                           backend=getattr(args, "radiomics_backend", "auto"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deepradscore",
        description="Deep-RadScore for NSCLC CT: radiomics of the tumour and its 3 mm ring, deep "
                    "features of the largest axial slice, fused to predict LVI, PI, T4, EGFR, KRAS, "
                    "ALK, TP53, PIK3CA, ROS1 and PD-L1. Train on your own cohort; no clinical "
                    "weights ship with it.")
    parser.add_argument("--version", action="version", version=f"deepradscore {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("extract", help="radiomics features (tumour + ring) of one case or a cohort")
    p.add_argument("image", nargs="?", help="CT image (one case)")
    p.add_argument("mask", nargs="?", help="tumour mask (one case)")
    p.add_argument("--manifest", help="cohort CSV (case_id,image,mask,...)")
    p.add_argument("-o", "--output", required=True, help="features CSV to write")
    p.add_argument("--workers", type=int, default=1, help="parallel processes on this machine")
    p.add_argument("--scheduler", default=None, help="address of an existing Dask scheduler")
    _add_settings_options(p)
    _add_mask_options(p)

    p = sub.add_parser("ring", help="write the peritumoral ring mask")
    p.add_argument("image")
    p.add_argument("mask")
    p.add_argument("-o", "--output", required=True)
    _add_settings_options(p, radiomics=False)
    p.add_argument("--hu-range", type=float, nargs=2, metavar=("LOW", "HIGH"), default=None,
                   help="keep only ring voxels within this HU range (e.g. -900 300 drops air)")
    p.add_argument("--constraint", default=None, help="mask the ring must stay inside (e.g. body)")
    _add_mask_options(p)

    p = sub.add_parser("patch", help="write the 160x160 deep-ROI patch as a PNG")
    p.add_argument("image")
    p.add_argument("mask")
    p.add_argument("-o", "--output", required=True)
    _add_mask_options(p)

    p = sub.add_parser("synth", help="generate a synthetic chest-CT cohort with planted labels")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--cases", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)

    p = sub.add_parser("train", help="train a model bundle on the split=train rows")
    p.add_argument("--manifest", required=True)
    p.add_argument("-o", "--output", required=True, help="bundle directory to create")
    p.add_argument("--endpoints", type=_endpoints, default=None,
                   help=f"endpoint columns (default: those of {','.join(ENDPOINTS)} present)")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--backbone", default="densenet121",
                   choices=["densenet121", "resnet50", "resnet101", "vgg19", "inception_v3"])
    p.add_argument("--deep-mode", default="multitask", choices=["per-endpoint", "multitask"],
                   help="one shared backbone with a head per endpoint (default; one forward pass serves all "
                        "endpoints) or one network per endpoint as in the paper (ten trainings)")
    p.add_argument("--deep-folds", type=int, default=4,
                   help="cross-fitted Deep-CT networks (each validates on its held-out 1/K)")
    p.add_argument("--deep-features", type=int, default=10, help="k, the deep features per endpoint")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                   help="Deep-CT training steps (default auto: fp16 on CUDA, bf16 on a CPU with bf16 "
                        "instructions (AMX or AVX-512 BF16), else fp32; inference is always fp32); the "
                        "bundle records what ran")
    p.add_argument("--pretrained", default=None,
                   help="ImageNet weights file for the backbone (default: torchvision's cache)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cv-repeats", type=int, default=10, help="repeats of 5-fold CV for the classifier choice")
    p.add_argument("--nested-repeats", type=int, default=1,
                   help="outer repeats of the nested-CV estimate of the classifier choice (10 fold fits each)")
    p.add_argument("--features", default=None,
                   help="feature table from `deepradscore extract` (with its .settings.json beside it)")
    p.add_argument("--workers", type=int, default=1, help="extraction processes when --features is not given")
    _add_settings_options(p, recorded="the --features table's, else the defaults of extract")
    p.add_argument("--robustness", default=None,
                   help="ICC table from `deepradscore robustness`: drop features below --min-icc before selection")
    p.add_argument("--min-icc", type=float, default=None, help="ICC bound with --robustness (default 0.75)")

    p = sub.add_parser("predict", help="predict all endpoints for one case")
    p.add_argument("bundle")
    p.add_argument("image")
    p.add_argument("mask")
    p.add_argument("-o", "--output", required=True, help="result JSON")
    p.add_argument("--gradcam", default=None, help="write the Grad-CAM heatmap volume here")
    p.add_argument("--gradcam-endpoint", default=None, help="endpoint of the heatmap (default: first)")
    p.add_argument("--endpoints", type=_endpoints, default=None)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    _add_settings_options(p, recorded="the bundle's")
    _add_mask_options(p)

    p = sub.add_parser("evaluate", help="metrics, DeLong tests, figures and HTML report on split=test")
    p.add_argument("bundle")
    p.add_argument("--manifest", required=True)
    p.add_argument("-o", "--output", required=True, help="report directory")
    p.add_argument("--features", default=None,
                   help="feature table from `deepradscore extract` (its settings must be the bundle's)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--workers", type=int, default=1)
    _add_settings_options(p, recorded="the bundle's")

    p = sub.add_parser("compare-backbones", help="Table 2: the five backbones on one endpoint")
    p.add_argument("--manifest", required=True)
    p.add_argument("--endpoint", required=True)
    p.add_argument("-o", "--output", required=True, help="output folder (table CSV + HTML)")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--backbones", type=_endpoints,
                   default=["resnet50", "resnet101", "densenet121", "vgg19", "inception_v3"])
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--features", default=None)
    p.add_argument("--seed", type=int, default=0)

    p = sub.add_parser("robustness", help="ICC of every feature over perturbed copies of each case")
    p.add_argument("--manifest", required=True, help="cohort CSV (case_id,image,mask,...)")
    p.add_argument("-o", "--output", required=True,
                   help="ICC table CSV to write (its copies, features and cache go to OUTPUT.work/, "
                        "its report to OUTPUT with .html)")
    p.add_argument("--copies", type=int, default=4, help="perturbed copies per case")
    p.add_argument("--perturbations", type=_kinds, default=("rotation", "noise", "volume", "contour"),
                   help="what each copy applies, from rotation,noise,volume,contour (default: all)")
    p.add_argument("--max-rotation-deg", type=float, default=5.0, help="rotation drawn from +-this")
    p.add_argument("--noise-sd", type=float, default=10.0, help="additive Gaussian noise, HU")
    p.add_argument("--volume-voxels", type=int, default=1, help="dilation / erosion of the mask, voxels")
    p.add_argument("--contour-flip", type=float, default=0.3,
                   help="probability of flipping each border voxel (contour randomisation)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=1, help="parallel processes on this machine")
    p.add_argument("--scheduler", default=None, help="address of an existing Dask scheduler")
    _add_settings_options(p)

    p = sub.add_parser("demo", help="synthetic cohort -> features -> bundle -> report -> predict")
    p.add_argument("-o", "--output", default="demo-output", help="demo folder (reused on a second run)")
    p.add_argument("--cases", type=int, default=None, help="cohort size (default: the demo's)")
    return parser
