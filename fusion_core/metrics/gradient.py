"""Edge-transfer metrics: Qabf (Xydeas–Petrović) and Nabf (Kumar's artefact measure).

Planes are N×H×W float64 grey levels in [0, 255].
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ._core import convolve, known_whole, mark_whole, metric, row_strips

# conv2 kernels of the public Qabf code: h3 responds to x, h1 to y
_SOBEL_Y = torch.tensor([[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]], dtype=torch.float64)
_SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=torch.float64)
TG, KG, DG = 0.9994, -15.0, 0.5
TA, KA, DA = 0.9879, -22.0, 0.8


def _conv2_same_in_order(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """``conv2(x, kernel, 'same')`` summed term by term in GNU Octave's order, bit for bit on every CPU.

    Octave's ``conv2`` (``dconv2o``) accumulates ``c(i+k-1, j+l-1) += b(k, l)·a(i, j)`` over the columns of
    ``a``, then the kernel's columns and rows, so each output receives its terms kernel column last-to-first,
    rows top-to-bottom. Every step here is one IEEE operation on whole planes (a product by ±1 or ±2 is exact,
    then one rounded addition), with no reduction whose order a library could choose: the result is the same
    on every CPU and equals Octave's (checked to 9e-16 on seven images). MATLAB's own order is not public.
    """
    kh, kw = kernel.shape
    h, w = x.shape[-2:]
    padded = torch.nn.functional.pad(x, (kw - 1, kw - 1, kh - 1, kh - 1))
    top, left = (kh - 1) // 2, (kw - 1) // 2  # where 'same' starts inside 'full'
    out = torch.zeros_like(x)
    for col in reversed(range(kw)):
        for row in range(kh):
            weight = float(kernel[row, col])
            if weight:
                r0, c0 = kh - 1 - row + top, kw - 1 - col + left
                out.add_(padded[..., r0:r0 + h, c0:c0 + w], alpha=weight)
    return out


def _integral(x: torch.Tensor) -> bool:
    """Whether every value of ``x`` is a whole number of magnitude < 2⁴³ (so any 3×3 Sobel sum of them, in any order,
    is exact in float64): known by construction for planes of grey levels (:func:`~._core.mark_whole`), checked
    otherwise."""
    if not x.numel() or known_whole(x):
        return True
    low, high = torch.aminmax(x)  # one pass, half the time of x.abs().max(); NaN fails both tests
    return bool(-2.0 ** 43 < low) and bool(high < 2.0 ** 43) and torch.equal(x, torch.floor(x))


def _sobel_pair(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``conv2(x, h, 'same')`` for the two Sobel kernels (x response, y response).

    On whole numbers (grey levels, or levels ×255) every partial sum is an integer, exact in any order, so the
    CPU takes OpenCV's ``filter2D`` (a correlation with the flipped kernel, zero border): the same doubles as the
    ordered sum, 10× faster. Other values keep the ordered sum (:func:`_conv2_same_in_order`)."""
    if x.device.type == "cpu" and x.dtype == torch.float64 and min(x.shape[-2:]) > 0 and _integral(x):
        return convolve(x, _SOBEL_X), convolve(x, _SOBEL_Y)  # conv2 'same', zero border: OpenCV on the CPU
    return _conv2_same_in_order(x, _SOBEL_X), _conv2_same_in_order(x, _SOBEL_Y)


def to_toolbox_units(x: torch.Tensor, value_scale: float) -> torch.Tensor:
    """Grey levels in the toolbox's units: ``im2double`` divides by 255 (not a product with 1/255, which rounds
    differently), VIFB multiplies by 255; 1 returns ``x`` itself."""
    if value_scale == 1:
        return x
    divisor = round(1.0 / value_scale)
    if value_scale < 1 and abs(divisor * value_scale - 1) < 1e-12:
        return x / divisor
    y = x * value_scale
    return mark_whole(y) if value_scale == 255 and known_whole(x) else y  # levels ×255 (< 2¹⁶): whole again


def strength_orientation(sx: torch.Tensor, sy: torch.Tensor):
    """Sobel strength g = sqrt(Sx² + Sy²) and orientation atan(Sy/Sx) (π/2 where Sx = 0); consumes sx, sy."""
    alpha = torch.atan(sy / sx).masked_fill_(sx == 0, math.pi / 2)
    return _ieee_sqrt_(sx.square_().add_(sy.square_())), alpha


