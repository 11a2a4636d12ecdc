"""The ``lookout`` command's arguments: slots, or a histogram for "find similar".

Light on purpose (pydantic only): the vision process imports it with its protocol before it
lowers its CPU priority, before numpy and OpenCV may start their thread pools.  The score
is :mod:`agent.lookout.match`.
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Final, Literal, Self

from pydantic import Field, model_validator

from agent.control.registry import Args

if TYPE_CHECKING:
    from agent.lookout.index import Slots

__all__ = ["ASKABLE", "HIST_BINS", "ITEMS", "LookoutArgs", "LookoutCancelArgs"]

Colour = Literal[
    "black", "white", "grey", "red", "orange", "yellow", "green", "blue", "purple", "pink",
    "brown", "navy", "beige", "skyblue", "silver",
]  # fmt: skip
ASKABLE: Final = Colour.__args__  # type: ignore[attr-defined]
Item = Literal["backpack", "handbag", "umbrella", "suitcase"]
HIST_BINS: Final = 128
ITEMS: Final = Item.__args__  # type: ignore[attr-defined]


class LookoutArgs(Args):
    """Arguments of ``lookout``: slots, or ``hist`` (find similar); window and bounds."""

    id: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$", description="Lookout id (the centre's)."
    )
    cls: Literal["person", "vehicle"] = Field(default="person", description="What is sought.")
    upper: list[Colour] = Field(default=[], max_length=4, description="Upper garment colours.")
    lower: list[Colour] = Field(default=[], max_length=4, description="Lower garment colours.")
    size: Literal["child", "adult"] | None = Field(default=None, description="Size class.")
    items: list[Item] = Field(default=[], max_length=4, description="Carried items, all of them.")
    riding: Literal["bicycle", "motorcycle"] | None = Field(default=None, description="Riding.")
    vehicle_colour: list[Colour] = Field(default=[], max_length=4, description="Vehicle colours.")
    vehicle_type: Literal["car", "truck", "bus", "motorcycle", "bicycle"] | None = Field(
        default=None, description="Vehicle type."
    )
    hist: str | None = Field(
        default=None,
        max_length=200,
        description="Find similar: base64 of a candidate's 128 uint8 histogram bins.",
    )
    since_s: float = Field(default=7200.0, ge=0, le=7 * 86400, description="Look back this far.")
    for_s: float = Field(default=21600.0, gt=0, le=7 * 86400, description="Watch live this long.")
    min_score: float = Field(default=0.5, ge=0, le=1, description="Report from this score on.")
    max_candidates: int = Field(default=20, ge=1, le=200, description="Most candidates a pole.")

    @model_validator(mode="after")
    def _one_form(self) -> Self:
        person = bool(self.upper or self.lower or self.items or self.size or self.riding)
        vehicle = bool(self.vehicle_colour or self.vehicle_type)
        if self.hist is not None:
            if person or vehicle:
                raise ValueError("hist (find similar) goes without slots")
            self.histogram()  # raises naming the field
        elif self.cls == "person" and vehicle:
            raise ValueError("vehicle_colour and vehicle_type need cls 'vehicle'")
        elif self.cls == "vehicle" and person:
            raise ValueError("upper, lower, size, items and riding need cls 'person'")
        elif not (person or vehicle):
            raise ValueError("ask for at least one slot (upper, lower, size, items, ...) or hist")
        return self

    def histogram(self) -> bytes | None:
        """The decoded histogram of the find-similar form; ValueError naming ``hist``."""
        if self.hist is None:
            return None
        try:
            raw = base64.b64decode(self.hist, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("hist: not base64") from None
        if len(raw) != HIST_BINS:
            raise ValueError(f"hist: {len(raw)} bytes, expected {HIST_BINS}")
        return raw

    def slots(self) -> Slots:
        """The index's slots (a vehicle's colour is kept in its record's upper slot)."""
        from agent.lookout.index import Slots

        if self.cls == "vehicle":
            return Slots(cls="vehicle", upper=tuple(self.vehicle_colour), vtype=self.vehicle_type)
        return Slots(
            cls="person",
            upper=tuple(self.upper),
            lower=tuple(self.lower),
            size=self.size,
            items=tuple(self.items),
            riding=self.riding,
        )

    def asked(self) -> dict[str, object]:
        """The slots as sent, without the unset ones (for the audit log and the centre)."""
        return self.model_dump(
            exclude_defaults=True, exclude={"id", "since_s", "for_s", "min_score", "max_candidates"}
        )


class LookoutCancelArgs(Args):
    """Arguments of ``lookout-cancel``."""

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$", description="Lookout id.")
