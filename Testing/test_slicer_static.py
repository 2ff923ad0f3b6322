"""What only a full Slicer can run, checked statically: .ui, CMake lists, extension metadata
(the Extensions Index's own checks), the module file, and the dependency list for Slicer's Python.

The module file (DeepRadScore.py) imports Qt and ``slicer.ScriptedLoadableModule``, which exist
only inside the Slicer application, not in slicer-core: it is read here with ``ast``, never
imported. Its Logic (DeepRadScoreSlicerLib.logic) is imported and run for real in
test_slicer_logic.py. Windows- and GUI-only code paths are checked here by reading them, since
neither Windows nor a Slicer GUI can run on this machine.
"""
from __future__ import annotations

import ast
import hashlib
import json
import re
import subprocess
import sys
import urllib.parse
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest
from packaging.requirements import Requirement
from PIL import Image

from DeepRadScoreLib import ENDPOINTS
from DeepRadScoreSlicerLib import background
from DeepRadScoreSlicerLib import dependencies as deps

ROOT = Path(__file__).resolve().parent.parent
MODULE = ROOT / "DeepRadScore"
SOURCE = (MODULE / "DeepRadScore.py").read_text()
TREE = ast.parse(SOURCE)
LOGIC_SOURCE = (MODULE / "DeepRadScoreSlicerLib" / "logic.py").read_text()
UI = MODULE / "Resources" / "UI" / "DeepRadScore.ui"
DATA = ROOT.parent / "shared" / "data" / "ibsi_ct_phantom" / "nifti"


def ui_widgets() -> dict[str, ET.Element]:
    return {w.get("name"): w for w in ET.parse(UI).getroot().iter("widget")}


def module_class(name: str) -> ast.ClassDef:
    return next(n for n in TREE.body if isinstance(n, ast.ClassDef) and n.name == name)


def method(cls: ast.ClassDef, name: str) -> ast.FunctionDef:
    return next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == name)


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
    fields = {n.target.id: ast.unparse(n.annotation) for n in module_class("DeepRadScoreParameterNode").body
              if isinstance(n, ast.AnnAssign)}
    bound = {p.findtext("string") for p in ET.parse(UI).getroot().iter("property")
             if p.get("name") == "SlicerParameterName"}
    assert bound == {"inputVolume", "segmentation", "ringThicknessMm", "heatmapOpacity", "bundlePath"}
    assert bound <= set(fields)
    # The template's conventions: a pathlib.Path bound to the ctkPathLineEdit, endpoints a list.
    assert fields["bundlePath"] == "pathlib.Path"
    assert fields["endpoints"] == "list[str]"
    path_edit = ui_widgets()["bundlePathLineEdit"]
    assert any(p.get("name") == "SlicerParameterName" and p.findtext("string") == "bundlePath"
               for p in path_edit.iter("property"))


def test_module_file_has_no_stand_ins_and_reexports_the_logic():
    """Module, parameter node, Widget and Test only; the Logic comes from DeepRadScoreSlicerLib."""
    classes = {n.name for n in TREE.body if isinstance(n, ast.ClassDef)}
    assert classes == {"DeepRadScore", "DeepRadScoreParameterNode", "DeepRadScoreParameterLogic",
                       "DeepRadScoreWidget", "DeepRadScoreTest"}
    assert "HAS_QT" not in SOURCE and "except ImportError" not in SOURCE
    imports = {(n.module, a.name) for n in TREE.body if isinstance(n, ast.ImportFrom) for a in n.names}
    assert ("DeepRadScoreSlicerLib.logic", "DeepRadScoreLogic") in imports
    assert ("slicer.ScriptedLoadableModule", "ScriptedLoadableModuleWidget") in imports
    assert ("slicer.parameterNodeWrapper", "parameterNodeWrapper") in imports
    assert ("slicer.i18n", "tr") in imports  # _() translatable strings
    assert len(SOURCE.splitlines()) < 600
    assert "import qt" not in LOGIC_SOURCE and "from qt" not in LOGIC_SOURCE


