"""Class names of a model: from its metadata, a labels file, or ``class0..``."""

from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path

from agent.detect.errors import ModelError

__all__ = ["default_names", "names_from_metadata", "read_labels_file"]


def names_from_metadata(meta: Mapping[str, str]) -> list[str] | None:
    """Names from a metadata ``names`` entry (``"{0: 'person', ...}"`` or a list), else None.

    The value is parsed with :func:`ast.literal_eval`, which accepts literals only: a
    model file is outside input and must never run code.
    """
    raw = meta.get("names")
    if raw is None:
        return None
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    if isinstance(value, Mapping):
        try:
            items = {int(k): str(v) for k, v in value.items()}
        except (TypeError, ValueError):
            return None
        if not items or min(items) < 0:
            return None
        return [items.get(i, f"class{i}") for i in range(max(items) + 1)]
    if isinstance(value, list | tuple) and value:
        return [str(v) for v in value]
    return None


def read_labels_file(path: str | Path) -> list[str]:
    """One name per line; blank lines and ``#`` comments are skipped."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ModelError(
            f"detection.labels: cannot read {p} ({exc.strerror or exc}); give a text file "
            "with one class name per line"
        ) from None
    except UnicodeDecodeError as exc:
        raise ModelError(f"detection.labels: {p} byte {exc.start} is not UTF-8 text") from None
    names = [s for s in (line.strip() for line in text.splitlines()) if s and s[0] != "#"]
    if not names:
        raise ModelError(f"detection.labels: {p} holds no class names")
    return names


def default_names(count: int) -> list[str]:
    return [f"class{i}" for i in range(count)]
