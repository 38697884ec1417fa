"""MEF-SSIM (Ma, Zeng, Wang, IEEE TIP 2015): the "MS_SSIM" of the DenseFuse/Res2NetFuse MATLAB code.

Planes are N×H×W float64 grey levels in [0, 255]. The per-window construction of the reference patch
(structure consistency R, weights, rescaling to the strongest contrast) is linear in the source patches,
so every window statistic reduces to box- and Gaussian-filtered products of the images; no window loop.
"""
from __future__ import annotations

import math

import torch

from ._core import fspecial_gaussian, metric, separable

_EPS = 2.220446049250313e-16  # MATLAB eps


def mef_ssim_single(sources: list[torch.Tensor], fused: torch.Tensor, k: float = 0.03, window: int = 11,
                    sigma: float = 1.5) -> torch.Tensor:
    """One scale of ``mef_ssim.m``: mean over the 'valid' windows of (2σ_rf + C)/(σ_r² + σ_f² + C)."""
    box = torch.full((window,), 1.0 / window, dtype=torch.float64, device=fused.device)
    gauss = fspecial_gaussian(window, sigma, device=fused.device)
    size = window * window
    # centre each image on its global mean: every statistic below is shift invariant, cancellation is not
    xs = [x - x.mean(dim=(-2, -1), keepdim=True) for x in sources]
    f = fused - fused.mean(dim=(-2, -1), keepdim=True)
    n = len(xs)
    bmap = lambda t: separable(t, box, "valid")  # noqa: E731
    gmap = lambda t: separable(t, gauss, "valid")  # noqa: E731
    mu = [bmap(x) for x in xs]
    cov = [[bmap(xs[i] * xs[j]) - mu[i] * mu[j] for j in range(n)] for i in range(n)]  # box covariances
    ed = [torch.sqrt((size * cov[i][i]).clamp_min(0)) + 0.001 for i in range(n)]
    num = torch.sqrt((size * sum(cov[i][j] for i in range(n) for j in range(n))).clamp_min(0))
    den = sum(torch.sqrt((size * cov[i][i]).clamp_min(0)) for i in range(n))
    r = (num + _EPS) / (den + _EPS)
    r = torch.where(r > 1, torch.full_like(r, 1 - _EPS), r)
    r = torch.where(r < 0, torch.full_like(r, _EPS), r)
    p = torch.tan(math.pi / 2 * r).clamp(max=10)
    weights = [(e / window) ** p + _EPS for e in ed]
    total = sum(weights)
    alpha = [w / total / e for w, e in zip(weights, ed)]  # rBlock = Σ α_i (x_i − μ_i)
    norm = torch.sqrt((size * sum(alpha[i] * alpha[j] * cov[i][j] for i in range(n) for j in range(n))).clamp_min(0))
    max_ed = torch.stack(ed).amax(0)
    beta = torch.where(norm > 0, max_ed / torch.where(norm > 0, norm, torch.ones_like(norm)), torch.ones_like(norm))
    g = [gmap(x) for x in xs]
    gf, gff = gmap(f), gmap(f * f)
    mu1 = beta * sum(alpha[i] * (g[i] - mu[i]) for i in range(n))
    e_rr = sum(alpha[i] * alpha[j] * (gmap(xs[i] * xs[j]) - mu[i] * g[j] - mu[j] * g[i] + mu[i] * mu[j])
               for i in range(n) for j in range(n)) * beta * beta
    e_rf = beta * sum(alpha[i] * (gmap(xs[i] * f) - mu[i] * gf) for i in range(n))
    s1, s2, s12 = e_rr - mu1 * mu1, gff - gf * gf, e_rf - mu1 * gf
    c = (k * 255.0) ** 2
    return ((2 * s12 + c) / (s1 + s2 + c)).mean(dim=(-2, -1))


def _downsample(x: torch.Tensor) -> torch.Tensor:
    """``imfilter(x, ones(2)/4, 'symmetric', 'same')`` then every second pixel."""
    x = torch.cat([x, x[..., -1:, :]], dim=-2)
    x = torch.cat([x, x[..., :, -1:]], dim=-1)
    y = (x[..., :-1, :-1] + x[..., 1:, :-1] + x[..., :-1, 1:] + x[..., 1:, 1:]) / 4
    return y[..., ::2, ::2]


@metric("MEF_SSIM", "higher", needs_sources=True)
def mef_ssim(fused, ir, vis, levels: int = 3, weights=(0.0448, 0.2856, 0.3001), k: float = 0.03):
    r"""MEF-SSIM :math:`Q = \prod_l Q_l^{w_l}` (Ma, Zeng, Wang, "Perceptual quality assessment for multi-exposure
    image fusion", IEEE TIP 2015; ``analysis_ms_ssim.m``): 3 levels, weights (0.0448, 0.2856, 0.3001)
    normalised, 2×2 mean + decimation between levels. ``levels=1`` is ``mef_ssim.m`` (Tang's "SSIM")."""
    w = torch.tensor(weights[:levels], dtype=torch.float64)
    w = w / w.sum()
    sources, f = [ir, vis], fused
    total = torch.ones(fused.shape[0], dtype=torch.float64, device=fused.device)
    for level in range(levels):
        total = total * mef_ssim_single(sources, f, k) ** float(w[level])
        if level < levels - 1:
            sources, f = [_downsample(x) for x in sources], _downsample(f)
    return total
