r"""SAVF's loss (spec 000 §3, Eqs. 3–6), used by all three stages ("the loss function of the two sub-tasks is the
same as that of the main task"):

$$L_f(P, R) = w_s L_{SSIM}(P, R) + w_p L_{Perceptual}(P, R) + w_e L_{Edge}(P, R), \qquad w = (1, 1, 1)\ \text{(Eq. 3)}$$

* Eq. 4: $L_{SSIM} = 1 - \overline{\mathrm{SSIM}}(P, R)$ (Gaussian 11×11, σ = 1.5, $C_1 = 0.01^2$, $C_2 = 0.03^2$,
  $C_3 = C_2/2$, L = 1; the paper's Σ read as the mean over windows, so $L_{SSIM} \in [0, 2]$).
* Eq. 5: $L_{Perceptual} = \frac{1}{CHW}\lVert\phi(P) - \phi(R)\rVert_2^2$, φ = relu2_2 of the frozen backbone.
* Eq. 6: $L_{Edge} = L_{SSIM}(k * P, k * R)$, k the 4-neighbour Laplacian $[[0,1,0],[1,-4,1],[0,1,0]]$, replicate
  border (the BCE variant: ``edge="bce"``, responses mapped by $|\cdot|$ clipped to [0, 1]).

Main task (unsupervised; the reference is undefined in the paper, spec §3): $L = \tfrac12 L_f(F, I_a) + \tfrac12
L_f(F, I_b)$ (``main_ref="both_equal"``), or against $\max(I_a, I_b)$ (``"max_intensity"``).
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ...losses import ssim_loss as _half_dssim

LAPLACIAN = ((0.0, 1.0, 0.0), (1.0, -4.0, 1.0), (0.0, 1.0, 0.0))
EDGE_VARIANTS = ("ssim", "bce")
MAIN_REFERENCES = ("both_equal", "max_intensity")


def _check(x: torch.Tensor, y: torch.Tensor, what: str) -> None:
    if x.shape != y.shape or x.ndim != 4:
        raise ValueError(f"{what} needs two N×C×H×W tensors of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")


def ssim_term(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    r"""Eq. 4: $1 - \overline{\mathrm{SSIM}}(x, y)$ = 2 × the shared ``losses.ssim_loss`` (which is $(1-\mathrm{SSIM})/2$,
    clamped to [0, 1] per pixel, so this term lies in [0, 2])."""
    _check(x, y, "ssim_term")
    return 2.0 * _half_dssim(x, y)


def laplacian(x: torch.Tensor) -> torch.Tensor:
    """$k * x$ with the 4-neighbour Laplacian, replicate border, per channel."""
    if x.ndim != 4:
        raise ValueError(f"laplacian needs an N×C×H×W tensor, got shape {tuple(x.shape)}")
    kernel = torch.tensor(LAPLACIAN, dtype=x.dtype, device=x.device).view(1, 1, 3, 3).repeat(x.shape[1], 1, 1, 1)
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel, groups=x.shape[1])


def edge_term(x: torch.Tensor, y: torch.Tensor, variant: str = "ssim") -> torch.Tensor:
    r"""Eq. 6: $L_{SSIM}(k * x, k * y)$; ``variant="bce"``: $\mathrm{BCE}(|k*x|, |k*y|)$, both clipped to [0, 1]."""
    _check(x, y, "edge_term")
    if variant == "ssim":
        return ssim_term(laplacian(x), laplacian(y))
    if variant == "bce":
        p = laplacian(x).abs().clamp(1e-6, 1 - 1e-6)
        return F.binary_cross_entropy(p, laplacian(y).abs().clamp(0, 1))
    raise ValueError(f"edge variant '{variant}' is not one of {EDGE_VARIANTS}")


def perceptual_term(x: torch.Tensor, y: torch.Tensor, features: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    r"""Eq. 5: $\frac{1}{CHW}\lVert\phi(x) - \phi(y)\rVert_2^2$, averaged over the batch (φ = ``features``)."""
    _check(x, y, "perceptual_term")
    return (features(x) - features(y)).square().mean()


def relu2_2(backbone: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """φ of Eq. 5: the second stage output (relu2_2) of a :class:`~.model.VGGBackbone`."""
    def phi(x: torch.Tensor) -> torch.Tensor:
        return backbone(x)[1]
    return phi


class FusionLoss(nn.Module):
    """Eq. 3: ``L_f(P, R)``; ``features`` is φ (None: no perceptual term, its weight must then be 0)."""

    def __init__(self, w_ssim: float = 1.0, w_perceptual: float = 1.0, w_edge: float = 1.0, edge: str = "ssim",
                 features: Callable[[torch.Tensor], torch.Tensor] | None = None):
        super().__init__()
        if edge not in EDGE_VARIANTS:
            raise ValueError(f"edge variant '{edge}' is not one of {EDGE_VARIANTS}")
        if w_perceptual and features is None:
            raise ValueError("a perceptual weight needs the feature extractor φ (features=...)")
        self.weights = (w_ssim, w_perceptual, w_edge)
        self.edge, self.features = edge, features

    def terms(self, pred: torch.Tensor, ref: torch.Tensor) -> dict[str, torch.Tensor]:
        w_s, w_p, w_e = self.weights
        out = {"ssim": ssim_term(pred, ref), "edge": edge_term(pred, ref, self.edge)}
        out["perceptual"] = perceptual_term(pred, ref, self.features) if w_p else pred.new_zeros(())
        out["total"] = w_s * out["ssim"] + w_p * out["perceptual"] + w_e * out["edge"]
        return out

    def forward(self, pred: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        return self.terms(pred, ref)["total"]

    def describe(self) -> dict:
        return {"w_ssim": self.weights[0], "w_perceptual": self.weights[1], "w_edge": self.weights[2], "edge": self.edge}


def _prefixed(prefix: str, terms: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{prefix}_{k}": v for k, v in terms.items()}


class EnhanceLoss(nn.Module):
    """Stage 1 (sub-task 2): $L_f(D(E(I)), I)$, plus $L_f$ of the backbone's reconstruction when the stage trains the
    backbone. No perceptual term here: φ is the backbone this stage is still training (or, with ImageNet weights, the
    caller passes ``features``)."""

    def __init__(self, features=None, w_perceptual: float = 0.0, edge: str = "ssim"):
        super().__init__()
        self.lf = FusionLoss(w_perceptual=w_perceptual, edge=edge, features=features)

    def forward(self, model: nn.Module, batch: tuple[torch.Tensor]) -> dict[str, torch.Tensor]:
        images = batch[0]
        out = model(images)
        terms = _prefixed("enhance", self.lf.terms(out["enhanced"], images))
        total = terms["enhance_total"]
        if "backbone" in out:
            backbone = _prefixed("backbone", self.lf.terms(out["backbone"], images))
            terms.update(backbone)
            total = total + backbone["backbone_total"]
        return {"total": total, **terms}

    def describe(self) -> dict:
        return {"loss": "savf/enhance", **self.lf.describe()}


class AttentionLoss(nn.Module):
    """Stage 2 (sub-task 1): $L_f(F_S, G)$ against the attention label G, plus ``w_bce``·BCE(F_S, G) (spec flag
    ``att_bce``, off by default)."""

    def __init__(self, features, w_perceptual: float = 1.0, w_bce: float = 0.0, edge: str = "ssim"):
        super().__init__()
        self.lf = FusionLoss(w_perceptual=w_perceptual, edge=edge, features=features)
        self.w_bce = w_bce

    def forward(self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        ir, vis, label = batch
        attention = model(ir, vis)["F_S"]
        terms = self.lf.terms(attention, label)
        if self.w_bce:
            terms["bce"] = F.binary_cross_entropy(attention.clamp(1e-6, 1 - 1e-6), label)
            terms["total"] = terms["total"] + self.w_bce * terms["bce"]
        return terms

    def describe(self) -> dict:
        return {"loss": "savf/attention", "w_bce": self.w_bce, **self.lf.describe()}


class MainLoss(nn.Module):
    """Main task: $\\tfrac12 L_f(F, I_a) + \\tfrac12 L_f(F, I_b)$ (``both_equal``) or $L_f(F, \\max(I_a, I_b))$."""

    def __init__(self, features, main_ref: str = "both_equal", w_perceptual: float = 1.0, edge: str = "ssim",
                 w_edge: float = 1.0):
        super().__init__()
        if main_ref not in MAIN_REFERENCES:
            raise ValueError(f"main_ref '{main_ref}' is not one of {MAIN_REFERENCES}")
        self.lf = FusionLoss(w_perceptual=w_perceptual, w_edge=w_edge, edge=edge, features=features)
        self.main_ref = main_ref

    def fused_terms(self, fused: torch.Tensor, ir: torch.Tensor, vis: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.main_ref == "max_intensity":
            return self.lf.terms(fused, torch.maximum(ir, vis))
        a, b = self.lf.terms(fused, ir), self.lf.terms(fused, vis)
        return {k: 0.5 * (a[k] + b[k]) for k in a}

    def forward(self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        ir, vis = batch[:2]
        return self.fused_terms(model(ir, vis), ir, vis)

    def describe(self) -> dict:
        return {"loss": "savf/main", "main_ref": self.main_ref, **self.lf.describe()}
