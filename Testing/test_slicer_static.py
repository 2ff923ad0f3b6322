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
    assert bound == {"inputVolume", "segmentation", "ringThicknessMm", "heatmapOpacity"}
    assert bound <= set(fields)
    # The bundle path is a string the Widget syncs itself: a pathlib.Path parameter bound to the
    # ctkPathLineEdit shows an empty path as ".".
    assert fields["bundlePath"] == "str" and fields["endpoints"] == "list[str]"
    assert "predictionsTable" not in fields and "featuresTable" not in fields  # tagged nodes instead
    path_edit = ui_widgets()["bundlePathLineEdit"]
    assert not any(p.get("name") == "SlicerParameterName" for p in path_edit.iter("property"))
    assert "bundle_folder(node.bundlePath)" in ast.unparse(method(module_class("DeepRadScoreWidget"),
                                                                  "_updateManualWidgets"))
    from DeepRadScoreSlicerLib.controller import bundle_folder

    assert [bundle_folder(p) for p in (None, "", ".", " . ", Path(""), "/data/bundle")] == ["", "", "", "", "",
                                                                                             "/data/bundle"]


def test_module_file_has_no_stand_ins_and_reexports_the_logic():
    """Module, parameter node, Widget and Test only; the Logic comes from DeepRadScoreSlicerLib."""
    classes = {n.name for n in TREE.body if isinstance(n, ast.ClassDef)}
    assert classes == {"DeepRadScore", "DeepRadScoreParameterNode", "DeepRadScoreParameterLogic",
                       "_PanelView", "DeepRadScoreWidget", "DeepRadScoreTest"}
    assert "HAS_QT" not in SOURCE and "except ImportError" not in SOURCE
    imports = {(n.module, a.name) for n in TREE.body if isinstance(n, ast.ImportFrom) for a in n.names}
    assert ("DeepRadScoreSlicerLib.logic", "DeepRadScoreLogic") in imports
    assert ("slicer.ScriptedLoadableModule", "ScriptedLoadableModuleWidget") in imports
    assert ("slicer.parameterNodeWrapper", "parameterNodeWrapper") in imports
    assert ("slicer.i18n", "tr") in imports  # _() translatable strings
    assert len(SOURCE.splitlines()) < 600
    assert "import qt" not in LOGIC_SOURCE and "from qt" not in LOGIC_SOURCE
    assert ("DeepRadScoreSlicerLib.controller", "DeepRadScoreController") in imports


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
    """The saved segment ID is read before connectGui (whose segmentation signal would overwrite
    it) and written back after; a changed segmentation clears it."""
    widget = module_class("DeepRadScoreWidget")
    body = ast.unparse(method(widget, "setParameterNode"))
    assert body.index("savedSegmentId = self._parameterNode.tumorSegmentId") < body.index("self._parameterNode.connectGui(self.ui)")
    assert "self._parameterNode.tumorSegmentId = savedSegmentId" in body
    changed = ast.unparse(method(widget, "onSegmentationChanged"))
    assert "self._syncing" in changed and "tumorSegmentId =" in changed


