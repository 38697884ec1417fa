r"""MSFAM's losses (spec 003 §3): stage 1 (Eq. 1), stage 2 (Eq. 2 = L1 + α₂·Semantic Constraint (Eq. 8) +
β·Pull–Push (Algorithms 1–2)), the Semantic Constraint net's pre-training BCE, and NestFuse's own loss.

Images are in [0, 1]; SSIM / MS-SSIM use pytorch-msssim's Gaussian window (11, σ = 1.5), ``data_range = 1``,
valid convolution. Norms ‖·‖ are means of absolute values over pixels.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pytorch_msssim import ssim as _ssim_value
from pytorch_msssim.ssim import _fspecial_gauss_1d, _ssim
from torch import nn

from ...losses import mean_absolute, mean_squared

MSSSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # Wang et al. 2003, pytorch-msssim's default
WINDOW, SIGMA = 11, 1.5

# Algorithm 1's constants, not stated in the paper: the standard Qabf values (Xydeas & Petrović 2000; spec §3).
QABF = {"gamma_g": 0.9994, "kappa_g": -15.0, "sigma_g": 0.5, "gamma_a": 0.9879, "kappa_a": -22.0, "sigma_a": 0.8,
        "L": 1.0}
SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


# --------------------------------------------------------------------------- SSIM and MS-SSIM

def _check(x: torch.Tensor, y: torch.Tensor, what: str) -> None:
    if x.shape != y.shape or x.ndim != 4 or x.shape[1] != 1:
        raise ValueError(f"{what} needs two N×1×H×W tensors of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")


def ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Single-scale SSIM per image (N values): pytorch-msssim, window 11, σ 1.5, data range 1."""
    _check(x, y, "ssim")
    return _ssim_value(x, y, data_range=1.0, size_average=False, win_size=WINDOW, win_sigma=SIGMA)


def msssim_levels(height: int, width: int, wanted: int = 5) -> int:
    """Scales of MS-SSIM that fit: the smallest side must exceed (window − 1)·2^(levels − 1)."""
    levels = wanted
    while levels > 1 and min(height, width) <= (WINDOW - 1) * 2 ** (levels - 1):
        levels -= 1
    return levels


def ms_ssim(x: torch.Tensor, y: torch.Tensor, levels: int | None = None, floor: float = 1e-6) -> torch.Tensor:
    r"""MS-SSIM per image (N values): $\prod_{j<M} \mathrm{cs}_j^{w_j} \cdot \mathrm{ssim}_M^{w_M}$ (Wang et al.).

    With 5 levels (images with a smaller side > 160 px) this is pytorch-msssim's ``ms_ssim`` exactly. Smaller
    images (our ``quick`` and ``reduced`` crops) use the first ``levels`` scales that fit
    (:func:`msssim_levels`) with the weights renormalised to sum to 1: a labelled deviation. Each level's term is
    clamped to ``floor`` from below where pytorch-msssim uses ReLU: an IR/VIS pair can have a negative
    contrast–structure term, and ``0 ** w`` has an infinite derivative (NaN gradients); the value differs from
    pytorch-msssim's only where that term is below ``floor``.
    """
    _check(x, y, "ms_ssim")
    levels = levels or msssim_levels(*x.shape[-2:])
    if min(x.shape[-2:]) < WINDOW:
        raise ValueError(f"ms_ssim: images {tuple(x.shape[-2:])} are smaller than the {WINDOW}-pixel window")
    weights = x.new_tensor(MSSSIM_WEIGHTS[:levels])
    weights = weights / weights.sum() if levels < len(MSSSIM_WEIGHTS) else weights
    win = _fspecial_gauss_1d(WINDOW, SIGMA).repeat([x.shape[1], 1, 1, 1])
    values = []
    for level in range(levels):
        ssim_map, cs = _ssim(x, y, data_range=1.0, win=win, size_average=False)
        if level < levels - 1:
            values.append(cs.clamp_min(floor))
            padding = [s % 2 for s in x.shape[2:]]
            x, y = F.avg_pool2d(x, 2, padding=padding), F.avg_pool2d(y, 2, padding=padding)
    values.append(ssim_map.clamp_min(floor))
    stacked = torch.stack(values, dim=0)  # levels × N × C
    return torch.prod(stacked ** weights.view(-1, 1, 1), dim=0).mean(1)


