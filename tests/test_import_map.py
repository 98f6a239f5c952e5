"""The import map: stages in order, no circle, the loader's private modules kept private, modules of one job.

Every ``import`` statement of ``builder`` and ``optsteps_loader`` counts, lazy ones (inside functions)
included: a lazy import is still a dependency, only a later one. The stages, lowest first:

    optsteps_loader (and builder.kernels)  <  solve  <  select  <  registry  <  calibrate  <  cli

A module may import its own stage or a lower one. The builder imports the loader through its public modules
only (those whose names do not start with ``_``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("builder", "optsteps_loader")
MAX_LINES = 400
# the stage of each module, by the longest prefix of its dotted name that is listed
STAGES = {
    "optsteps_loader": 0,
    "builder": 0,  # the package itself (its version); a module not listed below falls here too
    "builder.kernels": 0,  # the pinned numerical kernels and thread limits: imports nothing of the project
    "builder.solve": 1,
    "builder.select": 2,
    "builder.registry": 3,
    "builder.calibrate": 4,
    "builder.profiles": 4,  # profile entries on demand: a registry folder, as calibrate writes one
    "builder.cli": 5,  # the entry points over everything: commands, `python -m builder`, the demo
    "builder.__main__": 5,
    "builder.demo": 5,
}


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


MODULES = _modules()


def _targets(module: str, path: Path, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The project modules an import statement loads (a name imported from a package counts as its module
    when it is one, else as the package)."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        base = node.module or ""
        if node.level:  # relative: against the module's package (a package's own __init__ is in it)
            package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
            base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
    out = []
    for name in names:
        while name not in MODULES and "." in name:
            name = name.rsplit(".", 1)[0]
        if name in MODULES and name != module:
            out.append(name)
    return out


def _edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {m: set() for m in MODULES}
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import | ast.ImportFrom):
                edges[module].update(_targets(module, path, node))
    return edges


EDGES = _edges()


def _stage(module: str) -> int:
    prefix = max((p for p in STAGES if module == p or module.startswith(p + ".")), key=len)
    return STAGES[prefix]


def test_the_map_is_read():
    """The map sees what it must: lazy imports, relative imports, and the builder's use of the loader."""
    assert "builder.solve.schedules" in EDGES["builder.select.selection"]
    assert "optsteps_loader.coefficients" in EDGES["builder.solve.optimize"]
    assert "builder.select.robust" in EDGES["builder.registry.sweep.chains"]  # imported inside a function
    assert "optsteps_loader.reader" in EDGES["optsteps_loader._api"]


def test_no_import_runs_from_a_lower_stage_to_a_higher_one():
    upward = [
        f"{m} (stage {_stage(m)}) imports {t} (stage {_stage(t)})"
        for m, targets in EDGES.items()
        for t in targets
        if _stage(t) > _stage(m)
    ]
    assert upward == []


def test_the_builder_imports_only_the_loaders_public_modules():
    private = [
        f"{m} imports {t}"
        for m, targets in EDGES.items()
        if m.startswith("builder")
        for t in targets
        if t.startswith("optsteps_loader.") and any(part.startswith("_") for part in t.split(".")[1:])
    ]
    assert private == []


def test_no_circle():
    """No module reaches itself through imports (Tarjan's strongly connected components)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(EDGES[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in sorted(EDGES):
        if v not in index:
            visit(v)
    assert circles == []


@pytest.mark.parametrize("folder", [*PACKAGES, "benchmarks"])
def test_no_module_over_400_lines(folder):
    long = {
        str(p.relative_to(ROOT)): n
        for p in (ROOT / folder).rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


@pytest.mark.parametrize("folder", ["benchmarks", "tests"])
def test_no_script_edits_sys_path(folder):
    """Benchmarks and tests import the project as installed (the editable install puts the checkout on
    sys.path; `benchmarks` is a package), never by inserting folders into sys.path."""
    edits = [
        f"{p.relative_to(ROOT)}:{node.lineno}"
        for p in sorted((ROOT / folder).rglob("*.py"))
        for node in ast.walk(ast.parse(p.read_text()))
        if isinstance(node, ast.Attribute)
        and node.attr in ("insert", "append", "extend")
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "path"
        and isinstance(node.value.value, ast.Name)
        and node.value.value.id == "sys"
    ]
    assert edits == []
