r"""Loss terms shared by the papers, one function per term; each paper's ``papers/<p>/loss.py`` assembles them.

Norms are means over all elements. SSIM: kornia, Gaussian 11×11, σ = 1.5, data range 1, ``(1 − SSIM map)/2``
clamped to [0, 1] and averaged. ∇: kornia's normalised Sobel x/y (÷8, replicate border).
"""
from __future__ import annotations

import torch
from kornia.filters import spatial_gradient
from kornia.losses import ssim_loss as _kornia_ssim_loss

SSIM_WINDOW = 11


# --------------------------------------------------------------------------- terms

def ssim_loss(x: torch.Tensor, y: torch.Tensor, window: int = SSIM_WINDOW) -> torch.Tensor:
    r"""Eq. 4: $L_{SSIM} = \mathrm{mean}\,\tfrac12 (1 - \mathrm{SSIM}(x, y))$ (kornia, 11×11 Gaussian, σ = 1.5)."""
    if x.shape != y.shape or x.ndim != 4:
        raise ValueError(f"ssim_loss needs two N×C×H×W tensors of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    return _kornia_ssim_loss(x, y, window, max_val=1.0)


def gradient_l1(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    r"""$\mathrm{mean}\,|\nabla x - \nabla y|$ over both Sobel directions (normalised kernels)."""
    return (spatial_gradient(x, "sobel", normalized=True) - spatial_gradient(y, "sobel", normalized=True)).abs().mean()


def mean_squared(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (x - y).square().mean()


def mean_absolute(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (x - y).abs().mean()


DISTANCES = {"mse": mean_squared, "l1": mean_absolute}


def reconstruction_loss(x: torch.Tensor, x_hat: torch.Tensor, lam: float) -> torch.Tensor:
    r"""Eq. 3: $f(X, \hat X) = \|X - \hat X\|_2^2 + \lambda L_{SSIM}(X, \hat X)$ (mean squared error)."""
    return mean_squared(x, x_hat) + lam * ssim_loss(x, x_hat)
