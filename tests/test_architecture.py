"""The package layout keeps one direction (docs/ARCHITECTURE.md): every bertkit import, at module level or inside a
function, points from a package to one listed before it, so there are no import cycles between packages."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "bertkit"
# lowest first: a package may import only packages listed before it (and itself)
ORDER = ["errors", "files", "hub", "utils", "report", "tokenizer", "model", "export", "data", "tasks", "pipelines", "tf_compat", "train",
         "serve", "demo", "commands", "cli", "__main__", "__init__"]


def layer_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _typing_only(tree: ast.AST) -> set[int]:
    """The ids of the import nodes under `if TYPE_CHECKING:` (they never run)."""
    return {id(node) for block in ast.walk(tree) if isinstance(block, ast.If)
            and getattr(block.test, "id", getattr(block.test, "attr", None)) == "TYPE_CHECKING"
            for statement in block.body for node in ast.walk(statement)}


def imports_of(path: Path, root: Path, runtime_only: bool = False) -> set[str]:
    """The bertkit modules a file imports (absolute, or relative resolved against its package); `runtime_only`
    leaves out the imports under `if TYPE_CHECKING:`."""
    parts = path.relative_to(root).with_suffix("").parts
    package = list(parts[:-1])
    found = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = _typing_only(tree) if runtime_only else set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
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


def file_imports(package: Path) -> dict[str, set[str]]:
    """module -> the bertkit modules it imports (a package's own name stands for its __init__.py), for every file."""
    root, graph = package.parent, {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        graph[name] = imports_of(path, root, runtime_only=True)
    return graph


def import_circles(package: Path) -> list[str]:
    """Circles of imports between files of one package (`a.x` imports `a.y`, which imports `a.x` again), at module
    level or inside a function: each a 'x -> y -> x' line. A package's __init__ may re-export its files (the lazy
    facades), so imports from a package's own __init__ are not followed; neither are typing-only imports."""
    graph = file_imports(package)

    def package_of(module: str) -> str:
        return module.rsplit(".", 1)[0]

    edges = {m: sorted(t for t in targets if t in graph and t != m and package_of(t) == package_of(m)
                       and t != package_of(m)) for m, targets in graph.items()}
    circles, state = set(), {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in edges[module]:
            if state.get(target) == "open":
                cycle = path[path.index(target):] + [target]
                start = cycle.index(min(cycle[:-1]))
                circles.add(" -> ".join(cycle[start:-1] + cycle[:start] + [cycle[start]]))
            elif target not in state:
                visit(target, path + [target])
        state[module] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    return sorted(circles)


def test_no_import_circle_between_files_of_a_package():
    circles = import_circles(PACKAGE)
    assert not circles, "files that import each other:\n" + "\n".join(circles)


def test_the_circle_check_catches_one(tmp_path):
    export = tmp_path / "bertkit" / "export"
    export.mkdir(parents=True)
    (export / "__init__.py").write_text("")
    (export / "onnx.py").write_text("from bertkit.export.ort import OrtModel\n")
    (export / "ort.py").write_text("def f():\n    from bertkit.export.onnx import require\n")
    assert import_circles(tmp_path / "bertkit") == ["bertkit.export.onnx -> bertkit.export.ort -> bertkit.export.onnx"]


def test_module_names_are_unique():
    names: dict[str, list[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        if path.name not in ("__init__.py", "__main__.py"):
            names.setdefault(path.name, []).append(str(path.relative_to(PACKAGE.parent)))
    shared = {name: paths for name, paths in names.items() if len(paths) > 1}
    assert not shared, f"modules that share a file name: {shared}"


def test_commands_live_in_commands_and_files_stay_small():
    outside = [str(p.relative_to(PACKAGE.parent)) for p in PACKAGE.rglob("*.py")
               if "def add_arguments" in p.read_text(encoding="utf-8") and p.parent.name != "commands"]
    assert not outside, f"command modules outside bertkit/commands/: {outside}"
    long = {str(p.relative_to(PACKAGE.parent)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 600}
    assert not long, f"files over 600 lines: {long}"


def test_every_command_has_its_module():
    from bertkit.cli import COMMANDS

    for name, (module, _) in COMMANDS.items():
        assert module == "bertkit.commands." + name.replace("-", "_"), f"{name} is served by {module}"
        assert (PACKAGE / "commands" / (name.replace("-", "_") + ".py")).is_file()


def test_the_check_catches_an_upward_import(tmp_path):
    model = tmp_path / "bertkit" / "model"
    model.mkdir(parents=True)
    (model / "bert.py").write_text("from .config import BertConfig\n"
                                   "def f():\n    from bertkit.train.trainer import Trainer\n")
    assert upward_imports(tmp_path / "bertkit") == ["bertkit/model/bert.py imports bertkit.train.trainer"]


def test_lazy_facades_name_their_imports_for_editors():
    """Each lazy facade (`_PUBLIC`: name -> module) also imports those names under `if TYPE_CHECKING:`, so that
    go-to-definition works in an editor; the two lists must not drift apart."""
    import importlib

    for facade in ("bertkit", "bertkit.export", "bertkit.serve"):
        module = importlib.import_module(facade)
        path = Path(module.__file__)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        typed = {(node.module, alias.name) for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                 and id(node) in _typing_only(tree) for alias in node.names}
        assert typed == {(target, name) for name, target in module._PUBLIC.items()}, facade
