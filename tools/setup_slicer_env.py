#!/usr/bin/env python3
"""Create or update ``.venv-slicer/``: a Python like 3D Slicer 5.10's, for the Slicer tests.

Slicer cannot run on this project's machines, but the parts of its Python that broke the module
can be reproduced: Python 3.12 (pyenv's), Slicer 5.10's numpy 2.0.2 and scipy 1.13.1, and a
pyradiomics built from the 3.1.0 sdist the way SlicerRadiomics builds it, so that its metadata
says what SlicerRadiomics' copy says: ``3.0.1a1`` (we do NOT correct the version as
``tools/setup_env.py`` does for ``.venv``). The 3.1.0 sdist lacks two C headers; they are taken
from the 3.0.1 sdist (its C sources are byte-identical), both checked by SHA-256.

Testing/test_slicer_env.py calls :func:`ensure` (a session fixture), so ``./run.sh test`` builds
the environment once per fresh machine (about a minute: only pyradiomics is compiled) and reuses
it while this file and ``STAMP_INPUTS`` stay the same. Standard library only.
"""
from __future__ import annotations

import glob
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv-slicer"
STAMP = VENV / ".deepradscore-slicer-setup"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from setup_env import (HEADERS_SDIST_SHA256, HEADERS_SDIST_VERSION,  # noqa: E402
                       PYRADIOMICS_SHA256, PYRADIOMICS_VERSION, pyradiomics_source)

# What Slicer 5.10 ships (Python 3.12.x), and what SlicerRadiomics adds next to it.
SLICER_PACKAGES = ["numpy==2.0.2", "scipy==1.13.1", "SimpleITK==2.5.7", "packaging"]
RADIOMICS_DEPENDENCIES = ["PyWavelets==1.9.0", "pykwalify==1.8.0", "six==1.17.0"]
# One package of the module's own requirements, so the engine's radiomics can run here; the
# rest (pandas, scikit-learn, ...) stay missing, as on a fresh Slicer.
MODULE_INSTALLED = ["threadpoolctl==3.8.0"]
SLICER_RADIOMICS_METADATA_VERSION = "3.0.1a1"
SETUP_REVISION = "1"


def python312() -> str:
    """pyenv's Python 3.12 (on the machine image), else any python3.12 on PATH."""
    roots = [os.environ.get("PYENV_ROOT", ""), str(Path.home() / ".pyenv")]
    for root in filter(None, roots):
        found = sorted(glob.glob(os.path.join(root, "versions", "3.12.*", "bin", "python3.12")))
        if found:
            return found[-1]
    found = shutil.which("python3.12")
    if found:
        return found
    sys.exit("error: no Python 3.12 found (pyenv install 3.12) for the Slicer-like environment")


def venv_python() -> Path:
    return VENV / "bin" / "python"


def pip(*args: str, capture: bool = False) -> subprocess.CompletedProcess:
    cmd = [str(venv_python()), "-m", "pip", "--disable-pip-version-check", "-q", *args]
    return subprocess.run(cmd, check=not capture, text=True,
                          stdout=subprocess.PIPE if capture else None,
                          stderr=subprocess.STDOUT if capture else None)


def wanted_stamp() -> str:
    digest = hashlib.sha256(SETUP_REVISION.encode())
    digest.update(Path(__file__).read_bytes())
    return digest.hexdigest()


def _host_pip(*args: str) -> subprocess.CompletedProcess:
    # pip must prepare an sdist's metadata to download it, and pyradiomics' versioneer.py does
    # not run on Python 3.12 (SafeConfigParser): downloads go through the calling Python
    # (.venv's 3.11, which ./run.sh and pytest use); only the build runs on 3.12.
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args]
    return subprocess.run(cmd, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _download_sdist(version: str, folder: Path, expected_sha256: str) -> Path:
    _host_pip("download", "--no-deps", "--no-binary", ":all:", "--no-build-isolation",
        f"pyradiomics=={version}", "-d", str(folder))
    path = folder / f"pyradiomics-{version}.tar.gz"
    if not path.exists():
        # pip refuses the 3.1.0 sdist (its metadata says 3.0.1a1): fetch the URL it names.
        report = _host_pip("install", "--dry-run", "--ignore-installed", "--no-deps", "--no-build-isolation",
                           f"pyradiomics=={version}").stdout
        match = re.search(r"(https?://\S+/pyradiomics-" + re.escape(version) + r"\.tar\.gz)", report)
        if match is None:
            sys.exit(f"error: could not locate the pyradiomics {version} sdist:\n{report}")
        url = match.group(1)
        with urllib.request.urlopen(url) as response, open(path, "wb") as out:
            shutil.copyfileobj(response, out)
    if hashlib.sha256(path.read_bytes()).hexdigest() != expected_sha256:
        sys.exit(f"error: {path.name} does not have the expected SHA-256; refusing to build it")
    return path


def install_pyradiomics() -> None:
    pip("install", "versioneer", "setuptools", "wheel")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        old = _download_sdist(HEADERS_SDIST_VERSION, tmp, HEADERS_SDIST_SHA256)
        new = _download_sdist(PYRADIOMICS_VERSION, tmp, PYRADIOMICS_SHA256)
        src = pyradiomics_source(old, new, tmp)
        # --no-deps: its dependencies are installed at SlicerRadiomics-like versions below, and
        # pip must not pull a newer numpy over Slicer's.
        pip("install", "--no-build-isolation", "--no-deps", str(src))


def ensure() -> Path:
    """Build the environment if it is missing or stale; return its Python.

    pytest-xdist workers may call this at once: a lock file lets one build while the others wait.
    """
    import fcntl

    stamp = wanted_stamp()
    if STAMP.exists() and STAMP.read_text() == stamp and venv_python().exists():
        return venv_python()
    with open(ROOT / ".venv-slicer.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if STAMP.exists() and STAMP.read_text() == stamp and venv_python().exists():
            return venv_python()
        return _build(stamp)


def _build(stamp: str) -> Path:
    print("Setting up .venv-slicer (a Slicer-5.10-like Python; first run: a few minutes) ...", flush=True)
    if VENV.exists():
        shutil.rmtree(VENV)
    subprocess.run([python312(), "-m", "venv", str(VENV)], check=True)
    pip("install", "--upgrade", "pip")
    pip("install", *SLICER_PACKAGES, *RADIOMICS_DEPENDENCIES, *MODULE_INSTALLED)
    install_pyradiomics()
    version = subprocess.run([str(venv_python()), "-c",
                              "import importlib.metadata as m; print(m.version('pyradiomics'))"],
                             check=True, text=True, stdout=subprocess.PIPE).stdout.strip()
    if version != SLICER_RADIOMICS_METADATA_VERSION:
        sys.exit(f"error: pyradiomics in .venv-slicer says {version}, expected "
                 f"{SLICER_RADIOMICS_METADATA_VERSION} (what SlicerRadiomics ships)")
    STAMP.write_text(stamp)
    print("Slicer-like environment ready in .venv-slicer/", flush=True)
    return venv_python()


if __name__ == "__main__":
    ensure()