def test_widget_is_a_thin_view_of_the_controller():
    """What only Slicer's GUI can run: the Widget forwards to the controller (whose decisions
    test_slicer_controller.py runs on real MRML), following Slicer's template."""
    widget = module_class("DeepRadScoreWidget")
    text = lambda name: ast.unparse(method(widget, name))  # noqa: E731
    # exit() only disconnects the GUI (the template); a running job is not touched.
    assert "setParameterNode(None)" not in text("exit") and "_disconnectParameterNode" in text("exit")
    assert "self.controller.exit()" in text("exit") and "self.controller.enter()" in text("enter")
    assert "self.controller.sceneStartClose()" in text("onSceneStartClose")
    assert "self.controller.cleanup()" in text("cleanup") and "removeObservers" in text("cleanup")
    assert "self.controller.run(self._inputs())" in text("onRunButton")
    assert "waitCursor" not in text("onRunButton")  # a confirmation may come up
    assert "self.controller.poll()" in text("onTimer")
    assert "self.controller.bundleChanged" in text("onBundlePathChanged")
    setup = text("setup")
    for forwarded in ("self.controller.cancel", "self.controller.releaseEngine"):
        assert forwarded in setup
    # No event processing where a scene event may be on the stack: only the pip dialog does it.
    users = {n.name for n in ast.walk(TREE) if isinstance(n, ast.FunctionDef) and "processEvents" in ast.unparse(n)}
    assert users == {"installProgress"}
    # Slicer 5.10's pip: a progress dialog names each package and its Cancel stops between them.
    progress = ast.unparse(method(module_class("_PanelView"), "installProgress"))
    assert "QProgressDialog" in progress and "setLabelText" in progress and "requirement" in progress
    assert "return not dialog.wasCanceled" in progress
    # The poll never blocks the GUI thread (neither here nor in the controller's poll).
    from DeepRadScoreSlicerLib import controller

    poll = ast.unparse(next(n for n in ast.walk(ast.parse(Path(controller.__file__).read_text()))
                            if isinstance(n, ast.FunctionDef) and n.name == "poll"))
    assert ".join(timeout" not in poll and "wait(" not in poll and "sleep" not in poll


def test_self_test_returns_with_a_message_instead_of_skipping():
    """Reload and Test calls runTest() directly, where a SkipTest reads as a failure; the list of
    what the features test needs is exactly a features-only Run's."""
    test = module_class("DeepRadScoreTest")
    features = ast.unparse(method(test, "test_FeaturesWithoutBundle"))
    assert not [n for n in ast.walk(TREE) if isinstance(n, ast.Attribute) and n.attr in ("skipTest", "SkipTest")]
    assert "_missingForFeatures" in features and "logging.info(" in features and "return" in features
    assert "except TimeoutError" in features and "self.fail(" in features
    assert "output.radiomicsBackend" in features and "'radiomics: '" in features
    assert "deps.requirements(deps.run_needs(''))" in ast.unparse(method(test, "_missingForFeatures"))
    names = {Requirement(r).name for r, _ in deps.requirements(deps.run_needs(""))}
    assert {"threadpoolctl", "pandas", "PyWavelets", "PyYAML", "scipy", "numpy", "SimpleITK"} <= names
    assert not names & {"torch", "torchvision", "scikit-learn", "skops", "onnxruntime", "safetensors"}
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
    # No build dependency ("NA" in CMake, none in the entry): PyTorch only for bundles without ONNX.
    assert meta["EXTENSION_DEPENDS"] == "NA" and "build_dependencies" not in entry
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
        "from DeepRadScoreSlicerLib import logic as m, controller as c;"
        "assert 'qt' not in sys.modules;"
        "logic = m.DeepRadScoreLogic(); c.DeepRadScoreController(logic).poll();"
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
    """Requirements come from Resources/requirements.txt, by group; >= minimums except the two
    packages a bundle's skops pipelines need; the versions the engine is tested with (pinned in
    requirements/engine.txt, else installed here) satisfy each."""
    groups = deps.pip_requirement_groups()
    assert set(groups) == set(deps.GROUPS) and all(groups.values())
    lines = deps.pip_requirement_lines()
    assert [r for r, source in deps.requirements() if source == deps.PIP] == list(dict.fromkeys(lines))
    pinned = engine_pins()
    exact = set()
    for line in lines:
        requirement = Requirement(line)
        tested = pinned.get(requirement.name.lower()) or deps.installed_version(requirement.name)
        assert requirement.specifier.contains(tested), line
        if any(spec.operator == "==" for spec in requirement.specifier):
            exact.add(requirement.name.lower())
    assert exact == {"scikit-learn", "skops"}
    assert {Requirement(x).name.lower() for x in groups[deps.SKLEARN]} == {"scikit-learn", "skops"}
    assert [Requirement(x).name for x in groups[deps.ONNX]] == ["onnxruntime", "safetensors"]
    names = {Requirement(x).name.lower() for x in groups[deps.FEATURES]}
    # The native radiomics backend's own packages (numpy, SimpleITK: Slicer's) are pip's to
    # install; pyradiomics and its pykwalify/six are not asked for (SlicerRadiomics brings them).
    assert {"pywavelets", "pyyaml", "scipy", "pandas", "threadpoolctl"} <= names
    assert not {Requirement(x).name.lower() for x in lines} & {"pyradiomics", "pykwalify", "six", "torch"}
    assert "pyradiomics" not in {Requirement(r).name.lower() for r, _ in deps.requirements()}
    # torch >= 2.3: the first built for numpy 2 (Slicer's numpy).
    torch = dict((Requirement(r).name, r) for r, _ in deps.requirements())["torch"]
    assert not Requirement(torch).specifier.contains("2.2.2") and Requirement(torch).specifier.contains("2.3.0")


