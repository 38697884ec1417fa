"""Human-visual-system metrics: VIF (pixel-domain VIFp and fusion VIFF), Qcb (Chen–Blum), Qcv (Chen–Varshney).

Planes are N×H×W float64 grey levels in [0, 255].
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ._core import correlate, fspecial_gaussian, metric, product, row_strips, separable, separable_many

_EPS = 1e-10
_EPS_BELOW = math.nextafter(_EPS, 0.0)  # threshold(x, _EPS_BELOW) keeps x ≥ _EPS


def _scale_stats(ref, dist, g, uint8_products: bool, first: bool):
    """Local means/variances/covariance with filter2(win, ·, 'valid') of the five maps."""
    def prod(x, y):
        p = x * y
        return p.clamp(max=255.0) if (uint8_products and first) else p
    mu1, mu2, e11, e22, e12 = separable_many([ref, dist, prod(ref, ref), prod(dist, dist), prod(ref, dist)], g, "valid")
    s1 = (e11 - mu1 * mu1).clamp_min(0)
    s2 = (e22 - mu2 * mu2).clamp_min(0)
    s12 = e12 - mu1 * mu2
    return s1, s2, s12


def _gain(s1, s2, s12):
    """Sheikh–Bovik gain g and distortion variance sv² with the LIVE code's clamps."""
    g = s12 / (s1 + _EPS)
    sv = s2 - g * s12
    low1 = s1 < _EPS
    g = torch.where(low1, torch.zeros_like(g), g)
    sv = torch.where(low1, s2, sv)
    s1 = torch.where(low1, torch.zeros_like(s1), s1)
    low2 = s2 < _EPS
    g = torch.where(low2, torch.zeros_like(g), g)
    sv = torch.where(low2, torch.zeros_like(sv), sv)
    neg = g < 0
    sv = torch.where(neg, s2, sv)
    g = torch.where(neg, torch.zeros_like(g), g)
    sv = sv.clamp_min(_EPS)
    return g, sv, s1


def _downsample(x, g):
    """filter2(win, x, 'valid') then every second row and column."""
    return separable(x, g, "valid", step=2)


def _vifp_terms(s1, s2, s12, noise_var, s2_ok):
    r"""Per scale :math:`\sum \log_{10}(1 + g^2\sigma_1^2/(\sigma_v^2 + \sigma_n^2))` and
    :math:`\sum \log_{10}(1 + \sigma_1^2/\sigma_n^2)`, the clamps of :func:`_gain` folded in (same values, a third
    of the passes): σ1² < ε → σ1² = 0; σ2² < ε (``s2_ok`` = 0) or g < 0 → g = 0, which makes the numerator
    term exactly 0 whatever σv² is. Overwrites ``s1``."""
    s1 = torch.nn.functional.threshold(s1, _EPS_BELOW, 0.0, inplace=True)  # keeps σ1² ≥ ε
    den = (s1 / noise_var).add_(1).log10_().sum(dim=(-2, -1))
    g = s1 + _EPS
    g = torch.div(s12, g, out=g).clamp_min_(0)
    sv = g * s12
    sv = torch.sub(s2, sv, out=sv).clamp_min_(_EPS).add_(noise_var)
    num = g.mul_(g).mul_(s1).div_(sv).mul_(s2_ok).add_(1).log10_().sum(dim=(-2, -1))
    return num, den