# --------------------------------------------------------------------------- Algorithm 1 and 2

def sobel(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Horizontal and vertical Sobel responses (3×3, zero padding: MATLAB ``filter2(h, x, 'same')``)."""
    kx = SOBEL_X.to(x)
    weight = torch.stack([kx, kx.t()]).unsqueeze(1)
    g = F.conv2d(x, weight, padding=1)
    return g[:, :1], g[:, 1:]


def edge_preservation(source: torch.Tensor, fused: torch.Tensor, constants: dict | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Algorithm 1: per-pixel edge preservation $Q^{aF} = Q_g Q_\alpha$ and weight $w_a = g_a^L$.

    $g = \sqrt{s_x^2 + s_y^2}$, $\alpha = \arctan(s_y / s_x)$ ($\pi/2$ where $s_x = 0$);
    $G^{aF} = \min(g_a, g_F) / \max(g_a, g_F)$ (0 where either is 0);
    $A^{aF} = \big|\,|\alpha_a - \alpha_F| - \pi/2\,\big| / (\pi/2)$ (as printed in Algorithm 1);
    $Q_g = \Gamma_g / (1 + e^{\kappa_g (G - \sigma_g)})$, $Q_\alpha = \Gamma_\alpha / (1 + e^{\kappa_\alpha (A - \sigma_\alpha)})$.
    """
    _check(source, fused, "edge_preservation")
    c = {**QABF, **(constants or {})}

    def strength_angle(img):
        sx, sy = sobel(img)
        g = torch.sqrt(sx * sx + sy * sy)
        safe = torch.where(sx == 0, torch.ones_like(sx), sx)
        return g, torch.where(sx == 0, torch.full_like(sx, math.pi / 2), torch.atan(sy / safe))

    g_a, a_a = strength_angle(source)
    g_f, a_f = strength_angle(fused)
    both = (g_a > 0) & (g_f > 0)
    ratio = torch.minimum(g_a, g_f) / torch.where(both, torch.maximum(g_a, g_f), torch.ones_like(g_a))
    big_g = torch.where(both, ratio, torch.zeros_like(ratio))
    big_a = ((a_a - a_f).abs() - math.pi / 2).abs() / (math.pi / 2)
    q_g = c["gamma_g"] / (1 + torch.exp(c["kappa_g"] * (big_g - c["sigma_g"])))
    q_a = c["gamma_a"] / (1 + torch.exp(c["kappa_a"] * (big_a - c["sigma_a"])))
    return q_g * q_a, g_a ** c["L"]


def pull_push_weights(vis: torch.Tensor, ir: torch.Tensor, fused: torch.Tensor, constants: dict | None = None
                      ) -> torch.Tensor:
    r"""Algorithm 2's adaptive weights per image, N×2 = $(\alpha_{vis}, \alpha_{ir})$, no gradient.

    $Q_{vis} = \sum Q^{vis,F} w_{vis} / \sum (w_{vis} + w_{ir})$ (likewise $Q_{ir}$; $Q_{vis} + Q_{ir}$ = Qabf),
    $(\alpha_{vis}, \alpha_{ir}) = \mathrm{softmax}(Q_{vis} / (Q_{vis} + Q_{ir}),\ Q_{ir} / (Q_{vis} + Q_{ir}))$,
    so $\alpha \in [0.269, 0.731]$; an image pair without edges gets ½, ½.
    """
    with torch.no_grad():
        q_vis, w_vis = edge_preservation(vis, fused, constants)
        q_ir, w_ir = edge_preservation(ir, fused, constants)
        total = (w_vis + w_ir).flatten(1).sum(1)
        a = (q_vis * w_vis).flatten(1).sum(1) / total.clamp_min(1e-12)
        b = (q_ir * w_ir).flatten(1).sum(1) / total.clamp_min(1e-12)
        share = torch.where(a + b > 0, a / (a + b).clamp_min(1e-12), torch.full_like(a, 0.5))
        return torch.softmax(torch.stack([share, 1 - share], dim=1), dim=1)


def pull_push_loss(vis: torch.Tensor, ir: torch.Tensor, fused: torch.Tensor, adaptive: bool = True,
                   swap_weights: bool = False, levels: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Algorithm 2: $L_{PP} = \alpha_{vis}(1 - \mathrm{MSSSIM}(V, F)) + \alpha_{ir}(1 - \mathrm{MSSSIM}(I, F))$,
    per image, averaged over the batch. ``adaptive=False``: α = ½, ½ (the "basic SSIM loss" of the baseline rows,
    spec §3); ``swap_weights``: the prose's reading (a non-paper diagnostic). Returns (loss, weights N×2)."""
    if adaptive:
        weights = pull_push_weights(vis, ir, fused)
    else:
        weights = torch.full((fused.shape[0], 2), 0.5, dtype=fused.dtype, device=fused.device)
    if swap_weights:
        weights = weights.flip(1)
    loss = weights[:, 0] * (1 - ms_ssim(vis, fused, levels)) + weights[:, 1] * (1 - ms_ssim(ir, fused, levels))
    return loss.mean(), weights


def semantic_constraint_loss(sc_net: nn.Module, fused: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    r"""Eq. 8 with its sign restored: $L_C = \mathrm{BCE}(M(F), [1, 1]) = -\tfrac12(\log p_{vis} + \log p_{ir})$
    (``reduction="mean"``; ``"sum"``: without the ½), averaged over the batch. ``fused`` is clamped to [0, 1];
    gradients flow through the frozen net into the fusion network."""
    if reduction not in ("mean", "sum"):
        raise ValueError(f"sc_reduction '{reduction}' is not 'mean' or 'sum'")
    p = sc_net(fused.clamp(0, 1)).clamp(1e-7, 1 - 1e-7)
    per_label = -torch.log(p)
    return per_label.mean() if reduction == "mean" else per_label.sum(1).mean()


L1_TARGETS = ("mean_of_two", "sum_of_two", "max_of_sources")


def intensity_l1(ir: torch.Tensor, vis: torch.Tensor, fused: torch.Tensor, target: str = "mean_of_two") -> torch.Tensor:
    r"""Eq. 2's undefined L1(I, V, F) (spec §3): ``mean_of_two`` ½(‖F − I‖ + ‖F − V‖) (default), ``sum_of_two``
    ‖F − I‖ + ‖F − V‖, ``max_of_sources`` ‖F − max(I, V)‖."""
    if target == "mean_of_two":
        return 0.5 * (mean_absolute(fused, ir) + mean_absolute(fused, vis))
    if target == "sum_of_two":
        return mean_absolute(fused, ir) + mean_absolute(fused, vis)
    if target == "max_of_sources":
        return mean_absolute(fused, torch.maximum(ir, vis))
    raise ValueError(f"l1_target '{target}' is not one of {L1_TARGETS}")


# --------------------------------------------------------------------------- the losses the loop minimises

class ReconstructionLoss(nn.Module):
    r"""Eq. 1 (stage 1): $L = \|I - O\| + \alpha_1 (1 - \mathrm{SSIM}(I, O))$, α₁ = 0.84, O = decoder(encoder(I))."""

    def __init__(self, alpha1: float = 0.84):
        super().__init__()
        self.alpha1 = alpha1

    def forward(self, model: nn.Module, batch: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        images = batch[0]
        rebuilt = model.reconstruct(images)
        pixel, structural = mean_absolute(rebuilt, images), (1 - ssim(rebuilt, images)).mean()
        return {"total": pixel + self.alpha1 * structural, "l1": pixel, "ssim": structural}

    def describe(self) -> dict:
        return {"loss": "msfam Eq. 1", "alpha1": self.alpha1}


class NestFuseLoss(nn.Module):
    r"""NestFuse's auto-encoder loss: $\|O - I\|_2^2 + \lambda (1 - \mathrm{SSIM}(O, I))$, λ = 100 (its paper's
    choice), computed here on [0, 1] images (NestFuse's code used 0–255, so its pixel term weighs more there)."""

    def __init__(self, lam: float = 100.0):
        super().__init__()
        self.lam = lam

    def forward(self, model: nn.Module, batch: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        images = batch[0]
        rebuilt = model.reconstruct(images)
        pixel, structural = mean_squared(rebuilt, images), (1 - ssim(rebuilt, images)).mean()
        return {"total": pixel + self.lam * structural, "mse": pixel, "ssim": structural}

    def describe(self) -> dict:
        return {"loss": "NestFuse MSE + lambda (1 - SSIM)", "lambda": self.lam}


class FusionLoss(nn.Module):
    r"""Eq. 2 (stage 2): $L = L_1(I, V, F) + \alpha_2 L_C(F) + \beta L_{PP}(I, V, F)$, α₂ = 0.84, β = 2.

    ``pull_push=False``: equal weights ½, ½ in the MS-SSIM term (Table 3's "P ✘" rows, spec §3); ``sc_net=None``
    or ``semantic=False``: no L_C (Table 3's "C ✘" rows). The SC net is frozen (no parameter trains, eval mode)."""

    def __init__(self, sc_net: nn.Module | None = None, alpha2: float = 0.84, beta: float = 2.0,
                 l1_target: str = "mean_of_two", pull_push: bool = True, semantic: bool = True,
                 sc_reduction: str = "mean", pp_swap_weights: bool = False, msssim_levels: int | None = None):
        super().__init__()
        if semantic and sc_net is None:
            raise ValueError("semantic=True needs a pre-trained sc_net (train.py trains one first)")
        if l1_target not in L1_TARGETS:
            raise ValueError(f"l1_target '{l1_target}' is not one of {L1_TARGETS}")
        self.alpha2, self.beta, self.l1_target = alpha2, beta, l1_target
        self.pull_push, self.semantic, self.sc_reduction = pull_push, semantic, sc_reduction
        self.pp_swap_weights, self.msssim_levels = pp_swap_weights, msssim_levels
        self.sc_net = sc_net
        if sc_net is not None:
            sc_net.requires_grad_(False)
            sc_net.eval()

    def train(self, mode: bool = True) -> "FusionLoss":
        super().train(mode)
        if self.sc_net is not None:
            self.sc_net.eval()  # frozen BatchNorm statistics
        return self

    def forward(self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        ir, vis = batch
        fused = model(ir, vis)
        l1 = intensity_l1(ir, vis, fused, self.l1_target)
        pp, weights = pull_push_loss(vis, ir, fused, self.pull_push, self.pp_swap_weights, self.msssim_levels)
        total = l1 + self.beta * pp
        terms = {"l1": l1, "pull_push": pp, "alpha_vis": weights[:, 0].mean()}
        if self.semantic:
            sc = semantic_constraint_loss(self.sc_net, fused, self.sc_reduction)
            total = total + self.alpha2 * sc
            terms["semantic"] = sc
        return {"total": total, **terms}

    def describe(self) -> dict:
        return {"loss": "msfam Eq. 2", "alpha2": self.alpha2, "beta": self.beta, "l1_target": self.l1_target,
                "pull_push": self.pull_push, "semantic": self.semantic, "sc_reduction": self.sc_reduction,
                "pp_swap_weights": self.pp_swap_weights, "msssim_levels": self.msssim_levels}


class SCPretrainLoss(nn.Module):
    """§3.5: binary cross-entropy of the SC net's (p_vis, p_ir) against the labels ([1,0] vis, [0,1] ir, [1,1]
    fused), mean over labels and images; accuracy (both labels right at 0.5) is logged."""

    def forward(self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        images, labels = batch
        logits = model.logits(images)
        loss = F.binary_cross_entropy_with_logits(logits, labels)
        accuracy = ((logits > 0).float() == labels).all(1).float().mean()
        return {"total": loss, "accuracy": accuracy}

    def describe(self) -> dict:
        return {"loss": "BCE (SC pre-training)"}
