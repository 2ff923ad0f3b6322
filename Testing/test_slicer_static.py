"""What only a full Slicer can run, checked statically: .ui, CMake lists, extension metadata,
the module importing without Qt, and the dependency list for Slicer's Python."""
from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from PIL import Image

from DeepRadScoreLib import ENDPOINTS
from DeepRadScoreSlicerLib import dependencies as deps

ROOT = Path(__file__).resolve().parent.parent
MODULE = ROOT / "DeepRadScore"
SOURCE = (MODULE / "DeepRadScore.py").read_text()
UI = MODULE / "Resources" / "UI" / "DeepRadScore.ui"


def ui_widgets() -> dict[str, ET.Element]:
    return {w.get("name"): w for w in ET.parse(UI).getroot().iter("widget")}


def test_ui_names_every_widget_the_widget_uses():
    widgets = ui_widgets()
    used = set(re.findall(r"self\.ui\.([A-Za-z_]\w*)", SOURCE))
    assert {"runButton", "cancelButton", "segmentSelector", "resultsTableView"} <= used
    assert used - set(widgets) == set()
    for endpoint in ENDPOINTS:  # looked up as f"endpoint{endpoint}CheckBox"
        assert widgets[f"endpoint{endpoint}CheckBox"].get("class") == "QCheckBox"
    assert widgets["segmentSelector"].get("class") == "qMRMLSegmentSelectorWidget"
    assert widgets["bundlePathLineEdit"].get("class") == "ctkPathLineEdit"
    assert widgets["resultsTableView"].get("class") == "qMRMLTableView"


def test_ui_parameter_names_are_parameter_node_fields():
    tree = ast.parse(SOURCE)
    parameter_class = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "DeepRadScoreParameterNode")
    fields = {n.target.id for n in parameter_class.body if isinstance(n, ast.AnnAssign)}
    bound = {p.findtext("string") for p in ET.parse(UI).getroot().iter("property")
             if p.get("name") == "SlicerParameterName"}
    assert bound == {"inputVolume", "segmentation", "ringThicknessMm", "heatmapOpacity"}
    assert bound <= fields


def test_module_cmakelists_lists_every_file():
    text = (MODULE / "CMakeLists.txt").read_text()
    listed = {name.replace("${MODULE_NAME}", "DeepRadScore") for name in re.findall(r"^\s+(\S+\.\w+)\s*$", text, flags=re.M)}
    skip = ("__pycache__", "deepradscore.egg-info")
    on_disk = {str(p.relative_to(MODULE)) for p in MODULE.rglob("*")
               if p.is_file() and not any(s in p.parts for s in skip) and p.suffix != ".pyc"
               and p.name != "CMakeLists.txt"}
    assert on_disk - listed == set(), "files missing from DeepRadScore/CMakeLists.txt"
    assert listed - on_disk == set(), "CMakeLists.txt lists files that do not exist"
    assert "slicerMacroBuildScriptedModule" in text


def test_extension_metadata_and_index_entry():
    cmake = (ROOT / "CMakeLists.txt").read_text()
    meta = dict(re.findall(r'set\((EXTENSION_\w+)\s+"([^"]*)"\)', cmake))
    for key in ("EXTENSION_HOMEPAGE", "EXTENSION_CATEGORY", "EXTENSION_CONTRIBUTORS", "EXTENSION_DESCRIPTION",
                "EXTENSION_ICONURL", "EXTENSION_SCREENSHOTURLS", "EXTENSION_DEPENDS"):
        assert meta.get(key), key
    assert "add_subdirectory(DeepRadScore)" in cmake
    entry = json.loads((ROOT / "DeepRadScore.json").read_text())
    # The shape of Slicer's catalog entry schema v1.0.2 (draft-07, additionalProperties false).
    types = {"$schema": str, "category": str, "scm_url": str, "scm_revision": str, "scm_type": str,
             "build_dependencies": list, "dicom_support_rule": str, "build_subdirectory": str,
             "enabled": bool, "tier": int}
    assert {"$schema", "category", "scm_url"} <= set(entry)
    assert set(entry) <= set(types)
    for key, value in entry.items():
        assert isinstance(value, types[key]), key
    assert entry["$schema"].endswith("slicer-extension-catalog-entry-schema-v1.0.2.json#")
    assert entry.get("scm_type", "git") in ("git", "local")
    assert 1 <= entry.get("tier", 1) <= 5
    assert all(isinstance(d, str) for d in entry["build_dependencies"])
    assert entry["build_dependencies"] == meta["EXTENSION_DEPENDS"].split()
    assert entry["category"] == meta["EXTENSION_CATEGORY"]


