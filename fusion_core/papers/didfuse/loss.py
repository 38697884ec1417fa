r"""DIDFuse's training loss (spec 001 §3.1, Eqs. 1–5), with $\Phi = \tanh$ and $B, D$ the base / detail maps:

.. math::

    L = \Phi(d(B_V, B_I)) - \alpha_1 \Phi(d(D_V, D_I))
        + \alpha_2 f(I, \hat I) + \alpha_3 f(V, \hat V) + \alpha_4 \|\nabla V - \nabla \hat V\|_1,
    \qquad f(X, \hat X) = \|X - \hat X\|_2^2 + \lambda \frac{1 - \mathrm{SSIM}(X, \hat X)}{2}

Presets (:data:`DIDFUSE_PRESETS`, chosen with ``preset=``):

* ``"paper"`` — $d$ = mean squared difference (Eq. 1's squared ℓ2 norm, mean-reduced so that tanh does
  not saturate; spec A4), $\alpha_1 = 0.05$, $\alpha_2 = \alpha_3 = 2$, $\alpha_4 = 10$, $\lambda = 5$.
* ``"code"`` — the authors' public IJCAI code, which trained the released weights: $d$ = mean absolute
  difference (``L1Loss``) and $\alpha_1 = 0.5$ (spec A4/A5); the rest as the paper.

Norms are means over all elements (spec §3.1 table). SSIM: kornia, Gaussian 11×11, σ = 1.5, data
range 1, ``(1 − SSIM map)/2`` clamped to [0, 1] and averaged (what the authors' ``kornia.losses.SSIM``
returned). ∇: kornia's normalised Sobel x/y (÷8, replicate border).

Example::

    >>> import torch
    >>> from fusion_core.papers.didfuse.model import DIDFuse
    >>> loss = DIDFuseLoss("paper")
    >>> terms = loss(DIDFuse(), (torch.rand(2, 1, 32, 32), torch.rand(2, 1, 32, 32)))
    >>> sorted(terms)
    ['base', 'detail', 'ir_rec', 'total', 'vis_grad', 'vis_rec']
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch
from torch import nn

from ...losses import DISTANCES, gradient_l1, reconstruction_loss


@dataclass(frozen=True)
class DIDFuseWeights:
    """Coefficients of Eq. 5 and the decomposition distance; ``base_term``/``detail_term`` off for ablations."""

    alpha1: float = 0.05
    alpha2: float = 2.0
    alpha3: float = 2.0
    alpha4: float = 10.0
    lam: float = 5.0
    distance: str = "mse"
    base_term: bool = True  # off: Eq. 26 (Exp. 1) / Eq. 28 (Exp. 3)
    detail_term: bool = True  # off: Eq. 27 (Exp. 2) / Eq. 28 (Exp. 3)
    autoencoder: bool = False  # on: Eq. 29 (Exp. 4), both modalities as single images X


DIDFUSE_PRESETS: dict[str, DIDFuseWeights] = {
    "paper": DIDFuseWeights(),  # Sec. IV-A-3
    "code": DIDFuseWeights(alpha1=0.5, distance="l1"),  # authors' IJCAI train.py (spec A4, A5)
}


def didfuse_loss(ir, vis, ir_rec, vis_rec, ir_features, vis_features, weights: DIDFuseWeights) -> dict[str, torch.Tensor]:
    """Eq. 5 and its parts: ``base``/``detail`` are the raw distances before tanh (Fig. 3 panels).

    ``*_features`` are :class:`fusion_core.papers.didfuse.model.Features`; a missing map (ablation) drops its term.
    """
    distance = DISTANCES[weights.distance]
    zero = ir.new_zeros(())
    base = distance(vis_features.base, ir_features.base) if ir_features.base is not None else zero
    detail = distance(vis_features.detail, ir_features.detail) if ir_features.detail is not None else zero
    ir_term = reconstruction_loss(ir, ir_rec, weights.lam)
    vis_term = reconstruction_loss(vis, vis_rec, weights.lam)
    vis_grad = gradient_l1(vis, vis_rec)
    if weights.autoencoder:
        # Eq. 29, α2·f(X, X̂) + α4·‖∇X − ∇X̂‖1, averaged over the batch's IR and VIS images taken as singles X.
        ir_grad = gradient_l1(ir, ir_rec)
        total = weights.alpha2 * (ir_term + vis_term) / 2 + weights.alpha4 * (ir_grad + vis_grad) / 2
        return {"total": total, "base": base, "detail": detail, "ir_rec": ir_term, "vis_rec": vis_term,
                "vis_grad": vis_grad}
    total = weights.alpha2 * ir_term + weights.alpha3 * vis_term + weights.alpha4 * vis_grad
    if weights.base_term and ir_features.base is not None:
        total = total + torch.tanh(base)
    if weights.detail_term and ir_features.detail is not None:
        total = total - weights.alpha1 * torch.tanh(detail)
    return {"total": total, "base": base, "detail": detail, "ir_rec": ir_term, "vis_rec": vis_term, "vis_grad": vis_grad}


class DIDFuseLoss(nn.Module):
    """The training objective of Fig. 1(a): encode–decode the IR and the VIS batch, then Eq. 5.

    Called as ``loss(model, (ir, vis))`` — the signature :func:`fusion_core.train.train` expects —
    and returns a dict of terms with the optimised value under ``"total"``.
    """

    def __init__(self, preset: str = "paper", **overrides):
        super().__init__()
        if preset not in DIDFUSE_PRESETS:
            raise ValueError(f"unknown DIDFuse loss preset '{preset}'; known: {', '.join(DIDFUSE_PRESETS)}")
        if overrides.get("distance", "mse") not in DISTANCES:
            raise ValueError(f"distance '{overrides['distance']}' is not one of {sorted(DISTANCES)}")
        self.preset = preset
        self.weights = replace(DIDFUSE_PRESETS[preset], **overrides)

    def forward(self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        ir, vis = batch
        ir_rec, ir_features = model(ir)
        vis_rec, vis_features = model(vis)
        # Losses in float32 even under autocast (SSIM's variances lose precision in half).
        ir_rec, vis_rec = ir_rec.float(), vis_rec.float()
        ir_features = type(ir_features)(*(None if t is None else t.float() for t in ir_features))
        vis_features = type(vis_features)(*(None if t is None else t.float() for t in vis_features))
        with torch.autocast(ir.device.type, enabled=False):
            return didfuse_loss(ir.float(), vis.float(), ir_rec, vis_rec, ir_features, vis_features, self.weights)

    def describe(self) -> dict:
        return {"preset": self.preset, **asdict(self.weights)}