def vifp_sources(sources: list[torch.Tensor], dist: torch.Tensor, noise_var: float = 2.0,
                 uint8_products: bool = False) -> list[torch.Tensor]:
    r"""Multi-scale pixel-domain VIF of ``dist`` against each reference in ``sources`` (LIVE ``vifp_mscale.m``):
    4 scales, Gaussian N = 2^{5−s}+1, σ = N/5, ``filter2 'valid'``, dyadic subsampling, Σnum/Σden.
    The statistics of ``dist`` are filtered once and shared by all references.

    Where a reference is flat, σ1² = E[x²] − E[x]² is rounding noise just above the 1e-10 clamp and
    g = σ12/σ1² is huge, so those pixels' terms follow the filter's summation order: changing the filter
    implementation (scipy → OpenCV) moved VIFp by up to 4e-9 relative on a GTF image with flat regions, and
    MATLAB's own value carries the same noise."""
    k = len(sources)
    nums = [torch.zeros(dist.shape[0], dtype=torch.float64, device=dist.device) for _ in range(k)]
    dens = [torch.zeros_like(nums[0]) for _ in range(k)]
    refs = list(sources)
    for scale in range(1, 5):
        size = 2 ** (4 - scale + 1) + 1
        g = fspecial_gaussian(size, size / 5.0, device=dist.device)
        if scale > 1:
            *refs, dist = separable_many([*refs, dist], g, "valid", step=2)
        if uint8_products and scale == 1:
            mul = lambda x, y: (x * y).clamp_(max=255.0)  # noqa: E731
        else:  # the full-size products are those SSIM filters too (shared within score())
            mul = product if scale == 1 else torch.mul
        maps = [dist, mul(dist, dist)] + [m for r in refs for m in (r, mul(r, r), mul(r, dist))]
        out = separable_many(maps, g, "valid")
        for rows in row_strips(out[0]):
            mu2, e22, *ref_maps = (m[..., rows, :] for m in out)
            s2 = e22.sub_(mu2 * mu2).clamp_min_(0)
            s2_ok = (s2 >= _EPS).to(s2.dtype)
            for i in range(k):
                mu1, e11, e12 = ref_maps[3 * i: 3 * i + 3]
                s1 = e11.sub_(mu1 * mu1).clamp_min_(0)
                num, den = _vifp_terms(s1, s2, e12.sub_(mu1 * mu2), noise_var, s2_ok)
                nums[i], dens[i] = nums[i] + num, dens[i] + den
    return [nu / de for nu, de in zip(nums, dens)]


def vifp_pair(ref: torch.Tensor, dist: torch.Tensor, noise_var: float = 2.0, uint8_products: bool = False):
    """VIFp of ``dist`` against one reference; see :func:`vifp_sources`."""
    return vifp_sources([ref], dist, noise_var, uint8_products)[0]


def viff(fused, ir, vis, noise_var: float = 0.005 * 255 ** 2, weights=(1.0, 0.0, 0.15, 1.0)):
    r"""VIFF (Han, Cai, Cao, Xu, Information Fusion 2013): per scale, VID/VIND of the source with the smaller
    gain at each pixel; :math:`F_s = \sum(VID + C)/\sum(VIND + C)`, C = 1e-7; VIFF = Σ p_s F_s, p ∝ (1, 0, .15, 1)."""
    c = 1e-7
    p = torch.tensor(weights, dtype=torch.float64) / sum(weights)
    total = torch.zeros(fused.shape[0], dtype=torch.float64, device=fused.device)
    a, b, f = ir, vis, fused
    for scale in range(1, 5):
        size = 2 ** (4 - scale + 1) + 1
        g = fspecial_gaussian(size, size / 5.0, device=f.device)
        if scale > 1:
            a, b, f = _downsample(a, g), _downsample(b, g), _downsample(f, g)
        parts = []
        for src in (a, b):
            g_, sv, s1 = _gain(*_scale_stats(src, f, g, False, False))
            vid = torch.log10(1 + g_ * g_ * s1 / (sv + noise_var))
            vind = torch.log10(1 + s1 / noise_var)
            parts.append((g_, vid, vind))
        pick_a = parts[0][0] < parts[1][0]
        vid = torch.where(pick_a, parts[0][1], parts[1][1])
        vind = torch.where(pick_a, parts[0][2], parts[1][2])
        total = total + p[scale - 1] * (vid + c).sum(dim=(-2, -1)) / (vind + c).sum(dim=(-2, -1))
    return total


