"""The method registry: every fusion method, classical or learned, under one name.

A method is registered as a *builder*::

    @METHODS.register("average")
    def build(weights=None, strategy=None, device="cpu") -> Fuser: ...

and the built ``Fuser`` maps ``(ir, vis)`` — float tensors N×1×H×W in [0, 1] on ``device`` — to the
fused N×1×H×W tensor in [0, 1]. Colour is handled outside the method (Y of YCbCr is fused, CbCr
re-attached by :func:`fusion_core.fuse.fuse_pairs`). Learned methods take ``weights`` (a checkpoint
file or folder) and a fusion ``strategy`` name; classical ones reject options they do not use.
"""
from __future__ import annotations

from typing import Callable, Protocol

import torch

from .registry import Registry


class Fuser(Protocol):
    def __call__(self, ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor: ...


MethodBuilder = Callable[..., Fuser]
METHODS: Registry[MethodBuilder] = Registry("method")


def no_options(name: str, weights=None, strategy=None) -> None:
    """Classical methods take no weights or strategy: say so instead of silently ignoring them."""
    if weights is not None:
        raise ValueError(f"method '{name}' takes no --weights")
    if strategy is not None:
        raise ValueError(f"method '{name}' takes no --strategy")


def build_method(name: str, weights=None, strategy=None, device: str = "cpu") -> Fuser:
    _load_all()
    return METHODS[name](weights=weights, strategy=strategy, device=device)


def method_names() -> list[str]:
    _load_all()
    return list(METHODS)


def _load_all() -> None:
    # Importing the packages registers their methods (one file per method / network).
    from . import classical, nets  # noqa: F401
