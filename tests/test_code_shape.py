"""Every function in shiftkit/ fits in one's head: at most 80 lines (docstring included) and at most
8 positional parameters. Typer command functions (decorated with ``@app.command``) are excepted from
the parameter count: their parameters are the command's options. Every module stays within 600 lines."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 80
MAX_POSITIONAL = 8
MAX_MODULE_LINES = 600  # a module a newcomer can read in one sitting; split larger ones at their seams


def _is_typer_command(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    for deco in fn.decorator_list:
        target = deco.func if isinstance(deco, ast.Call) else deco
        if isinstance(target, ast.Attribute) and target.attr == "command" and getattr(target.value, "id", "") == "app":
            return True
    return fn.name.endswith("_command") and bool(fn.args.defaults) and all(
        _is_option(d) for d in fn.args.defaults
    )  # a plain command function that cli/app.py registers (cli/gate.py, cli/select.py): options only


def _is_option(node: ast.expr) -> bool:
    """A typer.Option(...) / typer.Argument(...) default, or a shared one named *_OPTION."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return node.func.attr in ("Option", "Argument") and getattr(node.func.value, "id", "") == "typer"
    return isinstance(node, ast.Name) and node.id.endswith("_OPTION")


def _positional(fn: ast.FunctionDef | ast.AsyncFunctionDef, in_class: bool) -> int:
    names = [a.arg for a in fn.args.posonlyargs + fn.args.args]
    if in_class and names and names[0] in ("self", "cls"):
        names = names[1:]
    return len(names)


def functions(source: str, filename: str = "<string>"):
    """(name, line, length in lines, positional parameters, is a typer command) of every function."""
    tree = ast.parse(source, filename=filename)
    classes = {id(node) for cls in ast.walk(tree) if isinstance(cls, ast.ClassDef) for node in cls.body}
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            yield node.name, node.lineno, length, _positional(node, id(node) in classes), _is_typer_command(node)


def offenders() -> tuple[list[str], list[str]]:
    too_long, too_many = [], []
    for path in sorted((ROOT / "shiftkit").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        for name, line, length, positional, command in functions(path.read_text(encoding="utf-8"), rel):
            if length > MAX_LINES:
                too_long.append(f"{rel}:{line} {name} ({length} lines)")
            if positional > MAX_POSITIONAL and not command:
                too_many.append(f"{rel}:{line} {name} ({positional} positional parameters)")
    return too_long, too_many


def test_the_checker_sees_long_functions_and_positional_parameters():
    body = "\n".join(f"    x{i} = {i}" for i in range(80))
    source = (
        f"def long(a):\n{body}\n\n"
        "def wide(a, b, c, d, e, f, g, h, i, *, j=1):\n    pass\n\n"
        "class C:\n    def method(self, a, b, c, d, e, f, g, h):\n        pass\n\n"
        "@app.command('x')\ndef x_command(a, b, c, d, e, f, g, h, i, j):\n    pass\n\n"
        "def y_command(a=typer.Option(1), b=PARAMS_OPTION, c=typer.Argument(None), d=typer.Option(2),"
        " e=typer.Option(3), f=typer.Option(4), g=typer.Option(5), h=typer.Option(6), i=typer.Option(7)):\n    pass\n\n"
        "def z_command(a=1, b=typer.Option(1), c=2, d=3, e=4, f=5, g=6, h=7, i=8):\n    pass\n"
    )
    found = {name: (length, positional, command) for name, _, length, positional, command in functions(source)}
    assert found == {
        "long": (81, 1, False),
        "wide": (2, 9, False),
        "method": (2, 8, False),
        "x_command": (2, 10, True),
        "y_command": (2, 9, True),  # a plain command function app.py registers: only options
        "z_command": (2, 9, False),  # a plain default is not an option: counted
    }


def test_no_function_is_longer_than_80_lines():
    too_long, _ = offenders()
    assert too_long == [], "\n".join(too_long)


def test_no_function_takes_more_than_8_positional_parameters():
    _, too_many = offenders()
    assert too_many == [], "\n".join(too_many)


def long_modules(root: Path = ROOT / "shiftkit", limit: int = MAX_MODULE_LINES) -> list[str]:
    """Every module under ``root`` longer than ``limit`` lines."""
    found = []
    for path in sorted(root.rglob("*.py")):
        n = len(path.read_text(encoding="utf-8").splitlines())
        if n > limit:
            found.append(f"{path.relative_to(root.parent).as_posix()} ({n} lines)")
    return found


def test_no_module_is_longer_than_600_lines(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "big.py").write_text("x = 1\n" * 601)
    (tmp_path / "pkg" / "fits.py").write_text("x = 1\n" * 600)
    assert long_modules(tmp_path / "pkg") == ["pkg/big.py (601 lines)"]  # the check can fail
    assert long_modules() == []