def test_module_metadata_follows_the_template():
    init = method(module_class("DeepRadScore"), "__init__")
    text = ast.unparse(init)
    assert "_('Deep-RadScore')" in text
    contributors = re.search(r"contributors = \[(.*?)\]", text).group(1)
    for name in re.findall(r"'([^']*)'", contributors):
        assert re.fullmatch(r"[^()]+ \([^()]+\)", name), f"contributor {name!r} is not 'Name (Organisation)'"
    assert "startupCompleted()" in text and "registerSampleData" in text
    assert "5.10" in text  # the help text states the supported Slicer


def test_sample_data_is_the_ibsi_phantom_with_its_sha256():
    sample = next(n for n in TREE.body if isinstance(n, ast.FunctionDef) and n.name == "registerSampleData")
    text = ast.unparse(sample)
    assert "registerCustomSampleDataSource" in text and "checksums" in text and "SHA256:" in text
    constants = {n.targets[0].id: n.value.value for n in TREE.body
                 if isinstance(n, ast.Assign) and isinstance(n.value, ast.Constant)}
    assert constants["SAMPLE_DATA_BASE"].startswith("https://github.com/theibsi/data_sets/")
    # The checksums are those of the IBSI phantom files this project tests with.
    for name, key in (("image.nii.gz", "SAMPLE_IMAGE_SHA256"), ("mask.nii.gz", "SAMPLE_MASK_SHA256")):
        assert hashlib.sha256((DATA / name).read_bytes()).hexdigest() == constants[key]


def test_widget_keeps_the_saved_tumour_segment():
    """#14: the saved segment ID is read before connectGui (whose segmentation signal would
    overwrite it) and written back after; a changed segmentation clears it."""
    widget = module_class("DeepRadScoreWidget")
    body = ast.unparse(method(widget, "setParameterNode"))
    assert body.index("savedSegmentId = self._parameterNode.tumorSegmentId") < body.index("self._parameterNode.connectGui(self.ui)")
    assert "self._parameterNode.tumorSegmentId = savedSegmentId" in body
    changed = ast.unparse(method(widget, "onSegmentationChanged"))
    assert "self._syncing" in changed and "tumorSegmentId =" in changed


def test_widget_confirms_installs_outside_a_wait_cursor_and_cancels_on_scene_close():
    widget = module_class("DeepRadScoreWidget")
    run = method(widget, "onRunButton")
    for node in ast.walk(run):
        if isinstance(node, ast.With) and "waitCursor=True" in ast.unparse(node.items[0]):
            assert "setupPythonRequirements" not in ast.unparse(node), "#18: confirmation under a wait cursor"
    assert "statusCallback=self._setStatus" in ast.unparse(run)
    # tryWithErrorDisplay swallows the error: a failed set-up must not go on to start the run.
    text = ast.unparse(run)
    assert text.index("if not ready:") < text.index("self.logic.startBackground(")
    assert "_discardJob" in ast.unparse(method(widget, "onSceneStartClose"))  # #9
    assert "setHeatmapOpacity" in ast.unparse(method(widget, "onHeatmapOpacityChanged"))  # #15
    poll = ast.unparse(method(widget, "onPollJob"))
    assert "join" not in poll and "wait(" not in poll  # #3: the GUI thread never blocks


def test_self_test_skips_without_the_heavy_packages_and_fails_on_timeout():
    """#17: the extension build machines may lack what the first Run installs; issue 14: a
    missing pyradiomics is no reason to skip any more (the native backend runs)."""
    test = module_class("DeepRadScoreTest")
    features = ast.unparse(method(test, "test_FeaturesWithoutBundle"))
    assert "self.skipTest(" in features and "_missingForFeatures" in features
    assert "except TimeoutError" in features and "self.fail(" in features
    assert "output.radiomicsBackend" in features and "'radiomics: '" in features
    needed = next(n for n in ast.walk(method(test, "_missingForFeatures"))
                  if isinstance(n, ast.Assign) and n.targets[0].id == "needed")
    needed = set(ast.literal_eval(needed.value))
    assert needed == {"PyWavelets", "PyYAML", "scipy", "pandas"}
    requirement_names = {r.split(">")[0].split("=")[0] for r, _ in deps.requirements()}
    assert needed <= requirement_names  # each is something the module checks (and installs)
    # The ring test needs only SimpleITK/numpy (Slicer's own) and the engine's regions module.
    ring = ast.unparse(method(test, "test_RingEqualsEngine"))
    assert "radiomics" not in ring and "torch" not in ring


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
    assert "Resources/requirements.txt" in listed


