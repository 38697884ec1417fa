"""Similarity to the sources: SSIM, MS-SSIM, CC, SCD, PSNR, MSE, RMSE.

Planes are N×H×W float64 grey levels in [0, 255]; ``value_scale`` multiplies them first.
"""
from __future__ import annotations

import torch

from ._core import corr2, fspecial_gaussian, metric, product, row_strips, scaled, separable_many


def _reduce(a: torch.Tensor, b: torch.Tensor, reduce: str) -> torch.Tensor:
    if reduce == "sum":
        return a + b
    if reduce == "mean":
        return (a + b) / 2.0
    raise ValueError(f"unknown reduce {reduce!r} (sum or mean)")


def ssim_maps(refs: list[torch.Tensor], y: torch.Tensor, window: int = 11, sigma: float = 1.5, k1: float = 0.01,
              k2: float = 0.03, data_range: float = 255.0, shape: str = "valid", boundary: str = "zero"):
    r"""Mean SSIM of ``y`` against each plane in ``refs`` (Gaussian window), the maps of ``y`` filtered once:
    :math:`\frac{(2\mu_x\mu_y + C_1)(2\sigma_{xy} + C_2)}{(\mu_x^2+\mu_y^2+C_1)(\sigma_x^2+\sigma_y^2+C_2)}`."""
    g = fspecial_gaussian(window, sigma, device=y.device)
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    maps = [y, product(y, y)] + [m for x in refs for m in (x, product(x, x), product(x, y))]
    filtered = separable_many(maps, g, shape, boundary)
    sums = [torch.zeros(y.shape[0], dtype=y.dtype, device=y.device) for _ in refs]
    for rows in row_strips(filtered[0]):
        my, eyy, *ref_maps = (m[..., rows, :] for m in filtered)
        my2 = my * my
        vy = eyy.sub_(my2)
        for i in range(len(refs)):
            mx, exx, exy = ref_maps[3 * i: 3 * i + 3]
            mxy = mx * my
            cxy = exy.sub_(mxy)
            num = mxy.mul_(2).add_(c1).mul_(cxy.mul_(2).add_(c2))
            mx2 = mx.square_()
            vx = exx.sub_(mx2)
            den = mx2.add_(my2).add_(c1).mul_(vx.add_(vy).add_(c2))
            sums[i] = sums[i] + num.div_(den).sum(dim=(-2, -1))
    count = filtered[0].shape[-2] * filtered[0].shape[-1]
    return [total / count for total in sums]


def ssim_pair(x: torch.Tensor, y: torch.Tensor, **options) -> torch.Tensor:
    """Mean SSIM of two planes; see :func:`ssim_maps`."""
    return ssim_maps([x], y, **options)[0]


@metric("SSIM", "higher", needs_sources=True)
def ssim(fused, ir, vis, reduce: str = "mean", value_scale: float = 1.0, **options):
    r"""Structural similarity :math:`SSIM(A,F) \oplus SSIM(B,F)` (Wang, Bovik, Sheikh, Simoncelli, IEEE TIP 2004).

    ``reduce``: ``sum`` (VIFB, CDDFuse) or ``mean`` (SSIM_a of DenseFuse/Res2NetFuse). Options of
    :func:`ssim_pair`: 11×11 Gaussian σ = 1.5, K = (0.01, 0.03), ``data_range`` in the planes' units,
    ``shape='valid'`` (VIFB ``filter2``) or ``'same'`` with ``boundary='replicate'`` (MATLAB ``ssim``).
    """
    f, a, b = (scaled(x, value_scale) for x in (fused, ir, vis))
    return _reduce(*ssim_maps([a, b], f, **options), reduce)


@metric("MS_SSIM", "higher", needs_sources=True)
def ms_ssim(fused, ir, vis, reduce: str = "mean", data_range: float = 255.0):
    r"""Multi-scale SSIM (Wang, Simoncelli, Bovik, Asilomar 2003): 5 scales, 11×11 Gaussian σ = 1.5,
    weights (0.0448, 0.2856, 0.3001, 0.2363, 0.1333); ``pytorch_msssim.ms_ssim``. Needs min side > 160."""
    from pytorch_msssim import ms_ssim as _ms_ssim

    f, a, b = fused.unsqueeze(1), ir.unsqueeze(1), vis.unsqueeze(1)
    return _reduce(_ms_ssim(a, f, data_range=data_range, size_average=False),
                   _ms_ssim(b, f, data_range=data_range, size_average=False), reduce)


