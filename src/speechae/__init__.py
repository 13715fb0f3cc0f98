"""speechae: DisVoice-exact autoencoder features for pathological speech research.

Example:
    >>> from speechae import Extractor  # doctest: +SKIP
    >>> Extractor("cae-256").process_file("recording.wav")  # doctest: +SKIP
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from speechae.version import __version__

_LAZY = {
    "Extractor": "speechae.extractor",
    "RepLearning": "speechae.replearning",
    "FrontEndConfig": "speechae.frontend",
    "load_model": "speechae.weights",
}
__all__ = ["__version__", *sorted(_LAZY)]

if TYPE_CHECKING:
    from speechae.extractor import Extractor as Extractor
    from speechae.frontend import FrontEndConfig as FrontEndConfig
    from speechae.replearning import RepLearning as RepLearning
    from speechae.weights import load_model as load_model


def __getattr__(name: str) -> Any:
    """Import the heavy parts (torch, pandas) only when they are first used."""
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'speechae' has no attribute {name!r}")
