"""The import order of shiftkit's packages, enforced: a package imports only packages before it in
``ORDER`` (or in its own group), and no two modules import each other in a cycle, imports inside
functions included. docs/architecture.md section 2 shows the same order.

Computed statically with ``ast`` over every ``import`` / ``from ... import`` statement (module level,
inside functions and under ``TYPE_CHECKING`` alike), so a deferred import cannot hide a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "shiftkit"

# Lower groups first. A package may import its own group and every group before it, never after.
ORDER: tuple[frozenset[str], ...] = tuple(
    frozenset(group.split())
    for group in (
        "core",
        "runtime images stats",
        "ingest",
        "check",
        "splits",
        "synth",
        "training",
        "shift report select",
        "curve",
        "cli",
    )
)
# Outside the order: the top-level package (version, error names; imports core only) and the
# assembly of every params section (imported by the entry points and tests, by no package).
TOP_LEVEL = {"shiftkit", "shiftkit.__main__", "shiftkit.params"}
ENTRY_PACKAGES = ("cli",)  # the command line reads params files, as pipelines/ does


def rank(package: str) -> int:
    for i, group in enumerate(ORDER):
        if package in group:
            return i
    raise AssertionError(f"shiftkit.{package} is not in tests/test_layers.py's ORDER: place it there")


def modules(root: Path = PACKAGE) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file under ``root`` (packages by their __init__)."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _resolve(node: ast.ImportFrom, name: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = name.split(".") if is_package else name.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The shiftkit modules that ``name`` imports anywhere in its source."""
    found: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            mod = _resolve(node, name, path.name == "__init__.py")
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in known else mod for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name:
                found.add(t)
    return found


def graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    mods = modules(root)
    return {name: imports(name, path, set(mods)) for name, path in mods.items()}


def _package(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and module not in TOP_LEVEL else None


def order_violations(g: dict[str, set[str]]) -> list[str]:
    bad = []
    for src, targets in sorted(g.items()):
        sp = _package(src)
        for dst in sorted(targets):
            dp = _package(dst)
            if dst == "shiftkit.params" and sp not in (None, *ENTRY_PACKAGES):
                bad.append(f"{src} imports {dst} (the params assembly is for entry points only)")
            elif dst in TOP_LEVEL or sp is None or dp is None or sp == dp:
                continue
            elif rank(dp) > rank(sp):
                bad.append(f"{src} imports {dst}: {sp} is below {dp} in the order")
    return bad


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), plus self-loops."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "shiftkit"
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


def test_every_package_imports_only_packages_before_it():
    assert order_violations(graph()) == []


def test_no_import_cycles_deferred_imports_included():
    assert cycles(graph()) == []


def test_every_package_is_placed_in_the_order():
    for path in PACKAGE.iterdir():
        if path.is_dir() and (path / "__init__.py").is_file():
            rank(path.name)


def test_the_checks_catch_an_upward_import_and_a_deferred_cycle(tmp_path):
    """The two checks can fail: a core module importing curve, and a cycle hidden in a function."""
    root = _tree(tmp_path, {
        "__init__.py": "",
        "core/__init__.py": "",
        "core/files.py": "def f():\n    from shiftkit.curve.stage import x\n",
        "curve/__init__.py": "",
        "curve/stage.py": "from shiftkit.core import files\nfrom shiftkit.curve import worth\n",
        "curve/worth.py": "def g():\n    from shiftkit.curve import stage\n",
    })
    g = graph(root)
    assert order_violations(g) == ["shiftkit.core.files imports shiftkit.curve.stage: core is below curve in the order"]
    # core.files -> curve.stage -> core.files and curve.stage -> curve.worth -> curve.stage: one knot
    assert cycles(g) == [["shiftkit.core.files", "shiftkit.curve.stage", "shiftkit.curve.worth"]]
