"""A stage's code hash: the source files its module reaches through the project's imports.

The runner reruns a stage whose code changed, as it does when its config changed. Which code
counts is found, not declared: starting from the module that defines the stage class, every
`import` of the project's own packages is followed (module-level and inside functions, since
stages import their heavy parts lazily), and the files reached are hashed. A module the stage
never imports, such as a test server beside it, leaves the hash alone.

Imports under `if TYPE_CHECKING:` do not run, so they are not followed on their own. A
package's `__init__` that re-exports names lazily (PEP 562) lists them there, so
`from curation import Stage` follows the `TYPE_CHECKING` import that binds `Stage`.
Modules loaded by a name in a string (`import_module(...)`) are not seen.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from curation.errors import StageError

# The distribution's top-level packages (docs/architecture.md); only their files are followed.
PROJECT_PACKAGES = ("curation", "annotators", "argilla_setup", "finetune", "codecurate")


@dataclass
class _Imports:
    """What one file imports when it runs, and the names it binds only for type checkers."""

    modules: set[str] = field(default_factory=set)
    from_names: list[tuple[str, str]] = field(default_factory=list)  # (module, name)
    typing_only: dict[str, set[str]] = field(default_factory=dict)  # name -> its modules


def project_roots() -> dict[str, Path]:
    """Each project package's folder, found without importing it."""
    roots = {}
    for name in PROJECT_PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin is not None:
            roots[name] = Path(spec.origin).parent
    return roots


def code_hash(module: str, roots: Mapping[str, Path] | None = None) -> str:
    """Hash of `module`'s file and of every project file it imports, directly or not."""
    digest = hashlib.sha256()
    for name, path in sorted(import_closure(module, roots).items()):
        digest.update(f"{name}\0".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def import_closure(module: str, roots: Mapping[str, Path] | None = None) -> dict[str, Path]:
    """`module` and the project modules it reaches through imports, name -> file."""
    roots = project_roots() if roots is None else roots
    start = _module_file(module, roots) or _loaded_file(module)
    if start is None:
        raise StageError(f"stage code module {module!r} not found")
    reached = {module: start}
    # importing the module runs its packages' `__init__` first
    for package in _with_parents(module)[:-1]:
        package_file = _module_file(package, roots)
        if package_file is not None:
            reached[package] = package_file
    parsed: dict[Path, _Imports] = {}
    pending = list(reached)
    while pending:
        name = pending.pop()
        for target in _targets(name, reached[name], roots, parsed):
            if target not in reached:
                target_path = _module_file(target, roots)
                if target_path is not None:
                    reached[target] = target_path
                    pending.append(target)
    return reached


def _targets(
    name: str, path: Path, roots: Mapping[str, Path], parsed: dict[Path, _Imports]
) -> set[str]:
    """The modules that running `name` (its file at `path`) imports; `parsed` caches files
    read so far."""
    imports = _read_imports(name, path, parsed)
    targets: set[str] = set()
    for module in imports.modules:
        targets.update(_with_parents(module))
    for module, bound in imports.from_names:
        submodule = f"{module}.{bound}"
        if _module_file(submodule, roots) is not None:
            targets.add(submodule)
            continue
        package = _module_file(module, roots)
        if package is not None and package.name == "__init__.py":
            lazy = _read_imports(module, package, parsed).typing_only.get(bound, set())
            for target in lazy:
                targets.update(_with_parents(target))
    return targets


def _read_imports(name: str, path: Path, parsed: dict[Path, _Imports]) -> _Imports:
    if path in parsed:
        return parsed[path]
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except SyntaxError as e:
        raise StageError(f"stage code {path}: cannot parse it ({e.msg}, line {e.lineno})") from e
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    collector = _ImportCollector(package)
    collector.visit(tree)
    parsed[path] = collector.imports
    return collector.imports


class _ImportCollector(ast.NodeVisitor):
    def __init__(self, package: str) -> None:
        self.package = package
        self.imports = _Imports()

    def visit_If(self, node: ast.If) -> None:
        if not _is_type_checking(node.test):
            self.generic_visit(node)
            return
        for statement in node.body:
            for child in ast.walk(statement):
                if isinstance(child, ast.ImportFrom):
                    module = self._absolute(child)
                    for alias in child.names:
                        bound = alias.asname or alias.name
                        modules = self.imports.typing_only.setdefault(bound, set())
                        modules.update({module, f"{module}.{alias.name}"})
        for statement in node.orelse:
            self.visit(statement)

    def visit_Import(self, node: ast.Import) -> None:
        self.imports.modules.update(alias.name for alias in node.names)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = self._absolute(node)
        self.imports.modules.add(module)
        self.imports.from_names.extend((module, alias.name) for alias in node.names)

    def _absolute(self, node: ast.ImportFrom) -> str:
        if node.level == 0:
            return node.module or ""
        parts = self.package.split(".")
        base = ".".join(parts[: len(parts) - (node.level - 1)])
        return f"{base}.{node.module}" if node.module else base


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def _with_parents(module: str) -> list[str]:
    """`a.b.c` -> a, a.b, a.b.c: importing a module runs its packages' `__init__` first."""
    parts = module.split(".")
    return [".".join(parts[:end]) for end in range(1, len(parts) + 1)]


def _module_file(module: str, roots: Mapping[str, Path]) -> Path | None:
    """The file of a project module (a package's `__init__.py`), or None outside the project."""
    top, *rest = module.split(".")
    if top not in roots:
        return None
    base = roots[top].joinpath(*rest)
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    file = base.with_suffix(".py")
    return file if rest and file.is_file() else None


def _loaded_file(module: str) -> Path | None:
    """The file of a module outside the project packages (a stage defined in a test)."""
    loaded = sys.modules.get(module)
    origin = getattr(loaded, "__file__", None)
    if origin is None:
        spec = importlib.util.find_spec(module)
        origin = spec.origin if spec is not None else None
    return Path(origin) if origin and Path(origin).is_file() else None
