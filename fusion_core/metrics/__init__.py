"""Fusion metrics: one small function per metric, toolbox conventions as data, ``score(...)``.

>>> from fusion_core.metrics import score, METRICS
>>> sorted(METRICS)[:3]
['AG', 'CC', 'CE']

Each metric function works on N×H×W float64 grey-level planes (0..255); ``score`` turns images in [0, 1]
into planes the way a convention's toolbox does and returns one value per image.
"""
from ._core import METRICS, Metric
from . import no_reference, information, structural, gradient, visual, fmi, mef, sharpness  # noqa: F401  (register)
from .conventions import ALIASES, CONVENTIONS, VIFB_SUFFIX, Column, Convention, get_convention
from .score import score

__all__ = ["METRICS", "Metric", "CONVENTIONS", "ALIASES", "VIFB_SUFFIX", "Column", "Convention", "get_convention", "score"]