def write_bundle_json(folder: Path, files, backbone="densenet121", inference=True) -> Path:
    """The parts of a bundle.json that decide what a Run installs (as the engine writes them)."""
    folder.mkdir(parents=True, exist_ok=True)
    models = {"EGFR": {"models": {m: {"file": f"EGFR_{m}.skops", "inference_file": f"EGFR_{m}.inference.json"
                                      if inference else ""} for m in ("radiomics", "deep", "fusion")}}}
    (folder / "bundle.json").write_text(json.dumps({"files": {name: "0" * 64 for name in files},
                                                    "deep": {"config": {"backbone": backbone}}, "models": models}))
    return folder


def test_what_a_run_installs_is_decided_from_its_inputs(tmp_path):
    def names(needs):
        return {Requirement(r).name for r, _ in deps.requirements(needs)}

    features = deps.run_needs("")
    assert features.groups == (deps.FEATURES,) and not features.torch
    assert deps.run_needs(None) == deps.run_needs(".") == features
    onnx = deps.run_needs(write_bundle_json(tmp_path / "onnx", ["deep.onnx", "EGFR_fusion.inference.json"]))
    assert onnx.groups == (deps.FEATURES, deps.ONNX) and "torch" not in names(onnx)
    assert {"onnxruntime", "safetensors"} <= names(onnx) and not names(onnx) & {"scikit-learn", "skops", "torch"}
    torch = deps.run_needs(write_bundle_json(tmp_path / "torch", ["deep.safetensors"]))
    assert torch.groups == (deps.FEATURES, deps.TORCH) and not torch.torchvision  # densenet121 is ours
    assert {"torch", "safetensors"} <= names(torch) and "torchvision" not in names(torch)
    resnet = deps.run_needs(write_bundle_json(tmp_path / "resnet", ["deep.safetensors"], backbone="resnet50"))
    assert "torchvision" in names(resnet)
    old = deps.run_needs(write_bundle_json(tmp_path / "format2", ["deep.onnx"], inference=False))
    assert old.groups == (deps.FEATURES, deps.ONNX, deps.SKLEARN) and {"scikit-learn", "skops"} <= names(old)
    from DeepRadScoreLib.errors import InputError

    with pytest.raises(InputError, match="not a DeepRadScore bundle"):
        deps.run_needs(tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "bundle.json").write_text("{")
    with pytest.raises(InputError, match="bundle.json: not valid JSON"):
        deps.run_needs(tmp_path / "bad")
    # The confirmation says whether PyTorch comes, and how big.
    missing = deps.missing_requirements(deps.requirements(torch), version_of={}.get)
    assert "PyTorch extension: about 1 GB" in deps.confirmation_text(missing)
    missing = deps.missing_requirements(deps.requirements(onnx), version_of={"numpy": "2.0.2", "SimpleITK": "2.4.0"}.get)
    assert "PyTorch is not needed" in deps.confirmation_text(missing)


