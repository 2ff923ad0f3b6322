"""The layout's rules, checked on the source: rooms with one job each, a one-way flow, no import
cycle, prediction free of training code, model/ and evaluation/ starting no extraction or
training, no Slicer/Qt in the engine, no Qt and no argparse in the Slicer library, argparse only
in the command line, no code run at import, one default and one range for the ring thickness,
no file over 600 lines.

These read the code with ``ast`` (every import, also those inside functions), so a rule broken in
a lazily imported corner fails here as well.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MODULE_DIR = ROOT / "DeepRadScore"
ENGINE = MODULE_DIR / "DeepRadScoreLib"
SLICER_LIB = MODULE_DIR / "DeepRadScoreSlicerLib"
MAX_LINES = 600

# Rooms from the bottom up: a module may import its own room and the rooms below it, never above.
RANKS = {
    "DeepRadScoreLib": 0, "errors": 0, "typedjson": 1, "progress": 1, "outputs": 1, "filehash": 1,
    "resources": 1, "processes": 1,
    "io": 2, "regions": 3, "features": 4, "deep": 5, "robustness": 5, "model": 6,
    "evaluation": 7, "synthetic": 7, "pipelines": 8, "cli": 9,
}
# What a prediction (``predict``, the Slicer Logic's worker) runs: it must load without training code.
PREDICTION_ENTRY = {"DeepRadScoreLib.pipelines.case", "DeepRadScoreLib.cli.predict", "DeepRadScoreLib.model.bundle"}
TRAINING_MODULES = {"DeepRadScoreLib.deep.training", "DeepRadScoreLib.model.fitting", "DeepRadScoreLib.pipelines.train"}
# What starts an extraction or a training: only the pipelines (and the command line) may.
STARTERS = {"DeepRadScoreLib.features.extraction", "DeepRadScoreLib.deep.training"}



def module_name(path: Path) -> str:
    parts = list(path.relative_to(MODULE_DIR).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def engine_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(ENGINE.rglob("*.py")) if "__pycache__" not in p.parts}


def slicer_lib_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(SLICER_LIB.glob("*.py"))}


def imports_of(path: Path) -> set[str]:
    """Every module imported anywhere in the file (absolute names; relative ones resolved)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            # ``from pkg import module`` imports that module too
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def engine_graph() -> dict[str, set[str]]:
    modules = engine_modules()
    return {name: {m for m in imports_of(path) if m in modules and m != name} for name, path in modules.items()}


def room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def test_rooms_import_only_downwards():
    upward = [f"{m} imports {d}" for m, deps in engine_graph().items() for d in deps
              if RANKS[room(d)] > RANKS[room(m)] or (room(d) != room(m) and RANKS[room(d)] == RANKS[room(m)]
                                                     and room(m) not in ("DeepRadScoreLib", "errors"))]
    assert upward == []


def test_no_import_cycle():
    graph = engine_graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(node, stack):
        state[node] = 1
        for dep in sorted(graph[node]):
            if dep == "DeepRadScoreLib":
                continue
            if state.get(dep) == 1:
                cycles.append(" -> ".join(stack[stack.index(dep):] + [dep]))
            elif dep not in state:
                visit(dep, stack + [dep])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert cycles == []


def test_prediction_never_imports_training_code():
    graph = engine_graph()
    reached, todo = set(), list(PREDICTION_ENTRY)
    while todo:
        current = todo.pop()
        if current in reached:
            continue
        reached.add(current)
        todo.extend(graph.get(current, ()))
    assert reached & TRAINING_MODULES == set()


def test_model_and_evaluation_start_no_extraction_nor_training():
    offenders = [f"{m} imports {d}" for m, deps in engine_graph().items() if room(m) in ("model", "evaluation")
                 for d in deps & STARTERS]
    assert offenders == []


def test_engine_imports_no_slicer_qt_ctk_and_argparse_only_in_cli():
    offenders = []
    for name, path in engine_modules().items():
        top = {m.split(".")[0] for m in imports_of(path)}
        if top & {"slicer", "qt", "ctk", "vtk", "slicerio_gui", "DeepRadScoreSlicerLib"}:
            offenders.append(f"{name}: {sorted(top & {'slicer', 'qt', 'ctk', 'vtk', 'DeepRadScoreSlicerLib'})}")
        if "argparse" in top and room(name) != "cli":
            offenders.append(f"{name}: argparse outside the command line")
    assert offenders == []


