"""pydantic's validation errors as one line per problem, each with its path in the file."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

__all__ = ["problems"]


def _loc(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _describe(err: Mapping[str, Any]) -> str:
    kind, ctx, got = err["type"], err.get("ctx") or {}, err.get("input")
    shown = json.dumps(got, ensure_ascii=False, default=str)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    simple = {
        "less_than_equal": f"must be <= {ctx.get('le')}",
        "less_than": f"must be < {ctx.get('lt')}",
        "greater_than_equal": f"must be >= {ctx.get('ge')}",
        "greater_than": f"must be > {ctx.get('gt')}",
        "multiple_of": f"must be a multiple of {ctx.get('multiple_of')}",
        "string_pattern_mismatch": f"must match {ctx.get('pattern')}",
        "literal_error": f"must be one of {ctx.get('expected')}",
    }
    if kind == "missing":
        return "required, but missing"
    if kind == "extra_forbidden":
        return "unknown key (a typo? `pole-agent config schema` lists the keys)"
    if kind in simple:
        return f"{simple[kind]}, got {shown}"
    msg = str(err["msg"])
    msg = msg.removeprefix("Value error, ")
    return f"{msg[0].lower()}{msg[1:]}, got {shown}"


def problems(exc: ValidationError) -> list[str]:
    """One line per problem: ``cameras[0].rules[1].zone: <what is wrong>, got <value>``."""
    return [f"{_loc(e['loc'])}: {_describe(e)}" for e in exc.errors()]
