"""Feature mutual information, Haghighat's fast-FMI: FMI_pixel, FMI_dct, FMI_w.

Planes are N×H×W float64 grey levels in [0, 255]; the Li/Wu and Tang toolboxes call the metric on
``im2double`` images ([0, 1]), which only matters for the wavelet features' range (rescaled anyway)
and for the DCT (linear), so ``value_scale`` defaults to 1/255.

Vectorised over all 3×3 windows at once (in chunks): per window 9-bin marginal "PDFs" from the min–max
normalised patch, the joint PDF from Nelsen's Fréchet-bound mixture, and 2·MI/(H_a + H_f).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ._core import metric

_CHUNK = {"cpu": 1 << 12}  # windows per step on the CPU: the step's w²×w² tables stay in cache
_CHUNK_OTHER = 1 << 18  # elsewhere (GPU): few large steps


def _windows(x: torch.Tensor, w: int) -> torch.Tensor:
    """All w×w 'valid' windows as rows of length w², flattened column-major like MATLAB ``aSub(:)``."""
    cols = F.unfold(x.unsqueeze(1), w)  # N × (w·w, row-major) × L
    n, _, length = cols.shape
    cols = cols.view(n, w, w, length).transpose(1, 2).reshape(n, w * w, length)
    return cols.permute(0, 2, 1).reshape(-1, w * w)


def _minmax(x: torch.Tensor) -> torch.Tensor:
    lo, hi = x.amin(-1, keepdim=True), x.amax(-1, keepdim=True)
    flat = hi == lo
    return torch.where(flat, torch.ones_like(x), (x - lo) / torch.where(flat, torch.ones_like(hi), hi - lo))


def _plogp_sum(p: torch.Tensor, dims) -> torch.Tensor:
    """Σ -p·log2|p| over ``dims``, 0 where p = 0 (MATLAB ``real(-p.*log2(p))`` also for slightly negative p)."""
    log = p.abs().masked_fill_(p == 0, 1.0).log2_()
    return -(log.mul_(p).sum(dim=dims))


def _seqsum(x: torch.Tensor) -> torch.Tensor:
    """Left-to-right sum over the last dimension, the order of MATLAB's loops and short ``sum`` calls: the
    shortcuts below test exact zeros (e.g. a uniform PDF minus its mean), so the rounding order matters."""
    total = x[..., 0]
    for k in range(1, x.shape[-1]):
        total = total + x[..., k]
    return total


def _patch_sum(x: torch.Tensor, w: int) -> torch.Tensor:
    """MATLAB ``sum(sum(patch))``: column sums first, then their sum (x is the column-major flattening)."""
    return _seqsum(torch.stack([_seqsum(x[..., c * w:(c + 1) * w]) for c in range(w)], -1))


def _window_fmi(s: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """Normalised MI of min–max-normalised windows s, f (rows of w²); the Fréchet-bound joint PDF."""
    l = s.shape[-1]
    w = int(round(l ** 0.5))
    sp, fp = s / _patch_sum(s, w).unsqueeze(-1), f / _patch_sum(f, w).unsqueeze(-1)
    sc, fc = torch.cumsum(sp, -1), torch.cumsum(fp, -1)
    st, ft = sp - (_seqsum(sp) / l).unsqueeze(-1), fp - (_seqsum(fp) / l).unsqueeze(-1)
    num = _seqsum(st * ft)
    c = torch.where(num == 0, torch.zeros_like(num), num / torch.sqrt(_seqsum(st * st) * _seqsum(ft * ft)))
    idx = torch.arange(1, l + 1, dtype=s.dtype, device=s.device)
    s_sd = torch.sqrt(_seqsum(idx * idx * sp) - _seqsum(idx * sp) ** 2)
    f_sd = torch.sqrt(_seqsum(idx * idx * fp) - _seqsum(idx * fp) ** 2)
    fi, sj = fc.unsqueeze(-1), sc.unsqueeze(-2)  # rows i: fused CDF, columns j: source CDF
    # the w²×w² tables dominate the cost: built in place, the same operations in the same order
    total = fi + sj
    upper = (fi - sj).abs_()
    upper = torch.sub(total, upper, out=upper).mul_(0.5)  # ½(f + s − |f − s|)
    lower = total.sub_(1)
    lower = lower.add_(lower.abs()).mul_(0.5)  # ½(f + s − 1 + |f + s − 1|)
    positive = c >= 0
    bound = torch.where(positive.view(-1, 1, 1), upper, lower)
    prod = fi * sj
    cov = torch.sub(bound, prod, out=prod).sum(dim=(-2, -1))
    degenerate = (s_sd == 0) | (f_sd == 0) | (positive & (c == 0))
    corr = cov / torch.where(degenerate, torch.ones_like(f_sd), f_sd * s_sd)
    mix = torch.where(degenerate, torch.zeros_like(c), c / torch.where(degenerate, torch.ones_like(corr), corr))
    padded = F.pad(bound, (1, 0, 1, 0))
    bound_pdf = (padded[..., 1:, 1:] - padded[..., :-1, 1:]).sub_(padded[..., 1:, :-1]).add_(padded[..., :-1, :-1])
    mix = mix.view(-1, 1, 1)
    joint = bound_pdf.mul_(mix).add_((1 - mix) * fp.unsqueeze(-1) * sp.unsqueeze(-2))
    h_joint = _plogp_sum(joint, (-2, -1))
    h_s, h_f = _plogp_sum(sp, -1), _plogp_sum(fp, -1)
    mi = h_s + h_f - h_joint
    return torch.where(mi == 0, torch.zeros_like(mi), 2 * mi / (h_s + h_f))


def fmi_map_mean(a: torch.Tensor, b: torch.Tensor, f: torch.Tensor, w: int = 3) -> torch.Tensor:
    """Mean over the valid windows of (FMI(a, f) + FMI(b, f)) / 2, with the reference code's shortcuts:
    a window equal to the fused window scores 1; the b-shortcut compares with the fused window as left by
    the a-branch (normalised when that branch ran), as the MATLAB code does."""
    n = f.shape[0]
    wa, wb, wf = _windows(a, w), _windows(b, w), _windows(f, w)
    out = torch.empty(wf.shape[0], dtype=torch.float64, device=f.device)
    chunk = _CHUNK.get(f.device.type, _CHUNK_OTHER)
    for start in range(0, wf.shape[0], chunk):
        sl = slice(start, start + chunk)
        ca, cb, cf = wa[sl], wb[sl], wf[sl]
        eq_a = (ca == cf).all(-1)
        fn = _minmax(cf)
        fmi_a = torch.where(eq_a, torch.ones_like(eq_a, dtype=torch.float64), _window_fmi(_minmax(ca), fn))
        f_after = torch.where(eq_a.unsqueeze(-1), cf, fn)
        eq_b = (cb == f_after).all(-1)
        fmi_b = torch.where(eq_b, torch.ones_like(eq_b, dtype=torch.float64), _window_fmi(_minmax(cb), fn))
        out[sl] = (fmi_a + fmi_b) / 2
    return out.view(n, -1).mean(-1)


def _dct_features(x: torch.Tensor) -> torch.Tensor:
    from scipy.fft import dctn

    return torch.from_numpy(dctn(x.cpu().numpy(), axes=(-2, -1), norm="ortho")).to(x.device)


def _wavelet_features(x: torch.Tensor) -> torch.Tensor:
    """Single-level ``dwt2(·,'dmey')`` (symmetric extension) as [cA cH; cV cD], min–max rescaled."""
    import pywt

    out = []
    for plane in x.cpu().numpy():
        ca, (ch, cv, cd) = pywt.dwt2(plane, "dmey", mode="symmetric")
        tiled = np.block([[ca, ch], [cv, cd]])
        out.append((tiled - tiled.min()) / (tiled.max() - tiled.min()))
    return torch.from_numpy(np.stack(out)).to(x.device)


_SOBEL_8 = torch.tensor([[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]], dtype=torch.float64) / 8


def _edge_features(x: torch.Tensor) -> torch.Tensor:
    """Binary Sobel edge map of ``edge(x)`` with its defaults, as GNU Octave's image package 2.14 computes it.

    Sobel/8 (``imfilter``, 'replicate'), s = Sx² + Sy², threshold 4·mean(s); s ≤ threshold is set to 0 and a
    pixel is an edge where s exceeds both horizontal or both vertical neighbours (zeros outside). MATLAB's
    ``edge`` thins along the gradient direction instead, so its map can differ (not confirmed without MATLAB).
    On grey levels every step is exact (dyadic responses, an exact integer-multiple sum), so the map does not
    depend on the CPU."""
    from ._core import correlate

    k = _SOBEL_8.to(x.device)
    s = correlate(x, k, "same", "replicate").square_().add_(correlate(x, k.t(), "same", "replicate").square_())
    s = s.masked_fill_(s <= 4 * s.mean(dim=(-2, -1), keepdim=True), 0.0)
    pad = torch.nn.functional.pad(s, (1, 1, 1, 1))
    c = pad[..., 1:-1, 1:-1]
    horizontal = (c > pad[..., 1:-1, :-2]) & (c > pad[..., 1:-1, 2:])
    vertical = (c > pad[..., :-2, 1:-1]) & (c > pad[..., 2:, 1:-1])
    return (horizontal | vertical).to(x.dtype)


_FEATURES = {"none": lambda x: x, "dct": _dct_features, "wavelet": _wavelet_features, "edge": _edge_features}


def fmi(fused, ir, vis, feature: str = "none", window: int = 3, value_scale: float = 1.0 / 255.0):
    r"""Fast feature mutual information (Haghighat & Razian, AICT 2014; Haghighat et al., Comput. Electr. Eng.
    2011): :math:`FMI = \operatorname{mean}_w \tfrac12[\frac{2 I(A_w;F_w)}{H(A_w)+H(F_w)} + \frac{2 I(B_w;F_w)}{H(B_w)+H(F_w)}]`
    over w×w sliding windows of the feature maps (``none``: pixels, ``dct``: orthonormal ``dct2``,
    ``wavelet``: ``dmey`` DWT, ``edge``: binary Sobel edge map).

    Exact-zero tests (equal windows, zero correlation, zero spread, zero MI) decide branches; on 8-bit inputs the
    pixel, edge and wavelet (min–max rescaled) windows are computed with correctly rounded operations in a fixed
    order, so they are portable; DCT coefficients come from scipy's FFT, whose rounding may differ between CPUs
    and can flip such a test in a window (not seen on the regression crop)."""
    extract = _FEATURES[feature]
    # the edge map is scale-invariant and exact on grey levels, so it is taken before any value_scale
    a, b, f = (extract(x if feature == "edge" else x * value_scale) for x in (ir, vis, fused))
    return fmi_map_mean(a, b, f, window)


@metric("FMI_pixel", "higher", needs_sources=True)
def fmi_pixel(fused, ir, vis, feature: str = "none", **options):
    """Fast-FMI on raw pixels (Haghighat & Razian 2014); see :func:`fmi`. ``feature='edge'``: the binary Sobel
    edge map that ``analysis_fmi.m`` uses when called without a feature argument (Tang's toolbox)."""
    return fmi(fused, ir, vis, feature, **options)


@metric("FMI_dct", "higher", needs_sources=True)
def fmi_dct(fused, ir, vis, **options):
    """Fast-FMI on whole-image DCT coefficients (Haghighat & Razian 2014); see :func:`fmi`."""
    return fmi(fused, ir, vis, "dct", **options)


@metric("FMI_w", "higher", needs_sources=True)
def fmi_wavelet(fused, ir, vis, **options):
    """Fast-FMI on discrete Meyer wavelet coefficients (Haghighat & Razian 2014); see :func:`fmi`."""
    return fmi(fused, ir, vis, "wavelet", **options)
