r"""Pixel-wise maximum: F = max(A, B) — the 'choose-max' baseline of the fusion literature."""
from __future__ import annotations

import torch

from ._common import check_pair, per_channel_rgb, register


def max_fusion(ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
    r"""$F = \max(A, B)$ per pixel, for N×1×H×W tensors."""
    check_pair(ir, vis)
    return torch.maximum(ir, vis)


register("max", max_fusion, per_channel_rgb(max_fusion))
