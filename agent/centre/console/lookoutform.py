"""The lookout page's form: its fields into a lookout's arguments, a description into fields.

Pure (no I/O): the console's handlers call it and tests can too.  The arguments are checked
by the CLI's own :func:`~agent.centre.lookout.cli.check_args` (the poles' ``LookoutArgs``)
after the form's own checks, which name the form's fields: ``upper: 'magenta' is not a
colour the poles know``, ``min_score: expected a number from 0 to 1, got 'lots'``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from agent.centre.console.auth import BadInput
from agent.centre.lookout.cli import check_args, parse_duration
from agent.centre.lookout.describe import Described
from agent.control.lookout import ASKABLE, ITEMS
from agent.errors import UserError

__all__ = ["CHOICES", "TEXT_MAX", "LookoutForm", "chips", "described", "read_form", "to_args"]

TEXT_MAX = 300  # characters of a description: a sentence or two, not an essay
COLOURS: tuple[str, ...] = tuple(ASKABLE)
CHOICES: dict[str, tuple[str, ...]] = {
    "cls": ("person", "vehicle"),
    "upper": COLOURS,
    "lower": COLOURS,
    "size": ("child", "adult"),
    "items": tuple(ITEMS),
    "riding": ("bicycle", "motorcycle"),
    "vehicle_colour": COLOURS,
    "vehicle_type": ("car", "truck", "bus", "motorcycle", "bicycle"),
}
LISTS = ("upper", "lower", "items", "vehicle_colour")
SLOTS = ("upper", "lower", "size", "items", "riding", "vehicle_colour", "vehicle_type")
# LookoutArgs' names -> the form's, for the poles' own checks' messages.
NAMES = {"since_s": "since", "for_s": "for"}


@dataclass(frozen=True)
class LookoutForm:
    """What the operator typed and chose, as text: kept as it was when a field is wrong."""

    text: str = ""
    cls: str = "person"
    upper: tuple[str, ...] = ()
    lower: tuple[str, ...] = ()
    size: str = ""
    items: tuple[str, ...] = ()
    riding: str = ""
    vehicle_colour: tuple[str, ...] = ()
    vehicle_type: str = ""
    since: str = "2h"
    for_: str = "6h"
    min_score: str = "0.5"
    max_candidates: str = "20"
    site: str = ""
    pole: str = ""

    def has(self, name: str, value: str) -> bool:
        """Whether ``value`` is chosen in ``name`` (for the template's selected/checked)."""
        got = getattr(self, name)
        return value in got if isinstance(got, tuple) else got == value


def read_form(raw: dict[str, list[str]]) -> LookoutForm:
    """The form's fields from a request body's values (lists: a multi-select repeats)."""

    def one(name: str) -> str:
        return (raw.get(name) or [""])[0].strip()

    values: dict[str, Any] = {}
    for f in fields(LookoutForm):
        key = "for" if f.name == "for_" else f.name
        if key not in raw:
            continue
        if f.name in LISTS:
            values[f.name] = tuple(
                v.strip().lower() for item in raw[key] for v in item.split(",") if v.strip()
            )
        else:
            keep_case = f.name in ("text", "site", "pole")
            values[f.name] = one(key) if keep_case else one(key).lower()
    return LookoutForm(**values)


def described(form: LookoutForm, found: Described) -> LookoutForm:
    """The form with its slots replaced by a description's (the window and site are kept)."""
    s = found.slots
    values: dict[str, Any] = {name: tuple(s.get(name, ())) for name in LISTS}
    values |= {name: str(s.get(name) or "") for name in ("size", "riding", "vehicle_type")}
    return replace(form, cls=s.get("cls", "person"), **values)


def chips(slots: dict[str, Any]) -> list[tuple[str, str]]:
    """Slot and value pairs, one per chip (``upper red``, ``items backpack``)."""
    out = [("class", str(slots["cls"]))] if slots.get("cls") == "vehicle" else []
    for name in SLOTS:
        value = slots.get(name)
        values = value if isinstance(value, list | tuple) else [value] if value else []
        out.extend((name.replace("_", " "), str(v)) for v in values)
    return out


def _choice(form: LookoutForm, name: str) -> None:
    got = getattr(form, name)
    for value in got if isinstance(got, tuple) else [got] if got else []:
        if value not in CHOICES[name]:
            what = "a colour the poles know" if CHOICES[name] is COLOURS else "one of the choices"
            raise BadInput(name, f"{value[:40]!r} is not {what}; expected one of "
                                 f"{', '.join(CHOICES[name])}")  # fmt: skip


def _number(form: LookoutForm, name: str, kind: type[float] | type[int], span: str) -> float:
    text = getattr(form, name)
    try:
        return kind(text)
    except ValueError:
        raise BadInput(name, f"expected {span}, got {text[:40]!r}") from None


def _duration(text: str, name: str) -> float:
    try:
        return parse_duration(text, name)
    except UserError:
        raise BadInput(name, f"expected a duration such as 2h, 90m, 1h30m or 45s, got "
                             f"{text[:40]!r}") from None  # fmt: skip


def window(form: LookoutForm) -> dict[str, Any]:
    """The look-back, duration and bounds of the form, checked."""
    return {
        "since_s": _duration(form.since, "since"),
        "for_s": _duration(form.for_, "for"),
        "min_score": _number(form, "min_score", float, "a number from 0 to 1"),
        "max_candidates": int(_number(form, "max_candidates", int, "a whole number, 1 to 200")),
    }


def to_args(
    form: LookoutForm, lookout_id: str, hist: str | None = None, cls: str = "person"
) -> Any:
    """``LookoutArgs`` of the form (``hist``: find similar among tracks of ``cls``, the slots
    left out); BadInput naming the first wrong field."""
    if len(form.text) > TEXT_MAX:
        raise BadInput("text", f"at most {TEXT_MAX} characters, got {len(form.text)}")
    args: dict[str, Any] = {"id": lookout_id, **window(form)}
    if hist is not None:
        args["hist"], args["cls"] = hist, cls
    else:
        for name in ("cls", *SLOTS):
            _choice(form, name)
        for name in SLOTS:
            value = getattr(form, name)
            if value:
                args[name] = list(value) if isinstance(value, tuple) else value
        if form.vehicle_colour or form.vehicle_type or form.cls == "vehicle":
            args["cls"] = "vehicle"
        if not any(getattr(form, name) for name in SLOTS):
            hint = ("press Parse to fill them in from the description, or choose them"
                    if form.text else "choose at least one, or describe and parse")  # fmt: skip
            raise BadInput("slots", f"none chosen (upper, lower, size, items, riding, vehicle "
                                    f"colour or type); {hint}")  # fmt: skip
    try:
        return check_args(args, NAMES)
    except UserError as exc:
        text = str(exc).removeprefix("lookout: ").split("; ")[0]
        name, _, why = text.partition(": ")
        if name == "(top level)":
            name = "slots"
        raise BadInput(name.split(".")[0], why.removeprefix("Value error, ")) from None
