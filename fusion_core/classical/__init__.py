"""Classical fusion methods, one per file; importing this package registers them all in METHODS.

``classical_names()`` lists them; ``VIFB_RGB[name]`` fuses a colour visible image the way VIFB
ran that method (per RGB channel, or as the method's own colour variant), for the validation
against VIFB's published outputs.
"""
from __future__ import annotations

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")

from ._common import VIFB_RGB, fuse_rgb_per_channel  # noqa: E402


def classical_names() -> list[str]:
    """Names of the registered methods that live in this package."""
    from ..methods import METHODS

    return [name for name, builder in METHODS.items() if builder.__module__.startswith(__name__)]


__all__ = ["VIFB_RGB", "classical_names", "fuse_rgb_per_channel"]
