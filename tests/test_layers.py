"""Imports point down (docs/architecture.md, "One-way flow"): the API reaches SQL only
through the services, the FHIR rules know nothing of the web framework or the database,
storage knows nothing above it. A new import across the line fails here."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[1] / "app"
# Shared roots every layer may use: settings, time and ids, the stored-version shape, the
# process metrics.
ROOTS = frozenset({"app.config", "app.clock", "app.records", "app.metrics", "app"})
# The plain models and their FHIR mappings sit beside app/ ("app/ imports both"); the
# storage layer has no use for them.
PLAIN = frozenset({"schemas", "mappings"})
# What each package may import besides itself and the roots.
ALLOWED: dict[str, frozenset[str]] = {
    "api": frozenset({"services", "security", "fhir", "search"}) | PLAIN,
    # The web app's pages sit beside the API and reuse its plumbing (route checks, pictures).
    "web": frozenset({"api", "services", "security", "fhir", "search"}) | PLAIN,
    "notify": frozenset({"services", "security", "fhir", "storage"}) | PLAIN,
    "services": frozenset({"security", "fhir", "search", "storage"}) | PLAIN,
    "security": frozenset({"fhir", "search", "storage"}) | PLAIN,
    "search": frozenset({"fhir", "storage"}) | PLAIN,
    "fhir": PLAIN,
    "storage": frozenset(),
}
# The top-level modules that wire the layers together.
WIRING = frozenset(
    {
        "main.py",
        "cli.py",
        "__init__.py",
        "config.py",
        "clock.py",
        "records.py",
        "metrics.py",
        "tracing.py",
    }
)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def _layer_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] == "app" and len(parts) > 1:
        return parts[1]
    if parts[0] in ("schemas", "mappings"):
        return parts[0]
    return None


def _files() -> list[tuple[str, Path]]:
    return [
        (path.relative_to(APP).parts[0], path)
        for path in sorted(APP.rglob("*.py"))
        if "migrations" not in path.parts and path.relative_to(APP).parts[0] in ALLOWED
    ]


@pytest.mark.parametrize(("layer", "path"), _files(), ids=lambda v: str(v))
def test_imports_point_down(layer: str, path: Path) -> None:
    allowed = ALLOWED[layer] | {layer}
    wrong = sorted(
        module
        for module in _imports(path)
        if module not in ROOTS
        and (target := _layer_of(module)) is not None
        and target not in allowed
    )
    assert wrong == [], f"{path.relative_to(APP.parent)} imports {wrong} ({layer} may not)"


def test_every_package_is_placed() -> None:
    packages = {p.name for p in APP.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    files = {p.name for p in APP.glob("*.py")}
    assert packages <= set(ALLOWED), packages - set(ALLOWED)
    assert files <= WIRING, files - WIRING


# Inside app/services (docs/architecture.md, "Inside the services"): the write pipeline and
# the helpers at the top know none of the folders; the write rules know only the top; jobs
# may use the rules (a bulk load derives owner rows as a write would); use cases may use
# jobs and rules; auth stands alone. Only container.py, the wiring, sees everything.
SERVICE_PARTS: dict[str, frozenset[str]] = {
    "top": frozenset(),
    "rules": frozenset({"top"}),
    "jobs": frozenset({"top", "rules"}),
    "usecases": frozenset({"top", "rules", "jobs"}),
    "auth": frozenset({"top"}),
}
SERVICES = APP / "services"


def _part_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[:2] != ["app", "services"] or len(parts) < 3:
        return None
    return parts[2] if parts[2] in SERVICE_PARTS else "top"


def _service_files() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(SERVICES.rglob("*.py")):
        relative = path.relative_to(SERVICES).parts
        if relative == ("container.py",):
            continue
        found.append((relative[0] if len(relative) > 1 else "top", path))
    return found


@pytest.mark.parametrize(("part", "path"), _service_files(), ids=lambda v: str(v))
def test_service_parts_point_one_way(part: str, path: Path) -> None:
    assert part in SERVICE_PARTS, f"app/services/{part}/ is not placed in SERVICE_PARTS"
    allowed = SERVICE_PARTS[part] | {part}
    wrong = sorted(
        module
        for module in _imports(path)
        if (target := _part_of(module)) is not None and target not in allowed
    )
    assert wrong == [], f"{path.relative_to(APP.parent)} imports {wrong} ({part} may not)"


def test_nothing_outside_the_services_reaches_the_wiring_but_the_app() -> None:
    users = sorted(
        str(path.relative_to(APP.parent))
        for path in APP.rglob("*.py")
        if "app.services.container" in _imports(path)
    )
    assert all(
        u.startswith(("app/api/", "app/web/", "app/main.py", "app/cli.py", "app/notify/"))
        for u in users
    ), users
