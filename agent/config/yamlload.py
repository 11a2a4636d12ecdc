"""A YAML loader for technicians' files: safe, and a key given twice is an error.

PyYAML's ``safe_load`` keeps the last of two equal keys without a word, so a site file
with ``mqtt:`` twice silently loses the first block.  This loader refuses it and names the
key and both lines.
"""

from __future__ import annotations

from typing import Any

import yaml

__all__ = ["DuplicateKeyError", "UniqueKeyLoader"]


class DuplicateKeyError(yaml.YAMLError):
    """The same key twice in one mapping."""


class UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys in a mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: SafeLoader reports it below
                continue
            if first is not None:
                raise DuplicateKeyError(
                    f"line {line}: key {key!r} is given twice in the same mapping (first on "
                    f"line {first}); YAML would keep only the last one, so merge the two"
                )
            seen[key] = line
        return super().construct_mapping(node, deep=deep)
