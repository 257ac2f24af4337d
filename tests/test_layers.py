"""The architecture, checked: django_dbq's layers import only downward, no module
imports another in a circle (function-level imports included), and every write
of a job's state is in the store or a database backend (docs/architecture.rst)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "django_dbq"

# Bottom to top. A module may import modules of its own layer or of a lower one.
LAYERS: list[tuple[str, list[str]]] = [
    ("core", ["exceptions", "conf", "states", "signals", "options", "routers"]),
    ("job types", ["job_types", "schedules", "limits"]),
    ("database backends", ["db"]),
    ("model", ["models", "records", "checks"]),
    ("store", ["store"]),
    ("operations", ["operations"]),
    ("scheduling", ["scheduling"]),
    ("runtime", ["runtime"]),
    ("integrations", ["integrations"]),
    ("interface", ["admin", "management", "apps", "urls", "views"]),
]


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(path): path
        for path in PACKAGE.rglob("*.py")
        if "migrations" not in path.parts
    }


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every django_dbq module ``name`` imports, at module level or inside functions."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            targets = [
                f"{source}.{alias.name}" if f"{source}.{alias.name}" in known else source
                for alias in node.names
            ]
        else:
            continue
        found |= {t for t in targets if t in known and t != name}
    return found


def _layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else ""
    for index, (_, members) in enumerate(LAYERS):
        if top in members:
            return index
    raise AssertionError(f"{module} is in no layer: add it to LAYERS in {__file__}")


MODULES = _modules()
GRAPH = {name: _imports(name, path, set(MODULES)) for name, path in MODULES.items()}


def test_every_module_belongs_to_a_layer():
    for name in MODULES:
        if name != "django_dbq":
            _layer(name)


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m != "django_dbq"))
def test_a_module_imports_nothing_from_a_higher_layer(module):
    upward = [
        f"{target} ({LAYERS[_layer(target)][0]})"
        for target in sorted(GRAPH[module])
        if target != "django_dbq" and _layer(target) > _layer(module)
    ]
    assert not upward, (
        f"{module} ({LAYERS[_layer(module)][0]}) imports from a higher layer: {upward}"
    )


def test_no_modules_import_each_other_in_a_circle():
    state: dict[str, str] = {}
    circles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for target in sorted(GRAPH[node]):
            if state.get(target) == "open":
                circles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[node] = "done"

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])
    assert circles == []


def test_migrations_run_frozen_sql_and_import_no_live_code():
    for path in (PACKAGE / "migrations").glob("0*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("django_dbq"):
                pytest.fail(f"{path.name} imports {node.module}")
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("django_dbq") for a in node.names), path.name


# The tables beside the jobs (django_dbq/records.py) hold no job state.
OPERATORS_TABLES = ("WorkerRecord", "QueuePause", "MinuteCount", "Schedule")
_SQL_UPDATE = re.compile(r"\bUPDATE\s+\S+\s+SET\b")


def test_job_state_is_written_only_by_the_store_and_the_database_backends():
    writers = []
    for name, path in MODULES.items():
        if name == "django_dbq.store" or name.startswith("django_dbq.db"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("update", "bulk_update", "update_or_create")
                and isinstance(node.func.value, (ast.Call, ast.Attribute))
                and "objects" in ast.unparse(node.func.value)
                and not any(table in ast.unparse(node.func.value) for table in OPERATORS_TABLES)
            ):
                writers.append(f"{name}:{node.lineno} {ast.unparse(node)[:60]}")
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and _SQL_UPDATE.search(node.value)
            ):
                writers.append(f"{name}:{node.lineno} SQL UPDATE")
    assert writers == []


def test_the_layer_check_sees_an_upward_import(tmp_path):
    """A positive control: the import walker finds a model-to-runtime import."""
    fake = tmp_path / "models.py"
    fake.write_text("from .runtime import worker\n")
    found = _imports("django_dbq.models", fake, set(MODULES))
    assert found == {"django_dbq.runtime.worker"}
    assert _layer("django_dbq.runtime.worker") > _layer("django_dbq.models")