# Slicer's catalog entry schema v1.0.2 (Slicer/Schemas/slicer-extension-catalog-entry-schema-
# v1.0.2.json), written out here from its published fields: draft-07, three required keys, no
# other keys, and each key's type, enum and range.
CATALOG_ENTRY_SCHEMA_V1_0_2 = {
    "$schema": "http://json-schema.org/draft-07/schema",
    "type": "object",
    "required": ["$schema", "category", "scm_url"],
    "additionalProperties": False,
    "properties": {
        "$schema": {"type": "string"},
        "category": {"type": "string"},
        "scm_url": {"type": "string"},
        "scm_revision": {"type": "string"},
        "scm_type": {"type": "string", "enum": ["git", "local"]},
        "build_dependencies": {"type": "array", "items": {"type": "string"}},
        "dicom_support_rule": {"type": "string"},
        "build_subdirectory": {"type": "string"},
        "enabled": {"type": "boolean"},
        "tier": {"type": "integer", "minimum": 1, "maximum": 5},
    },
}


def cmake_metadata() -> dict[str, str]:
    return dict(re.findall(r'set\((EXTENSION_\w+)\s+"([^"]*)"\)', (ROOT / "CMakeLists.txt").read_text()))


def test_index_entry_validates_against_schema_v1_0_2():
    entry = json.loads((ROOT / "DeepRadScore.json").read_text())
    jsonschema.Draft7Validator.check_schema(CATALOG_ENTRY_SCHEMA_V1_0_2)
    jsonschema.validate(entry, CATALOG_ENTRY_SCHEMA_V1_0_2)
    assert entry["$schema"].endswith("slicer-extension-catalog-entry-schema-v1.0.2.json#")
    # The validator rejects what the index would reject.
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**entry, "tier": 7}, CATALOG_ENTRY_SCHEMA_V1_0_2)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**entry, "homepage": "x"}, CATALOG_ENTRY_SCHEMA_V1_0_2)


def test_extensions_index_checks():
    """The checks of the index's scripts/check_description_files.py, without the network."""
    entry = json.loads((ROOT / "DeepRadScore.json").read_text())
    meta = cmake_metadata()
    cmake = (ROOT / "CMakeLists.txt").read_text()
    for key in ("EXTENSION_HOMEPAGE", "EXTENSION_CATEGORY", "EXTENSION_CONTRIBUTORS", "EXTENSION_DESCRIPTION",
                "EXTENSION_ICONURL", "EXTENSION_SCREENSHOTURLS", "EXTENSION_DEPENDS"):
        assert meta.get(key), key
    # The CMake project name equals the description file's name.
    assert re.findall(r"project\s*\(\s*([^\s\)]+)", cmake, re.I)[0] == Path("DeepRadScore.json").stem
    url = urllib.parse.urlsplit(entry["scm_url"])
    assert url.scheme == "https"
    owner, repo = url.path.strip("/").removesuffix(".git").split("/")
    assert repo == "SlicerDeepRadScore" and repo.startswith("Slicer")
    assert entry["category"] == meta["EXTENSION_CATEGORY"] == "Quantification"  # an accepted category
    assert entry["build_dependencies"] == meta["EXTENSION_DEPENDS"].split()
    # Icon and screenshots: raw URLs of this repository that resolve to real images in the tree.
    urls = [meta["EXTENSION_ICONURL"], *meta["EXTENSION_SCREENSHOTURLS"].split()]
    for image_url in urls:
        parts = urllib.parse.urlsplit(image_url)
        assert parts.scheme == "https" and parts.netloc == "raw.githubusercontent.com", image_url
        url_owner, url_repo, branch, *path = parts.path.strip("/").split("/")
        assert (url_owner, url_repo, branch) == (owner, repo, entry["scm_revision"]), image_url
        with Image.open(ROOT.joinpath(*path)) as picture:
            assert picture.format == "PNG"
    assert meta["EXTENSION_HOMEPAGE"].startswith(f"https://github.com/{owner}/{repo}")
    assert (ROOT / "LICENSE").is_file()
    assert re.fullmatch(r"[^()]+ \([^()]+\)(, [^()]+ \([^()]+\))*", meta["EXTENSION_CONTRIBUTORS"])
    # Slicer >= 5.10 is enforced at configure time too.
    assert 'Slicer_VERSION VERSION_LESS "5.10"' in cmake and "FATAL_ERROR" in cmake