def _ieee_sqrt_(x: torch.Tensor) -> torch.Tensor:
    """Correctly rounded square root, in place. The tie test compares square roots, and torch's vectorised
    float64 ``sqrt`` on the CPU differs from IEEE ``sqrt`` in the last bit on ~1 % of inputs (measured: 1250
    of 10⁵), so equal ties would depend on the library; NumPy's is the hardware's IEEE operation, as in
    MATLAB and Octave. CUDA's float64 ``sqrt`` is IEEE too."""
    if x.device.type == "cpu":
        np.sqrt(x.numpy(), out=x.numpy())
        return x
    return x.sqrt_()


def _sigmoid_weight(x: torch.Tensor, gamma: float, kappa: float, sigma: float) -> torch.Tensor:
    """Γ / (1 + exp(κ(x − σ))), in place on ``x`` (Γ·reciprocal: the rounding of ``Γ / tensor`` in torch)."""
    return x.sub_(sigma).mul_(kappa).exp_().add_(1.0).reciprocal_().mul_(gamma)


def edge_preservation(g_s, a_s, g_f, a_f, equal_quirk: bool):
    """Q^{SF} map: sigmoid-weighted relative strength and orientation preservation.

    G = min(g_S, g_F)/max(g_S, g_F), the quotients of the published code; where g_S = g_F it is g_F under
    ``equal_quirk`` (the widespread MATLAB code, in the units the toolbox feeds it) and 1 otherwise."""
    low, high = torch.minimum(g_s, g_f), torch.maximum(g_s, g_f)
    if equal_quirk:
        G = low.div_(high.masked_fill_(g_s == g_f, 1.0))  # min/1 = g_F there
    else:
        G = torch.nan_to_num_(low.div_(high), nan=1.0)  # only 0/0 is undefined
    A = (a_s - a_f).abs_().div_(math.pi / 2).neg_().add_(1.0)
    return _sigmoid_weight(G, TG, KG, DG).mul_(_sigmoid_weight(A, TA, KA, DA))


@metric("Qabf", "higher", needs_sources=True)
def qabf(fused, ir, vis, value_scale: float = 1.0, equal_quirk: bool = True, weight_exponent: float = 1.0):
    r"""Gradient-based fusion quality :math:`Q^{AB/F} = \frac{\sum Q^{AF}w_A + Q^{BF}w_B}{\sum w_A + w_B}`, w = g^L.

    Xydeas & Petrović, "Objective image fusion performance measure", Electron. Lett. 36(4) 2000.
    Γg = 0.9994, κg = −15, σg = 0.5; Γα = 0.9879, κα = −22, σα = 0.8; L = 1. Sobel via ``conv2(...,'same')``.
    ``equal_quirk``: the widespread MATLAB code sets G = g_F (not 1) where g_A == g_F;
    ``value_scale`` is the factor from grey levels to the toolbox's units (VIFB ×255, Li's code 1/255),
    which only that quirk sees.

    The tie test g_A == g_F is an exact comparison of computed doubles, so its outcome depends on how the
    Sobel sums were rounded. On grey levels (``value_scale`` 1 or 255) they are integers and exact in any order;
    on im2double's [0, 1] (Li's code) they are not, and a filter that picks its summation order by CPU
    features (OpenCV's SIMD dispatch, FMA) found 5 IR–F and 204 VIS–F of the 38 and 854 exact ties on the
    regression crop — the value moved by 2.7e-5 between two CPUs. The responses are therefore summed in
    GNU Octave's ``conv2`` order (:func:`_conv2_same_in_order`): the same ties on every CPU, and Octave's value
    bit for bit (≤ 9e-16 on seven images); on whole numbers a faster filter gives the same doubles
    (:func:`_sobel_pair`). Deciding every exact tie instead would move Li's Qabf 2.7 % away from
    Octave on that crop: the toolbox, evaluated in floating point, does not see most of them.
    """
    sobel = [_sobel_pair(to_toolbox_units(p, value_scale)) for p in (fused, ir, vis)]
    num = den = torch.zeros(fused.shape[0], dtype=fused.dtype, device=fused.device)
    for rows in row_strips(fused):
        (g_f, a_f), (g_a, a_a), (g_b, a_b) = (strength_orientation(sx[..., rows, :], sy[..., rows, :])
                                              for sx, sy in sobel)
        q_af = edge_preservation(g_a, a_a, g_f, a_f, equal_quirk)
        q_bf = edge_preservation(g_b, a_b, g_f, a_f, equal_quirk)
        w_a, w_b = (g if weight_exponent == 1 else g ** weight_exponent for g in (g_a, g_b))
        num = num + q_af.mul_(w_a).add_(q_bf.mul_(w_b)).sum(dim=(-2, -1))
        den = den + (w_a + w_b).sum(dim=(-2, -1))
    return num / den


