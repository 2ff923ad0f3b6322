"""The layout's rules, checked on the source (issue 9): rooms with one job each, a one-way flow,
no import cycle, prediction free of training code, no Slicer/Qt in the engine, argparse only in
the command line, no file over 600 lines, a module logger everywhere.

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
MAX_LINES = 600

# Rooms from the bottom up: a module may import its own room and the rooms below it, never above.
RANKS = {
    "DeepRadScoreLib": 0, "errors": 0, "typedjson": 1, "progress": 1, "outputs": 1, "filehash": 1,
    "resources": 1,
    "io": 2, "regions": 3, "features": 4, "deep": 5, "robustness": 5, "model": 6, "analysis": 7,
    "evaluation": 8, "synthetic": 8, "cli": 9,
}
# What a prediction (``predict``, the Slicer Logic's worker) runs: it must load without training code.
PREDICTION_ENTRY = {"DeepRadScoreLib.analysis", "DeepRadScoreLib.cli.predict", "DeepRadScoreLib.model.bundle"}
TRAINING_MODULES = {"DeepRadScoreLib.deep.training", "DeepRadScoreLib.model.training"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(MODULE_DIR).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def engine_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(ENGINE.rglob("*.py")) if "__pycache__" not in p.parts}


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


def test_engine_imports_no_slicer_qt_ctk_and_argparse_only_in_cli():
    offenders = []
    for name, path in engine_modules().items():
        top = {m.split(".")[0] for m in imports_of(path)}
        if top & {"slicer", "qt", "ctk", "vtk", "slicerio_gui"}:
            offenders.append(f"{name}: {sorted(top & {'slicer', 'qt', 'ctk', 'vtk'})}")
        if "argparse" in top and room(name) != "cli":
            offenders.append(f"{name}: argparse outside the command line")
    assert offenders == []


def test_slicer_lib_never_imports_qt():
    lib = MODULE_DIR / "DeepRadScoreSlicerLib"
    offenders = [p.name for p in lib.glob("*.py") if {m.split(".")[0] for m in imports_of(p)} & {"qt", "ctk"}]
    assert offenders == []


@pytest.mark.parametrize("folder", ["DeepRadScoreLib", "DeepRadScoreSlicerLib", "."])
def test_no_file_over_600_lines(folder):
    base = MODULE_DIR / folder
    files = base.rglob("*.py") if folder != "." else base.glob("*.py")
    long = {str(p.relative_to(MODULE_DIR)): n for p in files
            if "__pycache__" not in p.parts and (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_every_engine_module_has_its_own_logger():
    missing = [name for name, path in engine_modules().items()
               if path.name != "__init__.py" and "logger = logging.getLogger(__name__)" not in path.read_text()]
    assert missing == []


def test_no_engine_code_changes_another_librarys_logger():
    offenders = []
    for name, path in engine_modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("setLevel", "addHandler", "removeHandler", "disable", "basicConfig")):
                offenders.append(f"{name}:{node.lineno}")
    assert offenders == []
