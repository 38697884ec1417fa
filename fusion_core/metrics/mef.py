"""MEF-SSIM (Ma, Zeng, Wang, IEEE TIP 2015): the "MS_SSIM" of the DenseFuse/Res2NetFuse MATLAB code.

Planes are N×H×W float64 grey levels in [0, 255]. The per-window construction of the reference patch
(structure consistency R, weights, rescaling to the strongest contrast) is linear in the source patches,
so every window statistic reduces to box- and Gaussian-filtered products of the images; no window loop.
"""
from __future__ import annotations

import functools
import math

import torch

from ._core import fspecial_gaussian, metric, separable_many

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
    pairs = [(i, j) for i in range(n) for j in range(i, n)]  # x_i·x_j = x_j·x_i: each product filtered once
    products = [xs[i] * xs[j] for i, j in pairs]
    boxed = separable_many(xs + products, box, "valid")
    mu, box_prod = boxed[:n], dict(zip(pairs, boxed[n:]))
    gauss_all = separable_many(xs + [f, f * f] + products + [x * f for x in xs], gauss, "valid")
    g, (gf, gff) = gauss_all[:n], gauss_all[n:n + 2]
    gauss_prod = dict(zip(pairs, gauss_all[n + 2:n + 2 + len(pairs)]))
    gauss_xf = gauss_all[n + 2 + len(pairs):]
    sym = lambda table, i, j: table[(i, j) if i <= j else (j, i)]  # noqa: E731
    mm = {(i, j): mu[i] * mu[j] for i, j in pairs}
    cov = {(i, j): box_prod[i, j] - mm[i, j] for i, j in pairs}  # box covariances
    sd = [torch.sqrt((size * cov[i, i]).clamp_min_(0)) for i in range(n)]
    ed = [d + 0.001 for d in sd]
    num = torch.sqrt((size * sum(sym(cov, i, j) for i in range(n) for j in range(n))).clamp_min_(0))
    r = num.add_(_EPS).div_(sum(sd).add_(_EPS))
    r.masked_fill_(r > 1, 1 - _EPS).masked_fill_(r < 0, _EPS)
    p = r.mul_(math.pi / 2).tan_().clamp_(max=10)
    weights = [(e / window).pow_(p).add_(_EPS) for e in ed]
    total = sum(weights)
    alpha = [w.div_(total).div_(e) for w, e in zip(weights, ed)]  # rBlock = Σ α_i (x_i − μ_i)
    aa = {(i, j): alpha[i] * alpha[j] for i, j in pairs}  # α_i·α_j = α_j·α_i exactly
    norm = torch.sqrt((size * sum(sym(aa, i, j) * sym(cov, i, j) for i in range(n) for j in range(n))).clamp_min_(0))
    outside = ~(norm > 0)
    beta = (functools.reduce(torch.maximum, ed) / norm.masked_fill(outside, 1.0)).masked_fill_(outside, 1.0)
    mu1 = beta * sum(alpha[i] * (g[i] - mu[i]) for i in range(n))
    mg = [[mu[i] * g[j] for j in range(n)] for i in range(n)]
    e_rr = sum(sym(aa, i, j) * (sym(gauss_prod, i, j) - mg[i][j]).sub_(mg[j][i]).add_(sym(mm, i, j))
               for i in range(n) for j in range(n)) * beta * beta
    e_rf = beta * sum(alpha[i] * (gauss_xf[i] - mu[i] * gf) for i in range(n))
    s1 = e_rr.sub_(mu1 * mu1)
    s2 = gff - gf * gf
    s12 = e_rf.sub_(mu1.mul_(gf))
    c = (k * 255.0) ** 2
    return s12.mul_(2).add_(c).div_(s1.add_(s2).add_(c)).mean(dim=(-2, -1))


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
