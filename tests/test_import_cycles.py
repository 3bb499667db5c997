"""No import cycles in the dbgym package.

1. Every module imports on its own: a child process (one, for speed) forks once per
   module, and each fork imports that one module with no dbgym module loaded yet, so an
   import that only works after another module happened to be loaded first (a circular
   import, ImportError "partially initialized module") fails here.
2. The module-level import graph has no cycle: the imports a module runs when it is
   loaded (top-level statements, also inside top-level `if`/`try`/`with` and class
   bodies, but not under `if TYPE_CHECKING:` nor inside functions), with an edge to every
   package whose __init__ such an import runs. The layout reads as the pipeline: no
   module imports one that imports it back, even where Python would cope.

Both checks are tried on a small package with a cycle, so they are known to catch one.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: Imported before the forks, so each fork starts fast (third-party only: no dbgym module).
PRELOAD = ("numpy", "psycopg", "rich", "typer", "gymnasium", "docker")

DRIVER = r"""
import importlib, json, os, sys, traceback
root, package, preload = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
sys.path.insert(0, root)
for name in preload:
    try:
        importlib.import_module(name)
    except ImportError:
        pass
assert not [m for m in sys.modules if m == package or m.startswith(package + ".")]
failures = {}
for module in json.loads(sys.stdin.read()):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            importlib.import_module(module)
            message = ""
        except BaseException:
            message = traceback.format_exc(limit=-4)
        os.write(w, message.encode())
        os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as pipe:
        message = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    if status and not message:
        message = f"the import ended the process (wait status {status})"
    if message:
        failures[module] = message
print(json.dumps(failures))
"""


def modules_of(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of `package` under `root`."""
    out = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def import_each_alone(root: Path, package: str) -> dict[str, str]:
    """Module -> the traceback of importing it alone (only the modules that failed);
    `__main__` modules are programs, not imported."""
    modules = sorted(m for m in modules_of(root, package) if not m.endswith(".__main__"))
    run = subprocess.run(
        [sys.executable, "-c", DRIVER, str(root), package, json.dumps(PRELOAD)],
        input=json.dumps(modules),
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
        cwd=root,
    )
    failures: dict[str, str] = json.loads(run.stdout)
    return failures


def _is_type_checking(test: ast.expr) -> bool:
    return ast.unparse(test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")


def load_time_imports(tree: ast.Module, module: str, is_package: bool) -> list[str]:
    """Dotted names a module's loading imports (`from a import b` -> a and a.b)."""
    names: list[str] = []
    here = module if is_package else module.rpartition(".")[0]

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.Import):
                names.extend(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = here.split(".")[: len(here.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                names.append(base)
                names.extend(f"{base}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.If):
                if not _is_type_checking(node.test):
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)
                visit(node.orelse)
                visit(node.finalbody)
            elif isinstance(node, ast.With | ast.ClassDef):
                visit(node.body)

    visit(tree.body)
    return names


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """Module -> the package's modules its loading runs (the imported module, and the
    __init__ of each package on the way to it)."""
    files = modules_of(root, package)

    def targets(name: str) -> set[str]:
        while name and name not in files:  # `from a.b import f`: f is a name in a.b
            name = name.rpartition(".")[0]
        parts = name.split(".") if name else []
        return {".".join(parts[:i]) for i in range(1, len(parts) + 1)}

    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        tree = ast.parse(path.read_text(), str(path))
        edges: set[str] = set()
        for name in load_time_imports(tree, module, path.name == "__init__.py"):
            edges |= targets(name)
        edges.discard(module)
        # a module's own packages are loaded before it: not an edge it adds
        edges -= {module.rsplit(".", i)[0] for i in range(1, module.count(".") + 1)}
        graph[module] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
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
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


# -- the checks on dbgym ------------------------------------------------------------------


def test_every_dbgym_module_imports_alone() -> None:
    assert len(modules_of(ROOT, "dbgym")) > 40
    failures = import_each_alone(ROOT, "dbgym")
    assert failures == {}, "\n".join(f"{m}:\n{tb}" for m, tb in failures.items())


def test_the_module_level_import_graph_has_no_cycle() -> None:
    graph = import_graph(ROOT, "dbgym")
    assert graph["dbgym.replayer.run"] >= {"dbgym.errors", "dbgym.types"}  # edges are seen
    assert cycles(graph) == []


# -- the checks catch a cycle -------------------------------------------------------------


def write_package(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def test_the_checks_catch_a_circular_import(tmp_path: Path) -> None:
    write_package(
        tmp_path,
        {
            "cyc/__init__.py": "",
            # each needs the other's name at load time: importing b first works (b defines
            # B before it imports a), importing a first fails (a's A is not defined yet)
            "cyc/a.py": "from cyc.b import B\nA = 1\n",
            "cyc/b.py": "B = 2\nfrom cyc.a import A\n",
            "cyc/c.py": "import typing\nif typing.TYPE_CHECKING:\n    from cyc import a\n",
            "cyc/d.py": "def f():\n    from cyc import a\n",
        },
    )
    failures = import_each_alone(tmp_path, "cyc")
    assert set(failures) == {"cyc.a"}, failures  # a -> b -> a (partially initialized)
    assert "partially initialized module" in failures["cyc.a"]
    graph = import_graph(tmp_path, "cyc")
    assert graph["cyc.c"] == set() and graph["cyc.d"] == set()  # TYPE_CHECKING, function
    assert cycles(graph) == [["cyc.a", "cyc.b"]]


def test_a_package_init_that_imports_back_is_a_cycle(tmp_path: Path) -> None:
    write_package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/sub/__init__.py": "from pkg.sub.impl import thing\n",
            "pkg/sub/impl.py": "import pkg.other\nthing = 1\n",
            "pkg/other.py": "from pkg.sub.impl import thing\n",  # runs pkg/sub/__init__
        },
    )
    assert cycles(import_graph(tmp_path, "pkg")) == [["pkg.other", "pkg.sub", "pkg.sub.impl"]]
