#!/usr/bin/env python3
"""Create or update ``.venv/`` at the repository root with everything DeepRadScore needs.

Run by ``./run.sh`` before any command; it does nothing when the environment already matches
the requirement files (a stamp holds their hash). Standard library only: it runs before the
environment exists.

Two packages need more than ``pip install``:

* pyradiomics 3.1.0 is published only as an sdist whose metadata says ``3.0.1a1`` (pip refuses
  it for ``==3.1.0``) and which lacks the two C headers ``cmatrices.h`` and ``cshape.h``. Its C
  sources are byte-identical to 3.0.1's, whose sdist has the headers. So we download both sdists
  from the package index, check their SHA-256, put the 3.0.1 headers into the 3.1.0 tree, set the
  version it really is, and build that with ``--no-build-isolation`` (numpy, versioneer and
  setuptools installed first).
* torch and torchvision are pinned together (requirements/torch.txt).

An environment set up before the engine stopped using the ``shap`` package (2026-12; pip does not
uninstall it) still holds SHAP's dependency ``slicer`` (0.0.8), which puts its files into
the same ``slicer/`` folder as slicer-core's ``slicer`` meta-package, which imports every module
it finds there, so ``import slicer`` ran SHAP-slicer's own ``test_slicer.py`` and
``utils_testing.py`` (torch, pandas, pytest: 1.8 s), and a test that blocks torch failed inside
``import slicer``. Those two test files are removed after every install
(:func:`separate_slicer_namespaces`); a fresh environment has no such files.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
STAMP = VENV / ".deepradscore-setup"
REQUIREMENTS = ["requirements/torch.txt", "requirements/engine.txt", "requirements/test.txt"]

PYRADIOMICS_VERSION = "3.1.0"
PYRADIOMICS_SHA256 = "24722c962a6bbd09bc39c1c67dbffe92435f9692a421fabaae8a6b4511eb48e4"
HEADERS_SDIST_VERSION = "3.0.1"
HEADERS_SDIST_SHA256 = "47c57f441d6cb7973fa3b2ea48d3948df78e3348e1c69e1e2ff19001601fc2f5"
SETUP_REVISION = "1"  # bump to force a rebuild when this script changes what it installs


def venv_python() -> Path:
    return VENV / "bin" / "python"


def pip(*args: str, capture: bool = False) -> subprocess.CompletedProcess:
    # Installs are quiet: the README's commands show the set-up's own progress lines, not pip's
    # log (its warnings and errors still print). Captured calls keep pip's full output to parse.
    quiet = ["-q"] if not capture else []
    cmd = [str(venv_python()), "-m", "pip", "--disable-pip-version-check", *quiet, *args]
    return subprocess.run(cmd, check=not capture, text=True,
                          stdout=subprocess.PIPE if capture else None,
                          stderr=subprocess.STDOUT if capture else None)


def wanted_stamp() -> str:
    digest = hashlib.sha256(SETUP_REVISION.encode())
    for name in REQUIREMENTS + ["pyproject.toml"]:
        digest.update((ROOT / name).read_bytes())
    return digest.hexdigest()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_hash(path: Path, expected: str) -> None:
    if sha256(path) != expected:
        sys.exit(f"error: {path.name} does not have the expected SHA-256; refusing to build it")


def sdist_url(version: str) -> str:
    """The index URL of pyradiomics' sdist, as pip resolves it (pip names it in its warning)."""
    result = pip("install", "--dry-run", "--no-deps", "--no-build-isolation",
                 f"pyradiomics=={version}", capture=True)
    match = re.search(r"(\S+/pyradiomics-" + re.escape(version) + r"\.tar\.gz)", result.stdout)
    if not match:
        sys.exit(f"error: could not locate the pyradiomics {version} sdist:\n{result.stdout}")
    return match.group(1).split("#")[0]


def install_pyradiomics() -> None:
    # Build requirements first: pip needs them even to read the sdist's metadata.
    pip("install", "numpy==2.4.6", "versioneer", "setuptools", "wheel")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        pip("download", "--no-deps", "--no-binary", ":all:", "--no-build-isolation",
            f"pyradiomics=={HEADERS_SDIST_VERSION}", "-d", str(tmp))
        old = tmp / f"pyradiomics-{HEADERS_SDIST_VERSION}.tar.gz"
        check_hash(old, HEADERS_SDIST_SHA256)
        new = tmp / f"pyradiomics-{PYRADIOMICS_VERSION}.tar.gz"
        with urllib.request.urlopen(sdist_url(PYRADIOMICS_VERSION)) as response, open(new, "wb") as out:
            shutil.copyfileobj(response, out)
        check_hash(new, PYRADIOMICS_SHA256)
        src = pyradiomics_source(old, new, tmp)
        pyproject = src / "pyproject.toml"
        pyproject.write_text(re.sub(r'(?m)^version = ".*"$', f'version = "{PYRADIOMICS_VERSION}"',
                                    pyproject.read_text()))
        pip("install", "--no-build-isolation", "--no-deps", str(src))


def pyradiomics_source(headers_sdist: Path, sdist: Path, folder: Path) -> Path:
    """Unpack the 3.1.0 sdist and the 3.0.1 one into ``folder`` and give the 3.1.0 tree the two C
    headers it lacks (the C sources are byte-identical); returns the tree to build."""
    for archive in (headers_sdist, sdist):
        with tarfile.open(archive) as tar:
            tar.extractall(folder, filter="data")
    src = folder / f"pyradiomics-{PYRADIOMICS_VERSION}"
    for header in ("cmatrices.h", "cshape.h"):
        shutil.copy(folder / f"pyradiomics-{HEADERS_SDIST_VERSION}" / "radiomics" / "src" / header,
                    src / "radiomics" / "src" / header)
    return src


# SHAP-slicer's own tests, which slicer-core's meta-package would import with ``import slicer``.
SHAP_SLICER_TEST_FILES = ("test_slicer.py", "utils_testing.py")


def separate_slicer_namespaces() -> list[Path]:
    """Remove SHAP-slicer's test modules from the shared ``slicer/`` folder (see above); returns
    what was removed. Only files that the ``slicer`` 0.0.8 distribution itself recorded go."""
    removed = []
    for site in (VENV / "lib").glob("python*/site-packages"):
        for record in site.glob("slicer-*.dist-info/RECORD"):
            owned = {line.split(",", 1)[0] for line in record.read_text().splitlines()}
            for name in SHAP_SLICER_TEST_FILES:
                path = site / "slicer" / name
                if f"slicer/{name}" in owned and path.exists():
                    path.unlink()
                    removed.append(path)
    return removed


def main() -> None:
    if not venv_python().exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    stamp = wanted_stamp()
    if STAMP.exists() and STAMP.read_text() == stamp:
        separate_slicer_namespaces()  # also in an environment set up before this step existed
        return
    print("Setting up .venv (first run: a few minutes) ...", flush=True)
    pip("install", "--upgrade", "pip")
    for requirement in REQUIREMENTS:
        print(f"  installing {requirement}", flush=True)
        pip("install", "-r", str(ROOT / requirement))
    installed = pip("show", "pyradiomics", capture=True).stdout
    if f"Version: {PYRADIOMICS_VERSION}" not in installed:
        print(f"  building pyradiomics {PYRADIOMICS_VERSION}", flush=True)
        install_pyradiomics()
    pip("install", "--no-deps", "-e", str(ROOT))
    separate_slicer_namespaces()
    STAMP.write_text(stamp)
    print("Environment ready in .venv/", flush=True)


if __name__ == "__main__":
    os.chdir(ROOT)
    main()
