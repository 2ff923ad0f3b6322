#!/usr/bin/env python3
"""Create or update ``.venv-native/``: a Python with the engine's radiomics needs but NO pyradiomics.

pyradiomics has no wheels for Python >= 3.10 and no macOS build in Slicer, so the engine must
work without it: ``--radiomics-backend auto`` then takes the native backend. This
environment is where that is tested (Testing/test_native_env.py). It is what 3D Slicer 5.10
without SlicerRadiomics (e.g. on macOS) gives the engine: Python 3.12 from pyenv and Slicer's
numpy, scipy and SimpleITK (as ``tools/setup_slicer_env.py`` finds and pins them), so the native
backend is tested at the oldest versions it must run with while ``.venv`` tests the newest;
the other packages of :data:`PACKAGES` at the versions the engine is tested with
(``requirements/engine.txt``). Wheels only (no compiler), and a check that ``import radiomics``
fails there. The engine itself is not installed: the test puts the checkout's ``DeepRadScore/``
on ``PYTHONPATH``.

Testing/test_native_env.py calls :func:`ensure` (a session fixture): built once per fresh
machine (well under a minute: wheels only), reused while this file and the engine pins stay
the same. Standard library only.
"""
from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv-native"
STAMP = VENV / ".deepradscore-native-setup"
LOCK = ROOT / ".venv-native.lock"
ENGINE_PINS = ROOT / "requirements" / "engine.txt"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from setup_slicer_env import SLICER_PACKAGES, python312  # noqa: E402

# What the native backend and ``deepradscore extract`` import (see
# DeepRadScoreLib/features/native/): numpy/scipy/SimpleITK for the images and matrices,
# PyWavelets for the coif1 wavelet, PyYAML for the parameter file, pandas/tqdm for the table
# and progress bar. Deliberately not: pyradiomics (and its pykwalify/six), torch.
PACKAGES = ("numpy", "scipy", "SimpleITK", "PyWavelets", "PyYAML", "pandas", "tqdm")
# Slicer 5.10's own copies win over the engine's pins; the rest of what Slicer ships that the
# module's own code needs (packaging, for its dependency check) comes as setup_slicer_env has it.
SLICER_OWN = {p.split("==")[0].lower(): p for p in SLICER_PACKAGES if "==" in p}
SLICER_EXTRA = [p for p in SLICER_PACKAGES if "==" not in p]
SETUP_REVISION = "1"


def venv_python() -> Path:
    return VENV / "bin" / "python"


def pinned(names=PACKAGES, path: Path = ENGINE_PINS) -> list[str]:
    """``name==version`` for each of ``names``: Slicer 5.10's version where Slicer ships it,
    else the engine's exact pin."""
    pins = {}
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[name.split("[")[0].strip().lower()] = version.strip()
    missing = [n for n in names if n.lower() not in pins and n.lower() not in SLICER_OWN]
    if missing:
        sys.exit(f"error: {path}: no exact pin for {', '.join(missing)}")
    return [SLICER_OWN.get(n.lower()) or f"{n}=={pins[n.lower()]}" for n in names]


def wanted_stamp() -> str:
    digest = hashlib.sha256(SETUP_REVISION.encode())
    digest.update(Path(__file__).read_bytes())
    digest.update("\n".join(pinned() + SLICER_EXTRA).encode())
    return digest.hexdigest()


def pip(*args: str) -> None:
    subprocess.run([str(venv_python()), "-m", "pip", "--disable-pip-version-check", "-q", *args],
                   check=True)


def _fresh(stamp: str) -> bool:
    return STAMP.exists() and STAMP.read_text() == stamp and venv_python().exists()


def ensure() -> Path:
    """Build the environment if it is missing or stale; return its Python.

    pytest-xdist workers may call this at once: a lock file lets one build while the others wait.
    """
    import fcntl

    stamp = wanted_stamp()
    if _fresh(stamp):
        return venv_python()
    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _fresh(stamp):
            return venv_python()
        return _build(stamp)


def _build(stamp: str) -> Path:
    print("Setting up .venv-native (Python 3.12 without pyradiomics) ...", flush=True)
    if VENV.exists():
        shutil.rmtree(VENV)
    subprocess.run([python312(), "-m", "venv", str(VENV)], check=True)
    # --only-binary: the point of the native backend is an install that needs no compiler.
    pip("install", "--only-binary", ":all:", *pinned(), *SLICER_EXTRA)
    probe = subprocess.run([str(venv_python()), "-c", "import radiomics"], capture_output=True)
    if probe.returncode == 0:
        sys.exit("error: pyradiomics imports in .venv-native; it must not be there")
    STAMP.write_text(stamp)
    print("Environment without pyradiomics ready in .venv-native/", flush=True)
    return venv_python()


if __name__ == "__main__":
    ensure()