def test_slicer_lib_imports_slicer_but_never_qt_nor_argparse():
    """The Slicer library is the Qt-free Logic (slicer, vtk and MRML are fine; the widget in
    DeepRadScore.py alone knows Qt) and takes typed requests, not command lines."""
    offenders = []
    for name, path in slicer_lib_modules().items():
        top = {m.split(".")[0] for m in imports_of(path)}
        if top & {"qt", "ctk"}:
            offenders.append(f"{name}: {sorted(top & {'qt', 'ctk'})}")
        if "argparse" in top:
            offenders.append(f"{name}: argparse outside the command line")
    assert offenders == []


def import_time_code(path: Path) -> list[str]:
    """The module-level statements of ``path`` that do something when it is imported: anything
    but imports, definitions, assignments (constants, the module logger), docstrings,
    ``if TYPE_CHECKING:`` imports, optional imports and the ``if __name__ == "__main__":`` entry
    point."""
    found = []
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef,
                             ast.Assign, ast.AnnAssign)):
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "__name__ == '__main__'"):
            continue
        if optional_import(node):
            continue
        found.append(f"{path.name}:{node.lineno} {ast.unparse(node).splitlines()[0]}")
    return found


def optional_import(node) -> bool:
    """``try: import x`` / ``except ImportError: x = None``: an optional package, nothing run."""
    return (isinstance(node, ast.Try) and not node.orelse and not node.finalbody
            and all(isinstance(n, (ast.Import, ast.ImportFrom)) for n in node.body)
            and all(ast.unparse(h.type) in ("ImportError", "ModuleNotFoundError") and
                    all(isinstance(n, ast.Assign) and isinstance(n.value, ast.Constant) for n in h.body)
                    for h in node.handlers))


def test_no_code_runs_at_import():
    """No module starts threads, walks stacks, edits sys.path or asserts (``python -O`` strips
    asserts) when imported: module level is definitions and constants."""
    offenders = [line for path in {**engine_modules(), **slicer_lib_modules()}.values()
                 for line in import_time_code(path)]
    assert offenders == []


def thickness_defaults(path: Path) -> list[str]:
    """Where ``path`` defines a default ring thickness: a ``DEFAULT_THICKNESS_MM`` (or the like)
    assigned a number, or a ``thickness`` parameter whose default is a number."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            found += [f"{path.name}:{node.lineno} {t.id}" for t in node.targets
                      if isinstance(t, ast.Name) and "THICKNESS" in t.id and "DEFAULT" in t.id]
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            positional = node.args.posonlyargs + node.args.args
            pairs = list(zip(positional[len(positional) - len(node.args.defaults):], node.args.defaults))
            pairs += [(a, d) for a, d in zip(node.args.kwonlyargs, node.args.kw_defaults) if d is not None]
            found += [f"{path.name}:{node.lineno} {node.name}({a.arg}={d.value})" for a, d in pairs
                      if "thickness" in a.arg.lower() and isinstance(d, ast.Constant)
                      and isinstance(d.value, (int, float))]
    return found


def test_one_default_thickness_and_one_range_check():
    """``features.settings`` defines the default thickness and the one range; nothing else types
    a thickness default or its own bounds."""
    modules = {**engine_modules(), **slicer_lib_modules()}
    found = {name: hits for name, path in modules.items() if (hits := thickness_defaults(path))}
    assert sorted(found) == ["DeepRadScoreLib.features.settings"], found
    assert [hit.split()[-1] for hit in found["DeepRadScoreLib.features.settings"]] == ["DEFAULT_THICKNESS_MM"]
    bounds = [f"{name}: {t.id}" for name, path in modules.items() for node in ast.walk(ast.parse(path.read_text()))
              if isinstance(node, ast.Assign) for t in node.targets
              if isinstance(t, ast.Name) and "THICKNESS" in t.id and ("MAX" in t.id or "MIN" in t.id)]
    assert bounds == ["DeepRadScoreLib.features.settings: MIN_THICKNESS_MM",
                      "DeepRadScoreLib.features.settings: MAX_THICKNESS_MM"]


@pytest.mark.parametrize("folder", ["DeepRadScoreLib", "DeepRadScoreSlicerLib", "."])
def test_no_file_over_600_lines(folder):
    base = MODULE_DIR / folder
    files = base.rglob("*.py") if folder != "." else base.glob("*.py")
    long = {str(p.relative_to(MODULE_DIR)): n for p in files
            if "__pycache__" not in p.parts and (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_no_engine_code_changes_another_librarys_logger():
    offenders = []
    for name, path in engine_modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("setLevel", "addHandler", "removeHandler", "disable", "basicConfig")):
                offenders.append(f"{name}:{node.lineno}")
    assert offenders == []