def test_an_intel_mac_is_told_what_to_do_for_a_torch_bundle():
    torch = deps.RunNeeds((deps.FEATURES, deps.TORCH))
    message = deps.torch_platform_problem(torch, "Darwin", "x86_64", version_of={}.get)
    assert "Intel" in message and "ONNX" in message
    assert deps.torch_platform_problem(torch, "Darwin", "arm64", version_of={}.get) is None
    assert deps.torch_platform_problem(torch, "Windows", "AMD64", version_of={}.get) is None
    onnx = deps.RunNeeds((deps.FEATURES, deps.ONNX))
    assert deps.torch_platform_problem(onnx, "Darwin", "x86_64", version_of={}.get) is None
    assert deps.torch_platform_problem(torch, "Darwin", "x86_64", version_of={"torch": "2.2.2"}.get) == message


def test_a_bad_pyradiomics_falls_back_to_native_with_one_warning():
    for version in ("2.2.0", "not-a-version"):
        backend, warning = deps.radiomics_choice("auto", version_of={"pyradiomics": version}.get)
        assert backend == "native" and warning.count("\n") == 0 and version in warning
        assert "native backend" in warning
    assert deps.radiomics_choice("auto", version_of={"pyradiomics": "3.0.1a1"}.get) == ("auto", "")
    assert deps.radiomics_choice("auto", version_of={}.get) == ("auto", "")
    assert deps.radiomics_choice("pyradiomics", version_of={"pyradiomics": "2.2.0"}.get) == ("pyradiomics", "")


def test_missing_requirements_accept_what_slicer_and_its_extensions_ship():
    installed = {"torch": "2.4.1+cu121", "torchvision": None, "pyradiomics": "3.0.1a1", "scipy": "1.13.1",
                 "pandas": "2.2.0", "scikit-learn": "1.9.1", "skops": "0.16.0", "safetensors": "0.8.0",
                 "PyWavelets": "1.6.0", "PyYAML": "6.0.1", "threadpoolctl": "3.5.0", "onnxruntime": "1.20.1",
                 "numpy": "2.0.2", "SimpleITK": "2.4.0"}
    missing = deps.missing_requirements(version_of=installed.get)
    # SlicerRadiomics' PyWavelets, Slicer 5.10's scipy: accepted.
    assert [m.name for m in missing] == ["torchvision"]
    assert deps.torch_requirements(missing) == {"torch": None, "torchvision": ">=0.18"}
    assert deps.unresolvable(missing) == []
    assert "torchvision>=0.18 (not installed; from PyTorch extension)" in deps.confirmation_text(missing)
    old_sklearn = deps.missing_requirements(version_of={**installed, "scikit-learn": "1.5.0"}.get)
    assert deps.pip_requirements(old_sklearn) == ["scikit-learn==1.9.1"]
    # A too old scipy belongs to Slicer: reported, never replaced.
    old_scipy = deps.missing_requirements(version_of={**installed, "scipy": "1.9.0"}.get)
    assert [m.name for m in deps.unresolvable(old_scipy)] == ["scipy"]
    # No pyradiomics (no SlicerRadiomics, e.g. macOS) and an old one are no requirement at all.
    for radiomics in (None, "2.2.0"):
        assert [m.name for m in deps.missing_requirements(version_of={**installed, "pyradiomics": radiomics}.get)] \
            == ["torchvision"]
    # ... but PyYAML, which only the native backend needs, is pip's to install.
    no_yaml = deps.missing_requirements(version_of={**installed, "pyradiomics": None, "PyYAML": None}.get)
    assert deps.pip_requirements(no_yaml) == ["PyYAML>=6.0"]
    # An old torch (2.2: numpy 1) is to be replaced through the PyTorch extension.
    old_torch = deps.missing_requirements(version_of={**installed, "torch": "2.2.2", "torchvision": "0.17.2"}.get)
    assert deps.torch_requirements(old_torch) == {"torch": ">=2.3", "torchvision": ">=0.18"}


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
    # The module no longer needs the SlicerRadiomics extension to be built or installed.
    assert "SlicerRadiomics" not in cmake_metadata()["EXTENSION_DEPENDS"]
    assert "SlicerRadiomics" not in json.loads((ROOT / "DeepRadScore.json").read_text()).get("build_dependencies", [])