@metric("VIF", "higher", needs_sources=True)
def vif(fused, ir, vis, kind: str = "vifp", reduce: str = "sum", noise_var: float | None = None,
        uint8_products: bool = False):
    r"""Visual information fidelity of F to the sources.

    ``kind='vifp'``: Sheikh & Bovik, "Image information and visual quality", IEEE TIP 2006, multi-scale pixel
    domain (σ_n² = 2), :math:`VIF = VIFp(A,F) \oplus VIFp(B,F)` with ``reduce`` sum (Tang, CDDFuse/DIDFuse) or
    mean. ``kind='viff'``: Han et al. 2013 fusion VIF (σ_n² = 0.005·255²). ``uint8_products``: Tang's
    ``vifp_mscale`` gets uint8 images, so at scale 1 the products ``ref.*ref`` saturate at 255 (MATLAB integer
    arithmetic); reproduced only when asked.
    """
    if kind == "viff":
        return viff(fused, ir, vis, noise_var if noise_var is not None else 0.005 * 255 ** 2)
    nv = 2.0 if noise_var is None else noise_var
    va, vb = vifp_sources([ir, vis], fused, nv, uint8_products)
    return va + vb if reduce == "sum" else (va + vb) / 2.0


# --------------------------------------------------------------------------- Chen–Blum and Chen–Varshney

def _normalize1(x: np.ndarray) -> np.ndarray:
    """Z. Liu's ``normalize1``: min–max to 0..255 and round (half away from zero)."""
    hi, lo = x.max(), x.min()
    if hi == 0 and lo == 0:
        return x
    v = (x - lo) / (hi - lo) * 255.0
    return np.floor(v + 0.5)


def _freqspace(h: int, w: int):
    """MATLAB ``freqspace([h w], 'meshgrid')``: (u, v) frequencies in [-1, 1), zero at index floor(n/2)."""
    u = (np.arange(w) - np.floor(w / 2)) * (2.0 / w)
    v = (np.arange(h) - np.floor(h / 2)) * (2.0 / h)
    return np.meshgrid(u, v)