def test_screenshot_is_a_real_render():
    """docs/images/slicer-screenshot.png: the Red view's blended slice (CT + heatmap) from
    vtkMRMLSliceLogic (test_slicer_logic.py writes it with DEEPRADSCORE_WRITE_SCREENSHOT=1)."""
    with Image.open(ROOT / "docs" / "images" / "slicer-screenshot.png") as shot:
        assert shot.size == (720, 720)
        pixels = shot.convert("RGB")
        colours = pixels.getcolors(maxcolors=1 << 20)
        assert colours is not None and len(colours) > 1000  # a picture, not a placeholder
        grey = sum(count for count, (r, g, b) in colours if r == g == b)
        assert grey < 0.9 * 720 * 720  # the heat colours are there


def test_icon_is_a_128_pixel_png():
    with Image.open(MODULE / "Resources" / "Icons" / "DeepRadScore.png") as icon:
        assert icon.format == "PNG" and icon.size == (128, 128)


def test_logic_imports_without_qt_and_without_heavy_packages():
    """Under slicer-core (no Qt) the Logic module imports and its Logic can be created; loading
    it imports none of torch, pyradiomics, scikit-learn or pandas. (In this environment the
    ``slicer`` namespace itself pulls torch and pandas in through shap's unrelated ``slicer``
    package, so what the module adds is measured after ``import slicer``.)"""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "import slicer; before = set(sys.modules);"
        "from DeepRadScoreSlicerLib import logic as m;"
        "assert 'qt' not in sys.modules;"
        "logic = m.DeepRadScoreLogic();"
        "added = set(sys.modules) - before;"
        "heavy = sorted(n for n in added if n.split('.')[0] in ('torch', 'radiomics', 'sklearn', 'pandas', 'torchvision', 'qt'));"
        "assert not heavy, heavy;"
        "print(type(logic).__name__, m.DeepRadScoreLogic.ringSegmentName('GTV', 3.0))"
    )
    done = subprocess.run([sys.executable, "-c", code, str(MODULE)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("DeepRadScoreLogic GTV peritumoral 3 mm")


def engine_pins() -> dict[str, str]:
    pinned = {}
    for line in (ROOT / "requirements" / "engine.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            pinned[name.split("[")[0].lower()] = version.strip()
    return pinned


def test_slicer_requirements_are_minimums_that_the_tested_versions_meet():
    """#5/#6: requirements come from Resources/requirements.txt; >= minimums except the two
    packages a bundle needs to load; the versions the engine is tested with satisfy each."""
    lines = deps.pip_requirement_lines()
    assert [r for r, source in deps.requirements() if source == deps.PIP] == lines
    pinned = engine_pins()
    exact = set()
    for line in lines:
        requirement = Requirement(line)
        assert requirement.specifier.contains(pinned[requirement.name.lower()]), line
        if any(spec.operator == "==" for spec in requirement.specifier):
            exact.add(requirement.name.lower())
    assert exact == {"scikit-learn", "skops"}
    names = {Requirement(x).name.lower() for x in lines}
    # The native radiomics backend's own packages (numpy, SimpleITK: Slicer's) are pip's to
    # install; pyradiomics and its pykwalify/six are not asked for (SlicerRadiomics brings them).
    for name in ("pywavelets", "pyyaml", "scipy", "pandas"):
        assert name in names
    assert not names & {"pyradiomics", "pykwalify", "six"}
    assert "pyradiomics" not in {Requirement(r).name.lower() for r, _ in deps.requirements()}


def test_missing_requirements_accept_what_slicer_and_its_extensions_ship():
    installed = {"torch": "2.4.1+cu121", "torchvision": None, "pyradiomics": "3.0.1a1", "scipy": "1.13.1",
                 "pandas": "2.2.0", "scikit-learn": "1.9.1", "skops": "0.16.0", "safetensors": "0.8.0",
                 "PyWavelets": "1.6.0", "PyYAML": "6.0.1", "threadpoolctl": "3.5.0",
                 "numpy": "2.0.2", "SimpleITK": "2.4.0"}
    missing = deps.missing_requirements(version_of=installed.get)
    # SlicerRadiomics' pyradiomics 3.0.1a1 and its PyWavelets, Slicer 5.10's scipy: all accepted.
    assert [m.name for m in missing] == ["torchvision"]
    assert deps.torch_requirements(missing) == {"torch": None, "torchvision": ">=0.17"}
    assert deps.unresolvable(missing) == []
    assert "torchvision>=0.17 (not installed; from PyTorch extension)" in deps.confirmation_text(missing)
    assert "several minutes" in deps.confirmation_text(missing)

    old_sklearn = deps.missing_requirements(version_of={**installed, "scikit-learn": "1.5.0"}.get)
    assert deps.pip_requirements(old_sklearn) == ["scikit-learn==1.9.1"]
    # A too old scipy belongs to Slicer: reported, never replaced.
    old_scipy = deps.missing_requirements(version_of={**installed, "scipy": "1.9.0"}.get)
    assert [m.name for m in deps.unresolvable(old_scipy)] == ["scipy"]

    # Issue 14: no pyradiomics (no SlicerRadiomics, e.g. macOS) is fine: the native backend runs.
    no_radiomics = deps.missing_requirements(version_of={**installed, "pyradiomics": None}.get)
    assert [m.name for m in no_radiomics] == ["torchvision"] and deps.unresolvable(no_radiomics) == []
    # ... but PyYAML, which only the native backend needs, is pip's to install.
    no_yaml = deps.missing_requirements(version_of={**installed, "pyradiomics": None, "PyYAML": None}.get)
    assert deps.pip_requirements(no_yaml) == ["PyYAML>=6.0"]
    # A SlicerRadiomics pyradiomics that is too old is reported, never used; choosing the native
    # backend (optional=()) does not look at it.
    old_radiomics = deps.missing_requirements(version_of={**installed, "pyradiomics": "2.2.0"}.get)
    text = deps.unresolvable_text(deps.unresolvable(old_radiomics))
    assert "update the SlicerRadiomics extension" in text and "native backend" in text
    assert "macOS" not in text
    assert deps.missing_requirements(version_of={**installed, "pyradiomics": "2.2.0"}.get, optional=()) == \
        deps.missing_requirements(version_of=installed.get)


def test_the_run_says_which_radiomics_backend_ran():
    assert (deps.radiomics_backend_text("native (DeepRadScore 0.1.0)")
            == "radiomics: DeepRadScore's native backend (the default; the same numbers as pyradiomics).")
    assert "chosen" in deps.radiomics_backend_text("native (DeepRadScore 0.1.0)", "native")
    assert deps.radiomics_backend_text("pyradiomics 3.0.1a1") == "radiomics: pyradiomics 3.0.1a1."
    # The Logic passes the backend on (in-process and to the worker) and records what ran.
    tree = ast.parse(LOGIC_SOURCE)
    for name in ("process", "startBackground", "setupPythonRequirements"):
        function = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == name)
        defaults = dict(zip([a.arg for a in function.args.args][-len(function.args.defaults):],
                            function.args.defaults))
        assert ast.literal_eval(defaults["radiomicsBackend"]) == "auto", name
    process = ast.unparse(next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "process"))
    assert "backend=radiomicsBackend" in process
    # The module no longer needs the SlicerRadiomics extension to be built or installed.
    assert "SlicerRadiomics" not in cmake_metadata()["EXTENSION_DEPENDS"]
    assert "SlicerRadiomics" not in json.loads((ROOT / "DeepRadScore.json").read_text())["build_dependencies"]


def test_constraints_hold_every_installed_package_except_those_being_installed():
    installed = {"numpy": "2.0.2", "scipy": "1.13.1", "simpleitk": "2.4.0", "pywavelets": "1.6.0",
                 "scikit-learn": "1.5.0"}
    lines = deps.constraints_text(installed, upgrading=["scikit-learn"]).splitlines()[1:]
    assert lines == ["numpy==2.0.2", "pywavelets==1.6.0", "scipy==1.13.1", "simpleitk==2.4.0"]
    here = deps.constraints_text().splitlines()
    assert f"numpy=={deps.installed_version('numpy')}" in here


def test_supported_slicer_range():
    """#2: 5.10 and later; stated in the README, CMake and the help text."""
    assert deps.unsupported_slicer(5, 10) is None and deps.unsupported_slicer(5, 12) is None
    assert deps.unsupported_slicer(6, 0) is None
    message = deps.unsupported_slicer(5, 8)
    assert "5.10 or later" in message and "5.8" in message
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## 3D Slicer"):]
    section = section[:section.index("\n## ", 5)]
    assert "5.10" in section and "macOS" in section and "Windows" in section
    assert "before submitting" in section.lower()
    assert "self.slicerVersionProblem()" in LOGIC_SOURCE


def test_this_environment_satisfies_the_slicer_requirements():
    assert deps.missing_requirements() == []


def test_install_paths_use_slicers_helpers():
    """Slicer 5.12's pip_ensure, else 5.10's pip_install with -c constraints; torch only via the
    PyTorch extension, torchInstalled() first. Slicer itself cannot run here: read the code."""
    tree = ast.parse(LOGIC_SOURCE)
    pip = ast.unparse(next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "_pipInstall"))
    assert "pip_ensure" in pip and "constraints=constraints" in pip and "prompt_install=False" in pip
    assert "slicer.util.pip_install([*pipNeeds, '-c', constraints])" in pip
    assert "TemporaryDirectory" in pip  # the constraints folder is always removed (#8)
    torch = ast.unparse(next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "_installTorch"))
    assert torch.index("torchInstalled()") < torch.index("torchLogic.installTorch(")
    assert "askConfirmation=False" in torch


def test_windows_process_handling_is_in_place():
    """#3 on Windows (cannot run here): hidden console, tree kill, UTF-8."""
    text = (MODULE / "DeepRadScoreSlicerLib" / "background.py").read_text()
    assert "CREATE_NO_WINDOW" in text and "SW_HIDE" in text and "STARTF_USESHOWWINDOW" in text
    assert background.kill_tree_command(1234) == ["taskkill", "/T", "/F", "/PID", "1234"]
    assert background.popen_options("posix") == {"start_new_session": True}
    assert background.child_environment()["PYTHONIOENCODING"] == "utf-8"
    assert 'encoding="utf-8"' in text and 'errors="replace"' in text


@pytest.mark.parametrize("path", ["DeepRadScore/DeepRadScore.py", "DeepRadScore/DeepRadScoreSlicerLib/worker.py",
                                  "DeepRadScore/DeepRadScoreSlicerLib/logic.py"])
def test_sources_compile(path):
    compile((ROOT / path).read_text(), path, "exec")
