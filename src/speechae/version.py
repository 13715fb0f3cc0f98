"""The package's version, decided here: part of every store key, cache key and model's metadata."""

__version__ = "0.2.0"