def _freq_filter(x: np.ndarray, H: np.ndarray) -> np.ndarray:
    """``real(ifft2(ifftshift(fftshift(fft2(x)) .* H)))`` = ``ifft2(fft2(x) .* ifftshift(H))``. H is a radial
    function on the symmetric ``freqspace`` grid, so ifftshift(H) is even and the product Hermitian: half
    spectra (rfft2/irfft2) give the same real image, on torch's number of threads."""
    from scipy import fft

    workers = torch.get_num_threads()
    half = np.fft.ifftshift(H)[:, : x.shape[1] // 2 + 1]
    return fft.irfft2(fft.rfft2(x, workers=workers) * half, s=x.shape, workers=workers)


def _filter2_same(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    t = torch.from_numpy(x)[None]
    return correlate(t, torch.from_numpy(k), "same", "zero")[0].numpy()


def _gauss_same(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    return separable(torch.from_numpy(x)[None], torch.from_numpy(g), "same", "zero")[0].numpy()


def _qcb_single(im1, im2, fused):
    f0, f1, a = 15.3870, 1.3456, 0.7622
    k, h, p, q, Z = 1.0, 1.0, 3.0, 2.0, 1e-4
    im1, im2, fused = _normalize1(im1), _normalize1(im2), _normalize1(fused)
    rows, cols = im1.shape
    u, v = _freqspace(rows, cols)
    u, v = (cols / 30.0) * u, (rows / 30.0) * v
    r = np.sqrt(u * u + v * v)
    Sd = np.exp(-(r / f0) ** 2) - a * np.exp(-(r / f1) ** 2)
    # 31×31 unnormalised Gaussians exp(-(x²+y²)/2σ²)/(2πσ²) = separable factors; filter2 'same', zero padding
    x = np.arange(-15, 16, dtype=np.float64)
    g1 = np.exp(-x * x / (2 * 2.0 ** 2)) / np.sqrt(2 * np.pi * 2.0 ** 2)
    g2 = np.exp(-x * x / (2 * 4.0 ** 2)) / np.sqrt(2 * np.pi * 4.0 ** 2)

    def contrast_power(img):
        filt = _freq_filter(img, Sd)
        with np.errstate(divide="ignore", invalid="ignore"):
            c = np.abs(_gauss_same(filt, g1) / _gauss_same(filt, g2) - 1.0)
            return k * c ** p / (h * c ** q + Z)

    c1, c2, cf = contrast_power(im1), contrast_power(im2), contrast_power(fused)
    with np.errstate(divide="ignore", invalid="ignore"):
        q1 = np.where(c1 < cf, c1 / cf, cf / c1)
        q2 = np.where(c2 < cf, c2 / cf, cf / c2)
        lam1 = c1 * c1 / (c1 * c1 + c2 * c2)
        lam2 = c2 * c2 / (c1 * c1 + c2 * c2)
    return float(np.mean(lam1 * q1 + lam2 * q2))


@metric("Qcb", "higher", needs_sources=True)
def qcb(fused, ir, vis):
    r"""Chen–Blum metric: CSF-filtered local contrast preservation, saliency-weighted, mean over the image.

    Chen & Blum, "A new automated quality assessment algorithm for image fusion", Image Vis. Comput. 2009;
    Z. Liu's ``metricChenBlum.m`` as used by VIFB (DoG CSF with f0 = 15.387, f1 = 1.3456, a = 0.7622 on a
    ``freqspace`` grid scaled by size/30; contrast from 31×31 Gaussians σ = 2, 4 with zero padding; p = 3, q = 2).
    """
    out = [_qcb_single(v.cpu().numpy(), a.cpu().numpy(), f.cpu().numpy()) for f, a, v in zip(fused, ir, vis)]
    return torch.tensor(out, dtype=torch.float64, device=fused.device)


def _block_reduce(x: np.ndarray, size: int, fn) -> np.ndarray:
    """MATLAB ``blkproc(x, [size size], fun)``: zero-pad to whole blocks, apply ``fn`` per block."""
    rows, cols = x.shape
    pr, pc = -rows % size, -cols % size
    xp = np.pad(x, ((0, pr), (0, pc)))
    blocks = xp.reshape((rows + pr) // size, size, (cols + pc) // size, size)
    return fn(blocks)


def _qcv_single(im1, im2, fused, window: int = 16, alpha: float = 5.0):
    im1, im2, fused = _normalize1(im1), _normalize1(im2), _normalize1(fused)
    flt1 = np.array([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    flt2 = np.array([[-1.0, -2, -1], [0, 0, 0], [1, 2, 1]])

    def strength(img):
        gx, gy = _filter2_same(img, flt1), _filter2_same(img, flt2)
        return np.sqrt(gx * gx + gy * gy)

    sum_pow = lambda b: (b ** alpha).sum(axis=(1, 3))  # noqa: E731
    lam1 = _block_reduce(strength(im1), window, sum_pow)
    lam2 = _block_reduce(strength(im2), window, sum_pow)
    rows, cols = im1.shape
    u, v = _freqspace(rows, cols)
    u, v = (cols / 8.0) * u, (rows / 8.0) * v
    r = np.sqrt(u * u + v * v)
    theta_m = 2.6 * (0.0192 + 0.144 * r) * np.exp(-((0.144 * r) ** 1.1))  # Mannos–Sakrison CSF
    mean_sq = lambda b: (b ** 2).mean(axis=(1, 3))  # noqa: E731
    d1 = _block_reduce(_freq_filter(im1 - fused, theta_m), window, mean_sq)
    d2 = _block_reduce(_freq_filter(im2 - fused, theta_m), window, mean_sq)
    return float((lam1 * d1 + lam2 * d2).sum() / (lam1 + lam2).sum())


@metric("Qcv", "lower", needs_sources=True)
def qcv(fused, ir, vis, window: int = 16, alpha: float = 5.0):
    r"""Chen–Varshney metric: saliency-weighted (Sobel strength^α per 16×16 block) CSF-filtered squared
    difference :math:`Q = \frac{\sum_w \lambda_A D_A + \lambda_B D_B}{\sum_w \lambda_A + \lambda_B}`; lower is better.

    Chen & Varshney, "A human perception inspired quality metric for image fusion based on regional
    information", Information Fusion 2007; Z. Liu's ``metricChen.m`` (Mannos–Sakrison CSF, size/8 grid,
    ``blkproc`` zero-padding partial blocks) as used by VIFB.
    """
    out = [_qcv_single(v.cpu().numpy(), a.cpu().numpy(), f.cpu().numpy(), window, alpha) for f, a, v in zip(fused, ir, vis)]
    return torch.tensor(out, dtype=torch.float64, device=fused.device)
