"""The import boundaries, read from the source with ``ast`` (imports under ``if TYPE_CHECKING:`` are ignored).

- a domain app (``sync``, ``exports``, ``emails``) imports ``jobs.public`` and nothing else of ``jobs``;
- no domain app imports another;
- the core (``jobs``) does not import the project package (``config``);
- the modules of ``jobs`` import each other without a cycle.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOMAIN_APPS = ("sync", "exports", "emails")
CORE = "jobs"
PUBLIC_FACE = "jobs.public"


@dataclass(frozen=True)
class Import:
    source: str  # the importing module, dotted
    target: str  # the imported module, dotted
    where: str  # path:line, for the failure message


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node except those under ``if TYPE_CHECKING:`` (their ``else`` branch is kept)."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _is_module(dotted: str) -> bool:
    path = ROOT.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imports_of(path: Path) -> list[Import]:
    source = module_name(path)
    package = source if path.name == "__init__.py" else source.rpartition(".")[0]
    found = []
    for node in _runtime_nodes(ast.parse(path.read_text(), filename=str(path))):
        where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            found.extend(Import(source, alias.name, where) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                # ``from jobs import registry`` imports the module jobs.registry; ``from jobs.x import f`` imports jobs.x.
                candidate = f"{base}.{alias.name}"
                found.append(Import(source, candidate if _is_module(candidate) else base, where))
    return found


def imports_under(package: str) -> list[Import]:
    return [found for path in sorted((ROOT / package).rglob("*.py")) for found in imports_of(path)]


def _is_within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def boundary_violations() -> list[str]:
    violations = []
    for app in DOMAIN_APPS:
        for found in imports_under(app):
            if _is_within(found.target, CORE) and found.target != PUBLIC_FACE:
                violations.append(f"{found.where}: {app} imports {found.target}; domain apps import only {PUBLIC_FACE}")
            for other in DOMAIN_APPS:
                if other != app and _is_within(found.target, other):
                    violations.append(
                        f"{found.where}: {app} imports {found.target}; domain apps never import each other"
                    )
    for found in imports_under(CORE):
        if _is_within(found.target, "config"):
            violations.append(f"{found.where}: the core imports {found.target}; it must not know the project (config)")
    return sorted(violations)


def import_cycles(package: str) -> list[list[str]]:
    """Every cycle in the import graph of ``package``'s modules (one per strongly connected component)."""
    graph: dict[str, set[str]] = {}
    for found in imports_under(package):
        graph.setdefault(found.source, set())
        if _is_within(found.target, package) and found.target != found.source:
            graph[found.source].add(found.target)
    # Tarjan's strongly connected components.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_domain_apps_use_only_the_public_face_and_the_core_does_not_import_config():
    assert boundary_violations() == []


def test_the_core_has_no_import_cycle():
    assert import_cycles(CORE) == []


def test_the_checks_see_what_they_look_for(tmp_path, monkeypatch):
    """The parser finds a forbidden import, a TYPE_CHECKING-only import is not one, and a cycle is found."""
    for name in ("jobs", "sync", "exports"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("")
    (tmp_path / "jobs" / "public.py").write_text("")
    (tmp_path / "jobs" / "models.py").write_text("from . import runner\n")
    (tmp_path / "jobs" / "runner.py").write_text("from jobs.models import Job\nimport config.celery_app\n")
    (tmp_path / "sync" / "services.py").write_text(
        "from typing import TYPE_CHECKING\nfrom jobs.public import job_enqueue\nfrom jobs import models\n"
        "from exports.services import export_create\nif TYPE_CHECKING:\n    from jobs.registry import JobType\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)

    violations = boundary_violations()

    assert violations == [
        "jobs/runner.py:2: the core imports config.celery_app; it must not know the project (config)",
        "sync/services.py:3: sync imports jobs.models; domain apps import only jobs.public",
        "sync/services.py:4: sync imports exports.services; domain apps never import each other",
    ]
    assert import_cycles("jobs") == [["jobs.models", "jobs.runner"]]


@pytest.mark.parametrize("app", DOMAIN_APPS)
def test_every_domain_app_is_checked(app):
    assert (ROOT / app / "__init__.py").is_file()
