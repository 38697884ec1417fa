"""Pixel-wise average: F = (A + B) / 2, the simplest baseline."""
from __future__ import annotations

import torch

from ..methods import METHODS, no_options


def average_fusion(ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
    r"""$F = \tfrac12 (A + B)$ for N×1×H×W tensors."""
    if ir.shape != vis.shape:
        raise ValueError(f"ir and vis shapes differ: {tuple(ir.shape)} vs {tuple(vis.shape)}")
    return 0.5 * (ir + vis)


@METHODS.register("average")
def build(weights=None, rule=None, device="cpu"):
    no_options("average", weights, rule)
    return average_fusion
