"""The metric record, the ``METRICS`` registry and the numeric building blocks shared by the metrics.

Every metric function has the signature ``fn(fused, ir, vis, **options) -> Tensor[N]`` on *planes*:
float64 tensors of shape N×H×W holding grey levels in [0, 255] (what an 8-bit image decodes to).
No-reference metrics ignore ``ir``/``vis``. Options come from the convention table
(:mod:`fusion_core.metrics.conventions`); each function documents the ones it takes.

The filters reproduce MATLAB's boundary handling, since the toolboxes differ exactly there:
``filter2``/``imfilter`` correlate, ``conv2`` convolves, ``'same'`` keeps the size with zero padding,
``'valid'`` drops the border, ``imfilter(...,'replicate')`` repeats the edge pixels.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..registry import Registry

GREY_LEVELS = 256
# MATLAB rgb2gray coefficients: the first row of inv([1 .956 .621; 1 -.272 -.647; 1 -1.106 1.703]).
MATLAB_RGB2GRAY = (0.298936021293775, 0.587043074451121, 0.114020904255103)


@dataclass(frozen=True)
class Metric:
    """One registered metric: the function, which way is better, and whether it needs the sources."""

    name: str
    fn: Callable[..., torch.Tensor]
    direction: str  # "higher" or "lower" is better
    needs_sources: bool
    summary: str = ""
    defaults: dict = field(default_factory=dict)


METRICS: Registry[Metric] = Registry("metric")


def metric(name: str, direction: str, needs_sources: bool, summary: str = "", **defaults):
    """Decorator: register ``fn`` in ``METRICS`` under ``name``."""
    if direction not in ("higher", "lower"):
        raise ValueError(f"metric '{name}': direction must be 'higher' or 'lower', not {direction!r}")

    def add(fn):
        METRICS.register(name)(Metric(name, fn, direction, needs_sources, summary or (fn.__doc__ or "").split("\n")[0], defaults))
        return fn

    return add


# --------------------------------------------------------------------------- checks and colour

def check_planes(*planes: torch.Tensor) -> None:
    shape = planes[0].shape
    for plane in planes:
        if plane.dim() != 3:
            raise ValueError(f"metric input must be N×H×W planes, got shape {tuple(plane.shape)}")
        if plane.shape != shape:
            raise ValueError(f"metric inputs differ in shape: {tuple(shape)} vs {tuple(plane.shape)}")


def rgb2gray(rgb: torch.Tensor, rounded: bool) -> torch.Tensor:
    """MATLAB ``rgb2gray`` on N×3×H×W grey levels; ``rounded`` = the uint8 path (round half away from 0)."""
    c = torch.tensor(MATLAB_RGB2GRAY, dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)
    grey = (rgb * c).sum(dim=1, keepdim=True)
    return torch.floor(grey + 0.5).clamp(0, 255) if rounded else grey


# --------------------------------------------------------------------------- filters

def fspecial_gaussian(size: int, sigma: float, dtype=torch.float64, device=None) -> torch.Tensor:
    """MATLAB ``fspecial('gaussian', size, sigma)`` as its separable 1-D factor (outer(g, g) = the 2-D kernel)."""
    half = (size - 1) / 2.0
    x = torch.arange(size, dtype=dtype, device=device) - half
    g = torch.exp(-(x * x) / (2.0 * sigma * sigma))
    return g / g.sum()


def _pad(x: torch.Tensor, ph: int, pw: int, boundary: str) -> torch.Tensor:
    if ph == 0 and pw == 0:
        return x
    if boundary == "zero":
        return F.pad(x, (pw, pw, ph, ph))
    if boundary == "replicate":
        return F.pad(x, (pw, pw, ph, ph), mode="replicate")
    if boundary == "symmetric":  # MATLAB 'symmetric': mirror including the edge pixel
        if ph:
            x = torch.cat([x[..., :ph, :].flip(-2), x, x[..., -ph:, :].flip(-2)], dim=-2)
        if pw:
            x = torch.cat([x[..., :, :pw].flip(-1), x, x[..., :, -pw:].flip(-1)], dim=-1)
        return x
    raise ValueError(f"unknown boundary {boundary!r}")


_SCIPY_MODE = {"zero": "constant", "replicate": "nearest", "symmetric": "reflect"}


def _crop_valid(y: torch.Tensor, kh: int, kw: int) -> torch.Tensor:
    top, left = (kh - 1) // 2, (kw - 1) // 2
    return y[..., top:y.shape[-2] - (kh - 1 - top), left:y.shape[-1] - (kw - 1 - left)]


def correlate(x: torch.Tensor, kernel: torch.Tensor, shape: str = "same", boundary: str = "zero") -> torch.Tensor:
    """2-D correlation of N×H×W planes with a kh×kw kernel (MATLAB ``filter2``/``imfilter``).

    ``shape``: ``"same"`` (padded by ``boundary``: zero, replicate, symmetric) or ``"valid"``. On the CPU
    it runs scipy.ndimage (float64, several times faster than torch's double convolution), elsewhere conv2d.
    """
    kh, kw = kernel.shape
    if shape not in ("same", "valid"):
        raise ValueError(f"unknown shape {shape!r}")
    if x.device.type == "cpu" and kh % 2 and kw % 2:
        from scipy import ndimage

        k = kernel.detach().cpu().double().numpy()[None]
        y = torch.from_numpy(ndimage.correlate(x.numpy(), k, mode=_SCIPY_MODE[boundary] if shape == "same" else "constant"))
        return y if shape == "same" else _crop_valid(y, kh, kw)
    if shape == "same":
        x = _pad(x, (kh - 1) // 2, (kw - 1) // 2, boundary)
        # MATLAB centres an even kernel at floor((k+1)/2); the extra row/column of padding goes after
        if kh % 2 == 0 or kw % 2 == 0:
            x = F.pad(x, (0, 1 if kw % 2 == 0 else 0, 0, 1 if kh % 2 == 0 else 0))
    return F.conv2d(x.unsqueeze(1), kernel.to(x).view(1, 1, kh, kw)).squeeze(1)


def convolve(x: torch.Tensor, kernel: torch.Tensor, shape: str = "same", boundary: str = "zero") -> torch.Tensor:
    """MATLAB ``conv2(x, kernel, shape)``: correlation with the kernel rotated by 180°."""
    return correlate(x, torch.flip(kernel, dims=(0, 1)), shape, boundary)


def separable(x: torch.Tensor, g: torch.Tensor, shape: str = "same", boundary: str = "zero",
              step: int = 1) -> torch.Tensor:
    """Correlation with the separable kernel outer(g, g) (odd length): same result as :func:`correlate`.

    ``step`` keeps every step-th output row and column ('valid' only), filtering only those."""
    k = g.numel()
    if step != 1:
        if shape != "valid":
            raise ValueError("separable: step needs shape='valid'")
        h = (k - 1) // 2
        if x.device.type == "cpu":
            from scipy import ndimage

            gn = g.detach().cpu().double().numpy()
            y = ndimage.correlate1d(x.numpy(), gn, axis=-1, mode="constant")[..., h: x.shape[-1] - h: step]
            y = ndimage.correlate1d(np.ascontiguousarray(y), gn, axis=-2, mode="constant")[..., h: x.shape[-2] - h: step, :]
            return torch.from_numpy(np.ascontiguousarray(y))
        return separable(x, g, "valid")[..., ::step, ::step]
    if x.device.type == "cpu":
        from scipy import ndimage

        gn = g.detach().cpu().double().numpy()
        mode = _SCIPY_MODE[boundary] if shape == "same" else "constant"
        xn = x.numpy()
        if shape == "valid":  # filter only what survives: rows first on the cropped columns
            y = ndimage.correlate1d(xn, gn, axis=-1, mode=mode)[..., (k - 1) // 2: xn.shape[-1] - (k - 1) // 2]
            y = ndimage.correlate1d(y, gn, axis=-2, mode=mode)[..., (k - 1) // 2: xn.shape[-2] - (k - 1) // 2, :]
            return torch.from_numpy(np.ascontiguousarray(y))
        y = ndimage.correlate1d(ndimage.correlate1d(xn, gn, axis=-1, mode=mode), gn, axis=-2, mode=mode)
        return torch.from_numpy(y)
    if shape == "same":
        x = _pad(x, (k - 1) // 2, (k - 1) // 2, boundary)
    g = g.to(x)
    n = x.shape[0]
    y = F.conv2d(x.reshape(n, 1, *x.shape[-2:]), g.view(1, 1, 1, k))
    y = F.conv2d(y, g.view(1, 1, k, 1))
    return y.squeeze(1)


def gradient_xy(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """MATLAB ``gradient``: central differences inside, one-sided at the borders; returns (d/dx, d/dy)."""
    dy, dx = torch.gradient(x, dim=(-2, -1))
    return dx, dy


# --------------------------------------------------------------------------- histograms

def histogram(levels: torch.Tensor, bins: int = GREY_LEVELS) -> torch.Tensor:
    """Per-image counts of integer levels 0..bins-1: N×H×W (integer-valued) → N×bins, via one bincount."""
    n = levels.shape[0]
    idx = levels.reshape(n, -1).long() + bins * torch.arange(n, device=levels.device).view(n, 1)
    return torch.bincount(idx.reshape(-1), minlength=n * bins).view(n, bins).to(torch.float64)


def joint_histogram(a: torch.Tensor, b: torch.Tensor, bins: int = GREY_LEVELS) -> torch.Tensor:
    """Per-image joint counts N×bins×bins (rows: a, columns: b) of integer levels."""
    n = a.shape[0]
    idx = a.reshape(n, -1).long() * bins + b.reshape(n, -1).long()
    idx = idx + bins * bins * torch.arange(n, device=a.device).view(n, 1)
    return torch.bincount(idx.reshape(-1), minlength=n * bins * bins).view(n, bins, bins).to(torch.float64)


def entropy_of(counts: torch.Tensor, base: float = 2.0, dims=(-1,)) -> torch.Tensor:
    """Shannon entropy of count arrays, 0·log 0 = 0, over ``dims``."""
    p = counts / counts.sum(dim=dims, keepdim=True)
    logp = torch.where(p > 0, torch.log(p.clamp_min(1e-300)), torch.zeros_like(p))
    return -(p * logp).sum(dim=dims) / math.log(base)


def corr2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """MATLAB ``corr2``: Pearson correlation of whole planes, N×H×W → N."""
    a = a - a.mean(dim=(-2, -1), keepdim=True)
    b = b - b.mean(dim=(-2, -1), keepdim=True)
    return (a * b).sum(dim=(-2, -1)) / torch.sqrt((a * a).sum(dim=(-2, -1)) * (b * b).sum(dim=(-2, -1)))


def round_half_away(x: torch.Tensor) -> torch.Tensor:
    """MATLAB ``round``/integer casts: halves go away from zero (torch.round goes to even)."""
    return torch.sign(x) * torch.floor(torch.abs(x) + 0.5)
