"""The Deep-CT training steps' precision: decided by the device and the CPU, recorded in the bundle.

bf16 autocast runs on any x86 CPU (slowly without AMX), so both precisions are trained here on
whatever CPU runs the suite; which one ``auto`` picks is checked against this machine's own
/proc/cpuinfo flags and against given flag sets.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from DeepRadScoreLib.deep.ensemble import DeepConfig, resolve_precision
from DeepRadScoreLib.deep.training import train_deep
from DeepRadScoreLib.errors import InputError
from DeepRadScoreLib.resources import cpu_flags
from test_deep_model import planted_patches

CPU = torch.device("cpu")


def test_auto_follows_the_cpu_and_the_device():
    assert resolve_precision("auto", CPU, frozenset({"avx2", "amx_bf16", "amx_tile"})) == "bf16"
    # AVX-512 BF16 without AMX (an AMD EPYC Zen 4): bf16 too; AVX2 or plain AVX-512: float32.
    assert resolve_precision("auto", CPU, frozenset({"avx512f", "avx512_bf16"})) == "bf16"
    assert resolve_precision("auto", CPU, frozenset({"avx2"})) == "fp32"
    assert resolve_precision("auto", CPU, frozenset({"avx2", "avx512f", "avx512_vnni"})) == "fp32"
    assert resolve_precision("auto", torch.device("cuda")) == "fp16"
    assert resolve_precision("fp32", CPU, frozenset({"amx_bf16"})) == "fp32"
    here = "bf16" if {"amx_bf16", "avx512_bf16"} & cpu_flags() else "fp32"
    assert resolve_precision("auto", CPU) == here


def test_cpu_flags_reads_the_flags_line(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: X\nflags\t\t: fpu sse2 amx_bf16 avx2\n\nprocessor\t: 1\n")
    assert cpu_flags(str(info)) == frozenset({"fpu", "sse2", "amx_bf16", "avx2"})
    assert cpu_flags(str(tmp_path / "absent")) == frozenset()


def test_an_unknown_precision_is_one_input_error():
    with pytest.raises(InputError, match="unknown precision 'half'"):
        DeepConfig(precision="half").check()


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_each_precision_trains_and_is_recorded(precision):
    """Both precisions learn a planted disc; the summary (bundle.json's deep summary) names the one
    that ran, and the weights come back in the plain layout the bundle and the ONNX export need."""
    hu, y = planted_patches(40, seed=0)
    config = DeepConfig(folds=2, epochs=3, batch_size=8, device="cpu", seed=0, lr=1e-4, precision=precision)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # random weights: no ImageNet file here
        ensemble = train_deep(hu, {"A": y}, config)
    assert ensemble.summary["precision"] == precision
    assert ensemble.summary["mixed_precision"] is (precision != "fp32")
    assert all(t.is_contiguous() for t in ensemble.state_tensors().values())
    oof = ensemble.oof_features["A"]
    assert oof.dtype == np.float32 and np.isfinite(oof).all()
    held = ensemble.summary["oof_auc"]["A"]
    assert held is not None and held > 0.75, held
