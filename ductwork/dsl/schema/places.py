"""A person's name for a place in a spec file ("step 'charge'", "rollback of step 'pay'")."""

from __future__ import annotations

from typing import Any

from ductwork.dsl import vocabulary
from ductwork.dsl.loader import DataPath


def describe(path: DataPath, data: Any) -> str:
    """A person's name for the thing at `path`: "step 'charge'", "database 'users-db'", ..."""
    node: Any = data
    label = "the file"
    for i, part in enumerate(path):
        parent: Any = node
        key: Any = part
        node = parent[key] if isinstance(parent, dict | list) and _has(parent, part) else None
        prev = path[i - 1] if i else None
        if isinstance(part, int) and prev in ("steps", "default") and isinstance(node, dict):
            tag = node.get("tag")
            label = f"step '{tag}'" if isinstance(tag, str) else f"step #{part + 1}"
        elif isinstance(part, int) and prev == "parallel":
            label = f"branch #{part + 1} of parallel"
        elif isinstance(part, int) and prev == "cases":
            label = f"case #{part + 1} of switch"
        elif part == "rollback":
            label = f"rollback of {label}"
        elif isinstance(part, int) and prev == "rollback":
            label = label.replace("rollback of", f"rollback #{part + 1} of", 1)
        elif isinstance(part, str) and part in vocabulary.BODIES:
            label = f"'{part}'"
        elif prev in vocabulary.SECTIONS and isinstance(part, str):
            kind = vocabulary.SECTIONS[str(prev)]
            label = f"{vocabulary.NOUN.get(kind, kind)} '{part}'"
        elif isinstance(part, str) and i == 0 and part == "options":
            label = "options"
        elif prev == "envs" and isinstance(part, str):
            label = f"{label} config for env '{part}'"
        elif prev == "events" and isinstance(part, str):
            label = f"event '{part}'"
        elif isinstance(part, str):
            label = f"'{part}'"
    return label


def _has(parent: Any, part: Any) -> bool:
    if isinstance(parent, dict):
        return part in parent
    return isinstance(part, int) and 0 <= part < len(parent)
