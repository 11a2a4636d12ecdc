"""pole-agent: the edge agent of a city-safety camera pole."""

__all__ = ["__version__"]

__version__ = "0.1.0"
