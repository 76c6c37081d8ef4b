"""The engine, evolution and store layers never import Qt (they must run headless and in workers)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QT_FREE = [
    "app/engine",
    "app/evolve",
    "app/store",
    "app/scoring",
    "app/cloud",
    "app/suggest",
    "app/knowledge",
    "app/local_server",
]


def qt_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        found += [
            f"{path}:{node.lineno} {n}"
            for n in names
            if n.split(".")[0] in {"PySide6", "PyQt5", "PyQt6", "shiboken6"}
        ]
    return found


def test_no_qt_import_in_logic_layers() -> None:
    files = [f for d in QT_FREE for f in (ROOT / d).rglob("*.py")]
    assert any("engine" in str(f) for f in files), "the engine package should be scanned"
    offenders = [hit for f in files for hit in qt_imports(f)]
    assert offenders == []


def test_qt_import_detector_catches_an_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from PySide6.QtCore import QObject\n", encoding="utf-8")
    assert qt_imports(bad)


def test_importing_the_engine_loads_no_qt_and_no_torch() -> None:
    code = (
        "import sys, app.engine, app.engine.end_model, app.cli;"
        "bad = [m for m in ('PySide6', 'torch', 'transformers') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def is_type_checking(test: ast.expr) -> bool:
    """``if TYPE_CHECKING:`` or ``if typing.TYPE_CHECKING:``."""
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def module_imports(path: Path, module: str, known: set[str], type_only: bool = False) -> set[str]:
    """The modules of ``known`` that ``path`` (module ``module``) imports, resolved statically.

    Every import that runs counts: at module level and inside functions alike (a function-local,
    lazy import hides a cycle from the interpreter, not from the reader). Imports under
    ``if TYPE_CHECKING:`` never run and count only with ``type_only``: a part annotated with the
    type of the window it belongs to is allowed for now. ``from a.b import c`` names the module
    ``a.b.c`` when there is one, else ``a.b``; a package's ``__init__``, run implicitly as the
    parent of an imported module, is not counted.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found: set[str] = set()
    todo: list[ast.AST] = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If) and is_type_checking(node.test) and not type_only:
            todo += node.orelse
            continue
        todo += ast.iter_child_nodes(node)
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in known}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                if submodule in known:
                    found.add(submodule)
                elif source in known:
                    found.add(source)
    found.discard(module)
    return found


def import_cycles(root: Path, package: str = "app", type_only: bool = False) -> list[list[str]]:
    """Every set of modules under ``root/package`` that import each other in a ring (strongly
    connected components of the import graph with more than one module), each sorted."""
    files = sorted((root / package).rglob("*.py"))

    def name(path: Path) -> str:
        parts = list(path.relative_to(root).with_suffix("").parts)
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

    known = {name(f) for f in files}
    graph = {name(f): module_imports(f, name(f), known, type_only) for f in files}
    # Tarjan's algorithm, iterative (no recursion limit on a deep import chain).
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                ring = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    ring.append(member)
                    if member == node:
                        break
                if len(ring) > 1:
                    cycles.append(sorted(ring))
    return sorted(cycles)


def test_no_import_cycle_between_app_modules() -> None:
    """Imports run one way (e.g. features ← numpy matcher ← torch trainer): no two files of
    ``app`` import each other, directly or around a ring, counting function-local imports too
    (annotation-only imports under ``if TYPE_CHECKING:`` are not counted: see module_imports)."""
    assert import_cycles(ROOT) == []


def test_the_cycle_finder_finds_a_ring_and_a_lazy_pair(tmp_path: Path) -> None:
    pkg = tmp_path / "app"
    (pkg / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "",
        "a.py": "from app.b import thing\n",
        "b.py": "from . import c\n",
        "c.py": "import app.a\n",
        "d.py": "def later():\n    from app.sub import e\n",
        "sub/__init__.py": "",
        "sub/e.py": "from ..d import later\n",
        "f.py": "from app.sub import e\nfrom app import a\n",  # imports into rings, in none
        "g.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from app.h import H\n",
        "h.py": "from app import g\n",
    }
    for rel, text in files.items():
        (pkg / rel).write_text(text, encoding="utf-8")
    assert import_cycles(tmp_path) == [["app.a", "app.b", "app.c"], ["app.d", "app.sub.e"]]
    assert ["app.g", "app.h"] in import_cycles(tmp_path, type_only=True)


# Queries live in the store (app/store's repository mixins, by domain); the rest of the app calls
# them by name. A type (Session), the errors and the URL parser may be imported elsewhere.
QUERIES_ALLOWED_IN = ("app/store/",)
SQLALCHEMY_OUTSIDE_THE_STORE = {
    "sqlalchemy": {"make_url", "exc"},
    "sqlalchemy.orm": {"Session"},
    "sqlalchemy.exc": None,
}


def sqlalchemy_imports(path: Path) -> list[str]:
    """``file:line name`` of each SQLAlchemy import other than a Session type or its errors."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [
                f"{path}:{node.lineno} {a.name}"
                for a in node.names
                if a.name.split(".")[0] == "sqlalchemy"
            ]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "sqlalchemy":
            allowed = SQLALCHEMY_OUTSIDE_THE_STORE.get(node.module or "", set())
            found += [
                f"{path}:{node.lineno} {node.module}.{a.name}"
                for a in node.names
                if allowed is not None and a.name not in allowed
            ]
    return found


def test_queries_live_in_the_store() -> None:
    files = [
        f
        for f in (ROOT / "app").rglob("*.py")
        if not f.relative_to(ROOT).as_posix().startswith(QUERIES_ALLOWED_IN)
    ]
    assert any("ui/workspace.py" in str(f) for f in files)
    offenders = [hit for f in files for hit in sqlalchemy_imports(f)]
    assert offenders == [], "add a named query to app/store and call it"


def test_the_query_check_catches_a_select(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from sqlalchemy import func, select\nfrom sqlalchemy.orm import Session\n"
        "from sqlalchemy.exc import IntegrityError\nimport sqlalchemy\n",
        encoding="utf-8",
    )
    hits = [h.split(" ", 1)[1] for h in sqlalchemy_imports(bad)]
    assert hits == ["sqlalchemy.func", "sqlalchemy.select", "sqlalchemy"]
