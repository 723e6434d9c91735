"""The package layout keeps one direction (docs/ARCHITECTURE.md): every bertkit import, at module level or inside a
function, points from a package to one listed before it, so there are no import cycles between packages."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "bertkit"
# lowest first: a package may import only packages listed before it (and itself)
ORDER = ["files", "errors", "utils", "report", "tokenizer", "model", "export", "data", "tasks", "pipelines", "train",
         "serve", "commands", "demo", "cli", "__main__", "__init__"]


def layer_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports_of(path: Path, root: Path) -> set[str]:
    """The bertkit modules a file imports (absolute, or relative resolved against its package)."""
    parts = path.relative_to(root).with_suffix("").parts
    package = list(parts[:-1])
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from .x import y
                base = package[: len(package) - node.level + 1]
                found.add(".".join(base + ([node.module] if node.module else [])))
            elif node.module:
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name == "bertkit" or name.startswith("bertkit.")}


def upward_imports(package: Path) -> list[str]:
    """'file imports module' for every import that points to a later package in ORDER."""
    root, upward = package.parent, []
    for path in sorted(package.rglob("*.py")):
        source = layer_of(".".join(path.relative_to(root).with_suffix("").parts))
        assert source in ORDER, f"{path}: package {source!r} is not placed in ORDER (and docs/ARCHITECTURE.md)"
        for name in imports_of(path, root):
            target = layer_of(name)
            if target not in (source, "__init__") and ORDER.index(target) > ORDER.index(source):
                upward.append(f"{path.relative_to(root)} imports {name}")
    return upward


def test_every_import_points_down():
    upward = upward_imports(PACKAGE)
    assert not upward, "imports that point up the layers:\n" + "\n".join(upward)


def test_the_check_catches_an_upward_import(tmp_path):
    model = tmp_path / "bertkit" / "model"
    model.mkdir(parents=True)
    (model / "bert.py").write_text("from .config import BertConfig\n"
                                   "def f():\n    from bertkit.train.trainer import Trainer\n")
    assert upward_imports(tmp_path / "bertkit") == ["bertkit/model/bert.py imports bertkit.train.trainer"]