@metric("CC", "higher", needs_sources=True)
def correlation_coefficient(fused, ir, vis, reduce: str = "mean", tang_mean_bug: bool = False):
    r"""Correlation coefficient :math:`CC = \tfrac12[r(A,F) + r(B,F)]`, r = Pearson (``corr2``).

    Deshmukh & Bhosale, "Image fusion and image quality assessment of fused images", IJIP 2010.
    ``tang_mean_bug``: Tang's ``CC_evaluation.m`` centres B with the mean of A in the numerator of r(B,F);
    harmless, since the fused deviations sum to zero (kept to show it).
    """
    r_af = corr2(ir, fused)
    if tang_mean_bug:
        fc = fused - fused.mean(dim=(-2, -1), keepdim=True)
        bc = vis - vis.mean(dim=(-2, -1), keepdim=True)
        num = ((vis - ir.mean(dim=(-2, -1), keepdim=True)) * fc).sum(dim=(-2, -1))
        r_bf = num / torch.sqrt((bc * bc).sum(dim=(-2, -1)) * (fc * fc).sum(dim=(-2, -1)))
    else:
        r_bf = corr2(vis, fused)
    return _reduce(r_af, r_bf, reduce)


@metric("SCD", "higher", needs_sources=True)
def scd(fused, ir, vis):
    r"""Sum of the correlations of differences :math:`SCD = r(F-B, A) + r(F-A, B)`.

    Aslantas & Bendes, AEU Int. J. Electron. Commun. 2015.
    """
    return corr2(fused - vis, ir) + corr2(fused - ir, vis)


def _mse_pair(x: torch.Tensor, y: torch.Tensor, form: str) -> torch.Tensor:
    sse = (x - y).square_().sum(dim=(-2, -1))
    mn = x.shape[-1] * x.shape[-2]
    if form == "mse":
        return sse / mn
    if form == "sqrt_sse_over_mn":  # VIFB's mse(): sqrt(sum((a-b).^2)) / (m*n)
        return torch.sqrt(sse) / mn
    raise ValueError(f"unknown mse form {form!r}")


@metric("MSE", "lower", needs_sources=True)
def mse(fused, ir, vis, value_scale: float = 1.0, form: str = "mse"):
    r"""Mean squared error to the sources, averaged: :math:`\tfrac12[MSE(A,F) + MSE(B,F)]`.

    Jagalingam & Hegde, "A review of quality metrics for fused image", Aquatic Procedia 2015.
    """
    f, a, b = (scaled(x, value_scale) for x in (fused, ir, vis))
    return (_mse_pair(a, f, form) + _mse_pair(b, f, form)) / 2.0


@metric("RMSE", "lower", needs_sources=True)
def rmse(fused, ir, vis, value_scale: float = 1.0, form: str = "rmse"):
    r"""Root mean squared error :math:`\tfrac12[\sqrt{MSE(A,F)} + \sqrt{MSE(B,F)}]` (Jagalingam & Hegde 2015).

    ``form='sqrt_sse_over_mn'`` is VIFB's value :math:`\tfrac12\sum_X \sqrt{\sum (X-F)^2}/(MN)`
    (its ``mse()`` helper), which is RMSE/√(MN).
    """
    f, a, b = (scaled(x, value_scale) for x in (fused, ir, vis))
    if form == "rmse":
        return (torch.sqrt(_mse_pair(a, f, "mse")) + torch.sqrt(_mse_pair(b, f, "mse"))) / 2.0
    return (_mse_pair(a, f, form) + _mse_pair(b, f, form)) / 2.0


@metric("PSNR", "higher", needs_sources=True)
def psnr(fused, ir, vis, value_scale: float = 1.0, peak: float = 255.0, form: str = "mse"):
    r"""Peak signal-to-noise ratio :math:`PSNR = 20\log_{10}(peak/\sqrt{MSE})`, MSE averaged over A and B.

    Jagalingam & Hegde 2015. ``form``/``value_scale`` as in :func:`mse`; Tang's toolbox computes the MSE on
    [0, 1] images (``value_scale=1/255``) but keeps ``peak=255`` (+48.13 dB).
    """
    return 20.0 * torch.log10(peak / torch.sqrt(mse(fused, ir, vis, value_scale, form)))
