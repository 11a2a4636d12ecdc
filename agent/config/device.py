"""Who and where the unit is: ids, pole number, place and coordinates."""

from __future__ import annotations

from pydantic import Field

from agent.config.base import ID_PATTERN, Strict

__all__ = ["DeviceConfig"]


class DeviceConfig(Strict):
    id: str = Field(
        pattern=ID_PATTERN, description="Device id, unique in the city; MQTT topics use it."
    )
    site: str = Field(pattern=ID_PATTERN, description="Site (district or control centre) id.")
    pole: str = Field(min_length=1, max_length=32, description="Pole number painted on the pole.")
    location: str = Field(
        default="", max_length=200, description="Human-readable place, e.g. '역삼초 정문 앞'."
    )
    address: str = Field(default="", max_length=200, description="Road address (도로명주소).")
    latitude: float = Field(ge=-90.0, le=90.0, description="WGS84 latitude in degrees.")
    longitude: float = Field(ge=-180.0, le=180.0, description="WGS84 longitude in degrees.")