def _sobel_kumar(x: torch.Tensor):
    """Kumar's ``sobel_fn``: Sobel/8 on the mirror-extended image (edge pixel not repeated), in his order.

    ``sum(sum(patch .* k))``: each product by ±1/8 or ±2/8 is exact, then every column of the 3×3 products is
    summed top to bottom and the three column sums left to right. Written as whole-plane IEEE additions in that
    order, so the equality and order tests on g see the toolbox's doubles on every CPU. Returns (g_v, g_h)."""
    xp = torch.cat([x[..., 1:2, :], x, x[..., -2:-1, :]], dim=-2)
    xp = torch.cat([xp[..., :, 1:2], xp, xp[..., :, -2:-1]], dim=-1)
    h, w = x.shape[-2:]
    v = [[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]

    def response(k):
        columns = []
        for c in range(3):
            terms = [xp[..., r:r + h, c:c + w] * (k[r][c] / 8) for r in range(3)]
            columns.append(terms[0].add_(terms[1]).add_(terms[2]))
        return columns[0].add_(columns[1]).add_(columns[2])

    return response(v), response([list(row) for row in zip(*v)])  # (g_v, g_h)


@metric("Nabf", "lower", needs_sources=True)
def nabf(fused, ir, vis, value_scale: float = 1.0 / 255.0, tang_argument_order: bool = False):
    r"""Modified fusion artefacts :math:`N^{AB/F} = \frac{\sum_{g_F > g_A, g_F > g_B} (1-Q^{AF})w_A + (1-Q^{BF})w_B}{\sum w_A + w_B}`.

    Kumar, "Multifocus and multispectral image fusion based on pixel significance using discrete cosine
    harmonic wavelet transform", SIViP 2013 (``objective_fusion_perform_fn.m``/``analysis_nabf.m``):
    Q = sqrt(Q_g·Q_α) with Γ_g = 0.9999, κ_g = 19, σ_g = 0.5, Γ_α = 0.9995, κ_α = 22, σ_α = 0.5;
    w = g^1.5 where g ≥ T_d = 2, else 0.001, g in the toolbox's units (grey levels × ``value_scale``). Li's and
    SeAFusion's code pass [0, 1] images (1/255), so g < 2 everywhere and all weights are 0.001 — reproduced, not
    corrected; Tang's Evaluation-for-Image-Fusion passes grey levels (1).

    ``tang_argument_order``: that toolbox's ``analysis_Reference.m`` calls ``analysis_nabf(IR, VIS, F)`` while the
    function's signature is ``(fused, source1, source2)``, so the IR image plays the fused image and F a source.

    The tests g = 0, g_S > g_F and g_F > g_A, g_B compare computed doubles; the responses are summed in the
    toolbox's order (:func:`_sobel_kumar`) and square-rooted with IEEE ``sqrt``, so they decide as GNU Octave
    does on every CPU (deciding them in exact arithmetic instead moved Li-convention Nabf 6 % away from Octave).
    """
    if tang_argument_order:
        fused, ir, vis = ir, vis, fused
    td, wt_min, lg = 2.0, 0.001, 1.5
    nrg, kg, sg, nra, ka, sa = 0.9999, 19.0, 0.5, 0.9995, 22.0, 0.5

    def strength_angle(x):
        gv, gh = _sobel_kumar(to_toolbox_units(x, value_scale))
        both0 = (gv == 0) & (gh == 0)
        ang = torch.where(both0, torch.zeros_like(gv), torch.atan(gv / torch.where(both0, torch.ones_like(gh), gh)))
        return _ieee_sqrt_(gh * gh + gv * gv), ang

    g_f, a_f = strength_angle(fused)
    wsum, strengths, qs, ws = 0.0, [], [], []
    for src in (ir, vis):
        g_s, a_s = strength_angle(src)
        zero = (g_s == 0) | (g_f == 0)
        ratio = torch.where(g_s > g_f, g_f / torch.where(zero, torch.ones_like(g_s), g_s),
                            g_s / torch.where(zero, torch.ones_like(g_f), g_f))
        g_rel = torch.where(zero, torch.zeros_like(ratio), ratio)
        a_rel = torch.abs(torch.abs(a_s - a_f) - math.pi / 2) * 2 / math.pi
        q = torch.sqrt(nrg / (1 + torch.exp(-kg * (g_rel - sg))) * nra / (1 + torch.exp(-ka * (a_rel - sa))))
        w = torch.where(g_s >= td, g_s ** lg, torch.full_like(g_s, wt_min))
        strengths.append(g_s)
        qs.append(q)
        ws.append(w)
        wsum = wsum + w
    artefact = (g_f > strengths[0]) & (g_f > strengths[1])
    out_num = ((1 - qs[0]) * ws[0] + (1 - qs[1]) * ws[1]) * artefact
    return out_num.sum(dim=(-2, -1)) / wsum.sum(dim=(-2, -1))