def test_icon_is_a_128_pixel_png():
    with Image.open(MODULE / "Resources" / "Icons" / "DeepRadScore.png") as icon:
        assert icon.format == "PNG" and icon.size == (128, 128)


def test_module_imports_without_qt_and_without_heavy_packages():
    """With slicer-core (no Qt) the module file imports and its Logic can be created; loading the
    module imports none of torch, pyradiomics, scikit-learn or pandas. (In this environment the
    ``slicer`` namespace itself pulls torch and pandas in through shap's unrelated ``slicer``
    package, so what the module adds is measured after ``import slicer``.)"""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "import slicer; before = set(sys.modules);"
        "import DeepRadScore as m;"
        "assert not m.HAS_QT and 'qt' not in sys.modules;"
        "logic = m.DeepRadScoreLogic();"
        "added = set(sys.modules) - before;"
        "heavy = sorted(n for n in added if n.split('.')[0] in ('torch', 'radiomics', 'sklearn', 'pandas', 'torchvision'));"
        "assert not heavy, heavy;"
        "print(type(logic).__name__, m.DeepRadScoreLogic.ringSegmentName('GTV', 3.0))"
    )
    done = subprocess.run([sys.executable, "-c", code, str(MODULE)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("DeepRadScoreLogic GTV peritumoral 3 mm")


def test_dependency_pins_equal_the_engine_requirements():
    pinned = {}
    for line in (ROOT / "requirements" / "engine.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            pinned[name.split("[")[0].lower()] = version.strip()
    pip_pins = [r for r, source in deps.REQUIREMENTS if source == deps.PIP]
    assert pip_pins
    for requirement in pip_pins:
        name, version = requirement.split("==")
        assert pinned[name.lower()] == version, requirement


def test_missing_requirements_and_what_to_install():
    installed = {"torch": "2.4.1+cu121", "torchvision": None, "pyradiomics": "3.1.0", "scipy": "1.17.1",
                 "pandas": "2.2.0", "scikit-learn": "1.9.1", "skops": "0.16.0", "safetensors": "0.8.0",
                 "PyWavelets": "1.9.0", "pykwalify": "1.8.0", "six": "1.17.0", "numpy": "1.26.4",
                 "SimpleITK": "2.4.0", "vtk": "9.4.2"}
    missing = deps.missing_requirements(version_of=installed.get)
    assert [m.name for m in missing] == ["torchvision", "pandas"]
    assert deps.pip_requirements(missing) == ["pandas==3.1.1"]
    assert deps.torch_requirements(missing) == {"torch": None, "torchvision": ">=0.17"}
    assert deps.unresolvable(missing) == []
    text = deps.confirmation_text(missing)
    assert "torchvision>=0.17 (not installed; from PyTorch extension)" in text
    assert "pandas==3.1.1 (2.2.0 installed; from pip)" in text
    assert deps.constraints_text(installed.get).splitlines()[1:] == ["numpy==1.26.4", "SimpleITK==2.4.0", "vtk==9.4.2"]

    no_radiomics = deps.missing_requirements(version_of={**installed, "pyradiomics": None}.get)
    blocked = deps.unresolvable(no_radiomics)
    assert [m.name for m in blocked] == ["pyradiomics"]
    assert "SlicerRadiomics extension" in deps.unresolvable_text(blocked)


def test_this_environment_satisfies_the_slicer_requirements():
    assert deps.missing_requirements() == []


@pytest.mark.parametrize("path", ["DeepRadScore/DeepRadScore.py", "DeepRadScore/DeepRadScoreSlicerLib/worker.py"])
def test_sources_compile(path):
    compile((ROOT / path).read_text(), path, "exec")
