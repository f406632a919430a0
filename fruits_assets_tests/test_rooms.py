"""The rooms of the package import only what docs/architecture.md says they may (read from the
sources' import statements, so it holds for imports inside functions too)."""

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.fast

PACKAGE = Path(__file__).resolve().parents[1] / "fruits_assets"
# room -> rooms of the package it may import ("." = the top-level modules settings, names, errors)
ALLOWED = {
    "analysis": {"analysis"},
    "images": {"images", "storage", "."},
    "model": {"model", "images", "storage", "."},
    "storage": {"storage", "analysis", "."},
    "spark": {"spark", "analysis", "images", "model", "storage"},
    "emr": {"emr", "."},
    "defs": {"defs", "analysis", "images", "model", "spark", "storage", "."},
}
NO_DAGSTER = {"analysis", "images", "model", "storage", "spark", "emr"}
TOP_LEVEL = {"settings", "names", "errors"}


def imports(path: Path) -> list[str]:
    """Absolute names of what a module imports, relative imports resolved."""
    module = path.relative_to(PACKAGE.parent).with_suffix("").parts
    package = module[:-1] if path.name != "__init__.py" else module[:-1]
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            target = ".".join([*base, *([node.module] if node.module else [])])
            names += [f"{target}.{a.name}" if node.module is None else target for a in node.names]
    return names


def room_of(name: str) -> str | None:
    parts = name.split(".")
    if parts[0] != "fruits_assets" or len(parts) < 2:
        return None
    return "." if parts[1] in TOP_LEVEL else parts[1]


@pytest.mark.parametrize("room", sorted(ALLOWED))
def test_each_room_imports_only_what_it_may(room):
    wrong = []
    for path in sorted((PACKAGE / room).rglob("*.py")):
        for name in imports(path):
            target = room_of(name)
            if target is not None and target not in ALLOWED[room]:
                wrong.append(f"{path.relative_to(PACKAGE)} imports {name}")
            if room in NO_DAGSTER and name.split(".")[0] in ("dagster", "dagster_aws", "dagster_pyspark"):
                wrong.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert wrong == []


def test_only_settings_reads_the_environment():
    readers = [
        str(p.relative_to(PACKAGE))
        for p in sorted(PACKAGE.rglob("*.py"))
        if p.name != "settings.py" and ("os.environ.get(" in p.read_text() or "os.getenv(" in p.read_text())
    ]
    assert readers == []


def test_the_checker_sees_a_wrong_import(tmp_path):
    """The rule above can fail: an import of Dagster wiring from storage is reported."""
    bad = PACKAGE / "storage" / "fs.py"
    names = imports(bad) + ["fruits_assets.defs.resources"]
    assert [n for n in names if room_of(n) not in ALLOWED["storage"] and room_of(n) is not None] == [
        "fruits_assets.defs.resources"
    ]
