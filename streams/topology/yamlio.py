"""YAML reading for topologies: every scalar stays a string.

PyYAML's default (YAML 1.1) resolver reads ``on``/``yes``/``no`` as booleans
and an unquoted ``21:00`` as the sexagesimal number 1260. Building on
:class:`yaml.BaseLoader` keeps every scalar a string; the loader converts
only where it expects a number, and says so when it cannot. Duplicate keys,
which PyYAML silently collapses, are rejected.
"""

from __future__ import annotations

from typing import Any

import yaml


class DuplicateKeyError(yaml.YAMLError):
    pass


class QuotedStr(str):
    """A scalar that was quoted in the file: text by the author's own choice, never a number."""

    __slots__ = ()


class _StrictStringLoader(yaml.BaseLoader):
    def construct_scalar(self, node: yaml.ScalarNode) -> str:
        value = super().construct_scalar(node)
        return QuotedStr(value) if node.style in ("'", '"') else value

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                if key in seen:
                    mark = key_node.start_mark
                    raise DuplicateKeyError(f"duplicate key {key!r} at line {mark.line + 1}, column {mark.column + 1}")
                seen.add(key)
        return super().construct_mapping(node, deep=deep)  # type: ignore[arg-type]


def load_text(text: str) -> Any:
    """Parse YAML text with every scalar as a string. Raises ``yaml.YAMLError``."""
    return yaml.load(text, Loader=_StrictStringLoader)