def test_constraints_hold_every_installed_package_except_those_being_installed():
    installed = {"numpy": "2.0.2", "scipy": "1.13.1", "simpleitk": "2.4.0", "pywavelets": "1.6.0",
                 "scikit-learn": "1.5.0"}
    lines = deps.constraints_text(installed, upgrading=["scikit-learn"]).splitlines()[1:]
    assert lines == ["numpy==2.0.2", "pywavelets==1.6.0", "scipy==1.13.1", "simpleitk==2.4.0"]
    here = deps.constraints_text().splitlines()
    assert f"numpy=={deps.installed_version('numpy')}" in here


def test_supported_slicer_range():
    """Slicer 5.10 and later; stated in the README, CMake and the help text."""
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


def test_pip_installs_one_package_at_a_time_under_the_constraints_and_can_be_cancelled():
    """Slicer 5.10's path, run with the real pip (``--dry-run``, offline: every package named is
    installed here): each package is its own pip call under the constraints file, the progress
    callback names it first, and a cancel stops before the next one."""
    from DeepRadScoreSlicerLib.logic import DeepRadScoreLogic

    calls, seen = [], []

    def pip_install(args):
        constraints = Path(args[args.index("-c") + 1])
        assert f"numpy=={deps.installed_version('numpy')}" in constraints.read_text().splitlines()
        done = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--no-index",
                               "--disable-pip-version-check", *args], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
        calls.append((args[0], constraints))

    def progress(index, count, requirement):
        seen.append((index, count, requirement))
        return True

    logic = DeepRadScoreLogic()
    assert logic._pipInstall(["PyYAML>=6.0", "threadpoolctl>=3.1"], progress, pip_install) is True
    assert [c[0] for c in calls] == ["PyYAML>=6.0", "threadpoolctl>=3.1"]
    assert seen == [(0, 2, "PyYAML>=6.0"), (1, 2, "threadpoolctl>=3.1"), (2, 2, "")]
    assert not calls[0][1].exists()  # the constraints folder is removed afterwards
    calls.clear()
    assert logic._pipInstall(["PyYAML>=6.0", "threadpoolctl>=3.1"], lambda i, n, r: i == 0, pip_install) is False
    assert [c[0] for c in calls] == ["PyYAML>=6.0"]  # cancelled before the second package


def test_slicer_5_12_and_torch_installs_use_slicers_helpers():
    """Slicer 5.12's pip_ensure (its own dialog) and the PyTorch extension cannot run here:
    read the code."""
    tree = ast.parse(LOGIC_SOURCE)
    pip = ast.unparse(next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "_pipInstall"))
    assert "constraints=constraints" in pip and "prompt_install=False" in pip
    torch = ast.unparse(next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "_installTorch"))
    assert torch.index("torchInstalled()") < torch.index("torchLogic.installTorch(")
    assert "askConfirmation=False" in torch


def test_slicer_lib_has_no_command_line():
    """The worker gets a typed request: no argv, no argparse anywhere in DeepRadScoreSlicerLib."""
    for path in (MODULE / "DeepRadScoreSlicerLib").glob("*.py"):
        text = path.read_text()
        assert "argparse" not in text and "sys.argv" not in text, path.name


def test_windows_process_handling_is_in_place():
    """Windows (cannot run here): hidden console, tree kill, UTF-8."""
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
