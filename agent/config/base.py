"""The base of every config section, and the shapes several sections share."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ID_PATTERN", "Point", "Strict"]

ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
Point = tuple[Annotated[float, Field(ge=0.0, le=1.0)], Annotated[float, Field(ge=0.0, le=1.0)]]


class Strict(BaseModel):
    """Base of every config section: unknown keys are errors, values never change."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)
