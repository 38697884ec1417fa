"""Shared plumbing for the classical methods: tensor ↔ numpy, input checks, colour helpers.

Every classical method is written as a function on one pair of 2-D float64 numpy arrays (the
libraries they use — OpenCV, SciPy, PyWavelets, dtcwt — are numpy-based) and lifted to the
package's N×1×H×W tensor interface by :func:`per_image`. Colour is handled outside the method
(Y is fused), except for the validation against VIFB, which fused colour visible images in its own
way per method: :data:`VIFB_RGB` maps a method name to a function that mirrors what VIFB did.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from ..methods import METHODS, no_options

ArrayFusion = Callable[[np.ndarray, np.ndarray], np.ndarray]
TensorFusion = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

# Colour fusion as VIFB ran it, per method name: (ir N×1×H×W, vis N×3×H×W in [0, 1]) -> N×3×H×W.
VIFB_RGB: dict[str, TensorFusion] = {}


def check_pair(ir: torch.Tensor, vis: torch.Tensor) -> None:
    """Both N×1×H×W with the same shape; errors print the offending shapes."""
    if ir.ndim != 4 or ir.shape[1] != 1:
        raise ValueError(f"ir must be N×1×H×W, got {tuple(ir.shape)}")
    if vis.shape != ir.shape:
        raise ValueError(f"ir and vis shapes differ: {tuple(ir.shape)} vs {tuple(vis.shape)}")


def per_image(fn: ArrayFusion) -> TensorFusion:
    """Lift ``fn(ir_hw, vis_hw) -> fused_hw`` (float64 arrays in [0, 1]) to N×1×H×W tensors."""

    def fuse(ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
        check_pair(ir, vis)
        a = ir.detach().cpu().double().numpy()
        b = vis.detach().cpu().double().numpy()
        out = np.stack([fn(a[n, 0], b[n, 0]) for n in range(a.shape[0])])[:, None]
        return torch.from_numpy(np.ascontiguousarray(out)).to(dtype=ir.dtype, device=ir.device)

    fuse.__name__ = getattr(fn, "__name__", "fuse")
    fuse.__doc__ = fn.__doc__
    return fuse


def register(name: str, fusion: TensorFusion, vifb_rgb: TensorFusion | None = None) -> TensorFusion:
    """Register ``fusion`` in METHODS under ``name`` (and its VIFB colour variant, if any)."""

    def build(weights=None, rule=None, device="cpu"):
        no_options(name, weights, rule)
        return fusion

    build.__doc__ = fusion.__doc__
    METHODS.register(name)(build)
    if vifb_rgb is not None:
        VIFB_RGB[name] = vifb_rgb
    return fusion


def fuse_rgb_per_channel(fn: TensorFusion, ir: torch.Tensor, vis_rgb: torch.Tensor) -> torch.Tensor:
    """Fuse each RGB channel of ``vis_rgb`` (N×3×H×W) with the grey ``ir`` (N×1×H×W or N×3×H×W).

    This is how VIFB ran most single-channel methods on colour visible images (ADF, CBF, MSVD, TIF):
    ``fused[:, c] = fn(ir[:, c or 0], vis[:, c])``.
    """
    if vis_rgb.ndim != 4 or vis_rgb.shape[1] != 3:
        raise ValueError(f"vis_rgb must be N×3×H×W, got {tuple(vis_rgb.shape)}")
    if ir.shape[1] not in (1, 3) or ir.shape[0] != vis_rgb.shape[0] or ir.shape[-2:] != vis_rgb.shape[-2:]:
        raise ValueError(f"ir {tuple(ir.shape)} does not fit vis_rgb {tuple(vis_rgb.shape)}")
    channels = [fn(ir[:, c : c + 1] if ir.shape[1] == 3 else ir, vis_rgb[:, c : c + 1]) for c in range(3)]
    return torch.cat(channels, dim=1)


def per_channel_rgb(fn: TensorFusion) -> TensorFusion:
    """``fuse_rgb_per_channel`` bound to ``fn``: the VIFB colour variant of a per-channel method."""
    return lambda ir, vis_rgb: fuse_rgb_per_channel(fn, ir, vis_rgb)


def to_255(image: np.ndarray) -> np.ndarray:
    """[0, 1] → [0, 255] float64: methods whose constants are given for 8-bit intensities use it."""
    return np.asarray(image, dtype=np.float64) * 255.0


def matlab_uint8(image: np.ndarray) -> np.ndarray:
    """MATLAB's ``uint8(x)``: round half away from zero, saturate to [0, 255], NaN → 0."""
    out = np.nan_to_num(np.asarray(image, dtype=np.float64), nan=0.0)
    return np.clip(np.sign(out) * np.floor(np.abs(out) + 0.5), 0, 255)
