"""The import boundaries, read from the source with ``ast`` (imports under ``if TYPE_CHECKING:`` count too).

- a domain app (``sync``, ``exports``, ``emails``) imports ``jobs.public`` and nothing else of ``jobs``;
- no domain app imports another;
- the core (``jobs``) does not import the project package (``config``);
- the wings of ``jobs`` import downwards only (``WING_ORDER``), and never the faces at the top of ``jobs/``;
- the modules of ``jobs`` import each other without a cycle, type-only imports included.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOMAIN_APPS = ("sync", "exports", "emails")
CORE = "jobs"
PUBLIC_FACE = "jobs.public"
# The wings of jobs/, lowest first: a wing imports only the wings before it in this list (and jobs.models, the
# centre Django looks for). The modules at the top of jobs/ (public, services, tasks, urls, admin, apps,
# management, templatetags) are the faces: they may import any wing, and no wing imports them.
WING_ORDER = ("foundation", "core", "coordination", "delivery", "worker", "ops", "api")
CENTRE = "jobs.models"


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


def _is_module(dotted: str) -> bool:
    path = ROOT.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imports_of(path: Path) -> list[Import]:
    source = module_name(path)
    package = source if path.name == "__init__.py" else source.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
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
                # ``from jobs import registry`` imports the module jobs.core.registry; ``from jobs.x import f`` imports jobs.x.
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
        violations.extend(_wing_violations(found))
    return sorted(violations)


def wing_of(module: str) -> str | None:
    """The wing a module of jobs belongs to, or None for jobs.models and the faces at the top of jobs/."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 and parts[0] == CORE and parts[1] in WING_ORDER else None


def _wing_violations(found: Import) -> list[str]:
    source_wing = wing_of(found.source)
    if source_wing is None or not _is_within(found.target, CORE) or found.target == CORE:
        return []
    target_wing = wing_of(found.target)
    if target_wing is None:
        if found.target == CENTRE or (found.target.count(".") == 1 and found.target.split(".")[1] in WING_ORDER):
            return []
        return [f"{found.where}: wing {source_wing} imports {found.target}; wings never import the faces of jobs/"]
    if WING_ORDER.index(target_wing) > WING_ORDER.index(source_wing):
        return [
            f"{found.where}: wing {source_wing} imports {found.target} from the higher wing {target_wing}; "
            f"wings import only downwards ({' < '.join(WING_ORDER)})"
        ]
    return []


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


def test_domain_apps_use_the_public_face_and_wings_import_downwards():
    assert boundary_violations() == []


def test_the_core_has_no_import_cycle():
    assert import_cycles(CORE) == []


def test_the_wings_are_the_packages_of_jobs():
    """WING_ORDER names every sub-package of jobs/ that is not one of Django's conventional places."""
    django_places = {"admin", "management", "migrations", "templatetags", "static"}
    packages = {path.parent.name for path in (ROOT / CORE).glob("*/__init__.py")} - django_places
    assert packages == set(WING_ORDER)
    for wing in WING_ORDER:
        docstring = ast.get_docstring(ast.parse((ROOT / CORE / wing / "__init__.py").read_text()))
        assert docstring and "Imports:" in docstring, f"jobs/{wing}/__init__.py must say what it owns and imports"


def test_the_checks_see_what_they_look_for(tmp_path, monkeypatch):
    """A forbidden import is found (type-only ones too), a back-import between wings is, and so is a cycle."""
    for name in ("jobs", "jobs/core", "jobs/worker", "jobs/api", "sync", "exports"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("")
    (tmp_path / "jobs" / "public.py").write_text("")
    (tmp_path / "jobs" / "models.py").write_text("")
    (tmp_path / "jobs" / "core" / "lifecycle.py").write_text(
        "from typing import TYPE_CHECKING\nfrom jobs.models import Job\nif TYPE_CHECKING:\n"
        "    from jobs.worker.runner import run\n"
    )
    (tmp_path / "jobs" / "worker" / "runner.py").write_text(
        "from jobs.core import lifecycle\nimport config.celery_app\nfrom jobs.public import job_enqueue\n"
    )
    (tmp_path / "jobs" / "api" / "views.py").write_text("from jobs.worker.runner import run\nfrom jobs import core\n")
    (tmp_path / "sync" / "services.py").write_text(
        "from typing import TYPE_CHECKING\nfrom jobs.public import job_enqueue\nfrom jobs import models\n"
        "from exports.services import export_create\nif TYPE_CHECKING:\n    from jobs.core.registry import JobType\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)

    violations = boundary_violations()

    assert violations == [
        "jobs/core/lifecycle.py:4: wing core imports jobs.worker.runner from the higher wing worker; "
        "wings import only downwards (foundation < core < coordination < delivery < worker < ops < api)",
        "jobs/worker/runner.py:2: the core imports config.celery_app; it must not know the project (config)",
        "jobs/worker/runner.py:3: wing worker imports jobs.public; wings never import the faces of jobs/",
        "sync/services.py:3: sync imports jobs.models; domain apps import only jobs.public",
        "sync/services.py:4: sync imports exports.services; domain apps never import each other",
        "sync/services.py:6: sync imports jobs.core.registry; domain apps import only jobs.public",
    ]
    assert import_cycles("jobs") == [["jobs.core.lifecycle", "jobs.worker.runner"]]


@pytest.mark.parametrize("app", DOMAIN_APPS)
def test_every_domain_app_is_checked(app):
    assert (ROOT / app / "__init__.py").is_file()
