"""dvc.yaml's dependencies are true: `dvc repro` re-runs a stage whenever code or params it runs change.

For each stage, the import closure of its ``pipelines/*.py`` script inside ``shiftkit/`` is computed
statically with ``ast`` (imports inside functions included, packages resolved from the file system,
so ``shiftkit.synth`` may be a module or a package); every module in it, and every package data file
those modules name, must be covered by a dep (a dep on a folder covers everything below it).
Params are listed by key: keys that exist, never a speed-only key (``config.speed_only_keys``),
and every other key of the stage's own section (the section named like its script).
"""

from __future__ import annotations

import ast
import copy
import functools
import shlex
from pathlib import Path

import pytest
import yaml

from shiftkit import params as config

ROOT = Path(__file__).resolve().parents[1]
# inputs a stage reads but must not depend on, and why
NOT_DEPS = {
    # the check reads the splits of earlier drops when present; split runs after check: a cycle
    ("check", "data/splits/splits.parquet"),
}
OUTPUT_FLAGS = {"--out", "--live", "-o"}


# --- the import closure -------------------------------------------------------------------------


def module_file(root: Path, name: str) -> Path | None:
    """The file that runs for module ``name`` under ``root``: a package's __init__.py or a .py file."""
    base = root.joinpath(*name.split("."))
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def _const_str(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


@functools.cache
def parse(path: Path) -> ast.AST:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def imported_names(tree: ast.AST, module: str, is_package: bool):
    """Every dotted name an import statement (anywhere, functions included) or a call of
    ``importlib.import_module`` / ``__import__`` with a literal name may load."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join(package + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)  # a submodule, or just a name
        elif isinstance(node, ast.Call) and node.args and _const_str(node.args[0]):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("import_module", "__import__"):
                yield _const_str(node.args[0])


def import_closure(root: Path, script: Path, package: str = "shiftkit") -> set[Path]:
    """Files of ``package`` under ``root`` that running ``script`` may execute."""
    seen: dict[str, Path] = {}
    todo = [(script, "__main__", False)]
    while todo:
        path, module, is_package = todo.pop()
        for dotted in imported_names(parse(path), module, is_package):
            parts = dotted.split(".")
            if parts[0] != package:
                continue
            for i in range(1, len(parts) + 1):  # importing a.b.c runs a, a.b and a.b.c
                name = ".".join(parts[:i])
                found = module_file(root, name)
                if found is not None and name not in seen:
                    seen[name] = found
                    todo.append((found, name, found.name == "__init__.py"))
    return set(seen.values())


def named_data_files(root: Path, modules: set[Path], package: str = "shiftkit") -> set[Path]:
    """Non-Python files inside the package whose name a module of the closure spells out."""
    data = {p for p in (root / package).rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc")}
    strings = set()
    for path in modules:
        strings |= {n.value for n in ast.walk(parse(path))
                    if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    return {p for p in data if p.name in strings}


# --- reading dvc.yaml ---------------------------------------------------------------------------


def stage_scripts(stage: dict) -> list[str]:
    cmds = stage["cmd"] if isinstance(stage["cmd"], list) else [stage["cmd"]]
    return [tok for cmd in cmds for tok in shlex.split(cmd) if tok.startswith("pipelines/") and tok.endswith(".py")]


def stage_inputs(stage: dict) -> list[str]:
    """Repository paths the command reads (arguments under data/ or models*, not after an output flag)."""
    cmds = stage["cmd"] if isinstance(stage["cmd"], list) else [stage["cmd"]]
    inputs = []
    for cmd in cmds:
        toks = shlex.split(cmd)
        for flag, value in zip(toks[:-1], toks[1:], strict=True):
            if flag.startswith("-") and flag not in OUTPUT_FLAGS and value.startswith(("data/", "models")):
                inputs.append(value)
    return inputs


def covers(dep: str, path: str) -> bool:
    dep = dep.rstrip("/")
    return path == dep or path.startswith(dep + "/")


@functools.cache
def script_needs(root: Path, script: str) -> frozenset[str]:
    """Repository paths of the package's modules and data files that running ``script`` uses."""
    modules = import_closure(root, root / script)
    return frozenset(p.relative_to(root).as_posix() for p in modules | named_data_files(root, modules))


def missing_deps(dvc: dict, root: Path = ROOT) -> dict[str, list[str]]:
    """Per stage, what runs or is read but is not covered by a dep."""
    problems = {}
    for name, stage in dvc["stages"].items():
        deps = [d if isinstance(d, str) else next(iter(d)) for d in stage.get("deps", [])]
        needed = set()
        for script in stage_scripts(stage):
            needed |= {script, *script_needs(root, script)}
        needed |= {p for p in stage_inputs(stage) if (name, p) not in NOT_DEPS}
        missing = sorted(p for p in needed if not any(covers(d, p) for d in deps))
        if missing:
            problems[name] = missing
    return problems


def params_problems(dvc: dict, params: dict) -> list[str]:
    """Listed keys that do not exist or only change speed; own-section keys not listed."""
    problems = []
    for name, stage in dvc["stages"].items():
        listed = []
        for entry in stage.get("params", []):
            listed += [entry] if isinstance(entry, str) else [k for keys in entry.values() for k in keys]
        for key in listed:
            section, _, field = key.partition(".")
            if not field:
                problems.append(f"{name}: {key} is a whole section; list its keys (speed-only ones left out)")
            elif field not in params.get(section, {}):
                problems.append(f"{name}: {key} is not in params.yaml")
            elif field in config.speed_only_keys(section):
                problems.append(f"{name}: {key} only changes speed; listing it re-runs the stage for nothing")
        for script in stage_scripts(stage):
            own = Path(script).stem
            if own in config.section_names():
                wanted = {f"{own}.{k}" for k in params[own] if k not in config.speed_only_keys(own)}
                problems += [f"{name}: {k} is used but not listed" for k in sorted(wanted - set(listed))]
    return problems


# --- the tests ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dvc() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def params() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))


def test_every_module_a_stage_runs_is_a_dependency(dvc):
    assert missing_deps(dvc) == {}


def test_every_listed_param_exists_and_changes_results(dvc, params):
    assert params_problems(dvc, params) == []


def test_the_closure_sees_what_runs():
    closure = {p.relative_to(ROOT).as_posix() for p in import_closure(ROOT, ROOT / "pipelines/learning_curve.py")}
    synth = module_file(ROOT, "shiftkit.synth").relative_to(ROOT).as_posix()  # a module or a package
    wanted = {"shiftkit/__init__.py", "shiftkit/core/config.py", "shiftkit/core/files.py", "shiftkit/training/train.py"}
    assert wanted | {synth} <= closure
    example = import_closure(ROOT, ROOT / "pipelines/example.py")
    named = {p.relative_to(ROOT).as_posix() for p in named_data_files(ROOT, example)}
    assert "shiftkit/ingest/data/mnist_subset.npz" in named


def test_the_closure_follows_lazy_relative_and_package_imports(tmp_path):
    files = {
        "pipelines/run.py": "def main():\n    from pkg.stage import go\n",
        "pkg/__init__.py": "",
        "pkg/stage.py": "import os\nfrom . import helpers\ndef go():\n    from .sub import deep\n",
        "pkg/helpers.py": "X = 1\n",
        "pkg/sub/__init__.py": "from .inner import thing\n",
        "pkg/sub/inner.py": "import importlib\nimportlib.import_module('pkg.plugin')\n",
        "pkg/sub/deep.py": "",
        "pkg/plugin.py": "",
        "pkg/unused.py": "",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    closure = import_closure(tmp_path, tmp_path / "pipelines/run.py", "pkg")
    closure = {p.relative_to(tmp_path).as_posix() for p in closure}
    assert closure == {rel for rel in files if rel.startswith("pkg/") and rel != "pkg/unused.py"}


def test_a_trimmed_dvc_yaml_fails(dvc, params):
    trimmed = copy.deepcopy(dvc)
    web = trimmed["stages"]["curve_web"]
    used = sorted(script_needs(ROOT, "pipelines/learning_curve.py"))
    # the package as a whole replaced by what the stage uses, less the evaluate code it runs
    kept = [m for m in used if m != "shiftkit/training/evaluate.py"]
    web["deps"] = [d for d in web["deps"] if d != "shiftkit"] + kept
    trimmed["stages"]["curve_evaluate"]["deps"].remove("pipelines/learning_curve.py")
    trimmed["stages"]["report"]["deps"].remove("data/synth/synth.parquet")
    assert missing_deps(trimmed) == {
        "curve_web": ["shiftkit/training/evaluate.py"],
        "curve_evaluate": ["pipelines/learning_curve.py"],
        "report": ["data/synth/synth.parquet"],
    }
    # a stage whose script is named after its params section must list every key of it that changes results
    train_keys = [k for k in web["params"] if k.startswith("train.")]
    trimmed["stages"]["train"] = {
        "cmd": "python pipelines/train.py --out models",
        "deps": ["pipelines/train.py", "shiftkit"],
        "params": [k for k in train_keys if k != "train.seed"] + ["train.workers", "train.nope", "split"],
    }
    assert params_problems(trimmed, params) == [
        "train: train.workers only changes speed; listing it re-runs the stage for nothing",
        "train: train.nope is not in params.yaml",
        "train: split is a whole section; list its keys (speed-only ones left out)",
        "train: train.seed is used but not listed",
    ]
