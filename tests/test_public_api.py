"""The public API and the exception tree are pinned here: change them on purpose."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys

import streams
from streams import errors


def test_public_names_are_pinned() -> None:
    assert sorted(streams.__all__) == [
        "Catalog",
        "CustomerState",
        "Decision",
        "DictStore",
        "Engine",
        "Event",
        "Outcome",
        "Processor",
        "TactfulError",
        "load_folder",
        "replay",
        "validate_event",
    ]
    for name in streams.__all__:
        assert getattr(streams, name) is not None


def test_importing_the_package_loads_no_broker_or_redis_client() -> None:
    code = (
        "import sys, streams; "
        "print(sorted(m for m in ('faust','aiokafka','redis','confluent_kafka') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_docstring_tree_matches_the_classes() -> None:
    """Each class drawn in errors' docstring sits under the parent drawn above it."""
    drawn: dict[str, str | None] = {}
    stack: list[tuple[int, str]] = []
    for line in (errors.__doc__ or "").splitlines():
        m = re.match(r"^(\s*)(?:[├└]── )?([A-Z][A-Za-z]+)\b", line.replace("│", " "))
        if not m or not hasattr(errors, m.group(2)):
            continue
        depth = m.start(2)  # the name's column: branch glyphs count as indentation
        while stack and stack[-1][0] >= depth:
            stack.pop()
        drawn[m.group(2)] = stack[-1][1] if stack else None
        stack.append((depth, m.group(2)))
    classes = {
        name: cls
        for name, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, Exception) and cls.__module__ == errors.__name__
    }
    assert set(drawn) == set(classes)
    assert drawn["TactfulError"] is None
    for name, parent in drawn.items():
        assert classes[name].__bases__[0].__name__ == (parent or "Exception"), name
