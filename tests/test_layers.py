"""The layers import downwards only; the rules of docs/architecture.md, checked on the source.

Imports are read from each module's syntax tree (also those inside
functions), so a lazy import cannot slip past.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "streams"

# The pure core: no I/O library, no wall clock, nothing from the layers above it.
CORE = ("engine", "topology", "events.py", "decisions.py", "timeutil.py", "errors.py")
IO_LIBRARIES = {"faust", "mode", "aiokafka", "confluent_kafka", "redis", "aiohttp", "prometheus_client", "time"}
ABOVE_CORE = {"streams.live", "streams.mirror", "streams.cli", "streams.settings", "streams.clients", "streams.replay"}

RULES: list[tuple[str, tuple[str, ...], set[str]]] = [
    # (what, which files, module prefixes they must not import)
    ("the pure core", CORE, IO_LIBRARIES | ABOVE_CORE | {"streams.codec"}),
    ("the Redis mirror", ("mirror",), {"streams.live", "streams.cli", "faust", "mode", "aiokafka"}),
    ("codecs", ("codec",), {"streams.live", "streams.mirror", "streams.cli", "redis", "faust"}),
    ("the report", ("report",), {"streams.engine", "streams.live", "streams.mirror", "streams.cli", "faust", "redis"}),
    ("replay", ("replay.py",), {"streams.live", "streams.mirror", "streams.cli", "faust", "redis", "confluent_kafka"}),
    ("anything but the command line", ("",), {"streams.cli"}),
    ("anything", ("",), {"bench", "chaos", "tests"}),
]


def modules(where: str) -> list[Path]:
    path = PACKAGE / where
    files = [path] if path.suffix == ".py" else sorted(path.rglob("*.py"))
    return [f for f in files if f.name != "cli.py" or where != ""]


def imported(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def breaks(name: str, forbidden: set[str]) -> bool:
    return any(name == f or name.startswith(f + ".") for f in forbidden)


@pytest.mark.parametrize(("what", "where", "forbidden"), RULES, ids=[r[0] for r in RULES])
def test_layers_import_downwards_only(what: str, where: tuple[str, ...], forbidden: set[str]) -> None:
    found = [
        f"{path.relative_to(PACKAGE)} imports {name}"
        for part in where
        for path in modules(part)
        for name in sorted(imported(path))
        if breaks(name, forbidden)
    ]
    assert found == [], f"{what} must not import {sorted(forbidden)}"


def test_the_check_sees_lazy_imports(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    import redis.asyncio\n    from streams.live import runtime\n")
    assert {"redis.asyncio", "streams.live"} <= imported(module)
