"""Measure the shape of the code: the figures the engine's layout is held to.

    python tools/shape_metrics.py [--detail]

Counts, over the application code (analytics/, ui/, pages/, app.py, webapp.py):

- import cycles between modules (strongly connected components of the import graph,
  function-local imports included, since they are run-time edges all the same);
- SQL call sites outside ``analytics/store/`` (calls of anything imported from SQLAlchemy or
  the schema, and ``.execute``/``.scalars``/``.scalar*`` method calls), and the modules that
  hold them;
- functions longer than 80 lines;
- function-local imports;
- modules that define a label or unit table (a top-level ``label``/``unit`` function or a
  top-level ``*LABELS*``/``*UNITS*`` mapping);
- modules directly under ``analytics/``.

Everything is read as text with ``ast``: nothing of the project is imported or run.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("analytics", "ui", "pages")
SCRIPTS = ("app.py", "webapp.py")
LONG_FUNCTION = 80
SQL_METHODS = {"execute", "scalars", "scalar", "scalar_one", "scalar_one_or_none", "query"}
LABEL_FUNCTIONS = {"label", "unit", "label_for", "unit_for", "pretty", "display_name"}


def source_files() -> list[Path]:
    files = [ROOT / s for s in SCRIPTS if (ROOT / s).exists()]
    for package in PACKAGES:
        files.extend(sorted((ROOT / package).rglob("*.py")))
    return [f for f in files if "migrations" not in f.parts]


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def resolve(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    if node.level > 1:
        base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imported_names(module: str, tree: ast.Module, known: set[str], is_package: bool):
    """Yield (target module, node, function-local?) for every import of a project module."""
    parents: dict[ast.AST, ast.AST] = {}
    for parent in ast.walk(tree):
        for child in ast.iter_child_nodes(parent):
            parents[child] = parent

    def local(node: ast.AST) -> bool:
        while node in parents:
            node = parents[node]
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                return True
        return False

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node, local(node)
        elif isinstance(node, ast.ImportFrom):
            base = resolve(module, node, is_package)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                yield (candidate if candidate in known else base), node, local(node)


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    result: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
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
                result.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return result


def sql_sites(tree: ast.Module) -> tuple[int, int]:
    """(SQL expression and execution calls, statement executions) in one module."""
    sql_names: set[str] = set()
    sql_modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module.split(".")[0] == "sqlalchemy" or node.module.endswith("store.schema"):
                sql_names.update(a.asname or a.name for a in node.names)
            if node.module.endswith("store") and any(a.name == "schema" for a in node.names):
                sql_modules.add("schema")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "sqlalchemy" or alias.name.endswith("store.schema"):
                    sql_modules.add(alias.asname or alias.name.split(".")[0])
    count = runs = 0
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id in sql_names:
            count += 1
        elif isinstance(func, ast.Attribute):
            root = func
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(root, ast.Name) and (root.id in sql_modules or root.id in sql_names):
                count += 1
            elif func.attr in SQL_METHODS:
                count += 1
                runs += 1
    return count, runs


def _names_columns(value: ast.AST | None) -> bool:
    """A mapping from column names to display text (not an organ-to-label-number map)."""
    if not isinstance(value, ast.Dict) or not value.values:
        return False
    first = value.values[0]
    if isinstance(first, ast.Constant):
        return isinstance(first.value, str)
    return isinstance(first, ast.Tuple)


def label_table(tree: ast.Module) -> bool:
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name in LABEL_FUNCTIONS:
            return True
        targets = []
        if isinstance(node, ast.Assign):
            targets = [t for t in node.targets if isinstance(t, ast.Name)]
            value = node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            targets, value = [node.target], node.value
        for target in targets:
            name = target.id.upper()
            if ("LABEL" in name or "UNIT" in name) and _names_columns(value):
                return True
    return False


def measure() -> dict:
    files = source_files()
    modules = {module_name(f): f for f in files}
    known = set(modules)
    graph: dict[str, set[str]] = defaultdict(set)
    local_imports: list[str] = []
    long_functions: list[tuple[int, str]] = []
    sql: dict[str, int] = {}
    labels: list[str] = []
    local_project: set[str] = set()
    executes: dict[str, int] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        rel = str(path.relative_to(ROOT))
        for target, node, is_local in imported_names(
            name, tree, known, path.name == "__init__.py"
        ):
            if is_local:
                local_imports.append(f"{rel}:{node.lineno}")
                if target.split(".")[0] in PACKAGES:
                    local_project.add(f"{rel}:{node.lineno}")
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                graph[name].add(target)
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > LONG_FUNCTION:
                    long_functions.append((length, f"{rel}:{node.name}"))
        if not rel.startswith("analytics/store/"):
            sites, runs = sql_sites(tree)
            if sites:
                sql[rel] = sites
            if runs:
                executes[rel] = runs
        if label_table(tree):
            labels.append(rel)
    # A package's __init__ importing its own submodules is not a cycle anyone has to read.
    for name in list(graph):
        graph[name] = {t for t in graph[name] if not t.startswith(name + ".")}
    return {
        "cycles": strongly_connected(graph),
        "sql": sql,
        "long_functions": sorted(long_functions, reverse=True),
        "local_imports": sorted(set(local_imports)),
        "local_project_imports": sorted(local_project),
        "executes": executes,
        "label_tables": labels,
        "top_level": sorted(
            p.name for p in (ROOT / "analytics").glob("*.py") if p.name != "__init__.py"
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detail", action="store_true", help="list every site, not only counts")
    args = parser.parse_args(argv)
    m = measure()
    print(f"import cycles: {len(m['cycles'])}")
    for cycle in m["cycles"]:
        print("  " + " <-> ".join(cycle))
    print(f"SQL call sites outside analytics/store: {sum(m['sql'].values())} in {len(m['sql'])} modules")
    if args.detail:
        for rel, n in sorted(m["sql"].items(), key=lambda kv: -kv[1]):
            print(f"  {n:4d} {rel}")
    print(f"  of which statement executions (.execute/.scalars/.scalar*): {sum(m['executes'].values())}")
    print(f"functions over {LONG_FUNCTION} lines: {len(m['long_functions'])}")
    if args.detail:
        for length, where in m["long_functions"]:
            print(f"  {length:4d} {where}")
    print(
        f"function-local import statements: {len(m['local_imports'])}"
        f" (of project modules: {len(m['local_project_imports'])})"
    )
    if args.detail:
        for where in m["local_project_imports"]:
            print(f"  {where}")
    print(f"label/unit tables: {len(m['label_tables'])}")
    for rel in m["label_tables"]:
        print(f"  {rel}")
    print(f"modules directly under analytics/: {len(m['top_level'])}")
    if args.detail:
        print("  " + " ".join(m["top_level"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
