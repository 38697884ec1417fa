"""Edge-transfer metrics: Qabf (Xydeas–Petrović) and Nabf (Kumar's artefact measure).

Planes are N×H×W float64 grey levels in [0, 255].
"""
from __future__ import annotations

import math

import torch

from ._core import convolve, metric, row_strips, scaled

# conv2 kernels of the public Qabf code: h3 responds to x, h1 to y
_SOBEL_Y = torch.tensor([[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]], dtype=torch.float64)
_SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=torch.float64)
TG, KG, DG = 0.9994, -15.0, 0.5
TA, KA, DA = 0.9879, -22.0, 0.8


def sobel_xy(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sobel responses (Sx, Sy) of the public Qabf code: ``conv2(x, h, 'same')``."""
    return convolve(x, _SOBEL_X, "same", "zero"), convolve(x, _SOBEL_Y, "same", "zero")


def strength_orientation(sx: torch.Tensor, sy: torch.Tensor):
    """Sobel strength g = sqrt(Sx² + Sy²) and orientation atan(Sy/Sx) (π/2 where Sx = 0); consumes sx, sy."""
    alpha = torch.atan(sy / sx).masked_fill_(sx == 0, math.pi / 2)
    g = sx.square_().add_(sy.square_()).sqrt_()
    return g, alpha


def _sigmoid_weight(x: torch.Tensor, gamma: float, kappa: float, sigma: float) -> torch.Tensor:
    """Γ / (1 + exp(κ(x − σ))), in place on ``x`` (Γ·reciprocal: the rounding of ``Γ / tensor`` in torch)."""
    return x.sub_(sigma).mul_(kappa).exp_().add_(1.0).reciprocal_().mul_(gamma)


def edge_preservation(g_s, a_s, g_f, a_f, equal_quirk: bool, value_scale: float = 1.0):
    """Q^{SF} map: sigmoid-weighted relative strength and orientation preservation.

    G = min(g_S, g_F)/max(g_S, g_F), the quotients of the published code; where g_S = g_F it is
    g_F·``value_scale`` under ``equal_quirk`` (the widespread MATLAB code: g_F in the units the toolbox feeds
    it) and 1 otherwise. The strengths come in grey-level units, so the tie test is exact (see :func:`qabf`)."""
    low, high = torch.minimum(g_s, g_f), torch.maximum(g_s, g_f)
    if equal_quirk:
        tie = g_s == g_f
        G = low.div_(high.masked_fill_(tie, 1.0))  # min/1 = g_F there
        if value_scale != 1:
            G = torch.where(tie, G * value_scale, G)
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

    Ties are decided in exact arithmetic: the Sobel responses and g² = Sx² + Sy² of 8-bit grey levels are
    integers, exact whatever the filter's summation order, so g_A == g_F is the toolbox's definition evaluated
    exactly. G = min/max and α are scale-invariant and the weights cancel in the ratio (both sums scale by
    value_scale^L), so only the quirk's G = g_F·value_scale at ties uses ``value_scale``. On the [0, 1] scale
    MATLAB's own double arithmetic finds a machine-dependent subset of the ties (measured on the regression crop:
    38 IR–F and 854 VIS–F ties exactly, 5 and 204 by an AVX2/FMA OpenCV filter on [0, 1] values).
    """
    sobel = [sobel_xy(x) for x in (fused, ir, vis)]
    num = den = torch.zeros(fused.shape[0], dtype=fused.dtype, device=fused.device)
    for rows in row_strips(fused):
        (g_f, a_f), (g_a, a_a), (g_b, a_b) = (strength_orientation(sx[..., rows, :], sy[..., rows, :])
                                              for sx, sy in sobel)
        q_af = edge_preservation(g_a, a_a, g_f, a_f, equal_quirk, value_scale)
        q_bf = edge_preservation(g_b, a_b, g_f, a_f, equal_quirk, value_scale)
        w_a, w_b = (g if weight_exponent == 1 else g ** weight_exponent for g in (g_a, g_b))
        num = num + q_af.mul_(w_a).add_(q_bf.mul_(w_b)).sum(dim=(-2, -1))
        den = den + (w_a + w_b).sum(dim=(-2, -1))
    return num / den


def _sobel_kumar(x: torch.Tensor):
    """Kumar's ``sobel_fn``: Sobel/8 correlation on the mirror-extended image (edge pixel not repeated)."""
    xp = torch.cat([x[..., 1:2, :], x, x[..., -2:-1, :]], dim=-2)
    xp = torch.cat([xp[..., :, 1:2], xp, xp[..., :, -2:-1]], dim=-1)
    v = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=torch.float64) / 8
    from ._core import correlate

    return correlate(xp, v.t(), "valid"), correlate(xp, v, "valid")  # (g_v, g_h)


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

    Every comparison (g = 0, g_S > g_F, g_F > g_S, g ≥ T_d) is decided on the grey-level Sobel/8 responses,
    which are exact dyadic numbers, so the decisions are the definition's in exact arithmetic on every CPU.
    """
    if tang_argument_order:
        fused, ir, vis = ir, vis, fused
    td, wt_min, lg = 2.0, 0.001, 1.5
    nrg, kg, sg, nra, ka, sa = 0.9999, 19.0, 0.5, 0.9995, 22.0, 0.5

    def strength_angle(x):
        gv, gh = _sobel_kumar(x)
        g2 = gh * gh + gv * gv
        both0 = (gv == 0) & (gh == 0)
        ang = torch.where(both0, torch.zeros_like(g2), torch.atan(gv / torch.where(both0, torch.ones_like(gh), gh)))
        return torch.sqrt(g2), g2, ang

    g_f, _, a_f = strength_angle(fused)
    wsum, weights, qs = 0.0, [], []
    for src in (ir, vis):
        g_s, g2_s, a_s = strength_angle(src)
        zero = (g_s == 0) | (g_f == 0)
        ratio = torch.where(g_s > g_f, g_f / torch.where(zero, torch.ones_like(g_s), g_s),
                            g_s / torch.where(zero, torch.ones_like(g_f), g_f))
        g_rel = torch.where(zero, torch.zeros_like(ratio), ratio)
        a_rel = torch.abs(torch.abs(a_s - a_f) - math.pi / 2) * 2 / math.pi
        q = torch.sqrt(nrg / (1 + torch.exp(-kg * (g_rel - sg))) * nra / (1 + torch.exp(-ka * (a_rel - sa))))
        strong = g2_s >= (td / value_scale) ** 2  # g·s ≥ T_d on the exact squared grey-level strength
        w = torch.where(strong, (g_s * value_scale) ** lg, torch.full_like(g_s, wt_min))
        weights.append((g_s, w))
        qs.append(q)
        wsum = wsum + w
    artefact = (g_f > weights[0][0]) & (g_f > weights[1][0])
    out_num = ((1 - qs[0]) * weights[0][1] + (1 - qs[1]) * weights[1][1]) * artefact
    return out_num.sum(dim=(-2, -1)) / wsum.sum(dim=(-2, -1))
