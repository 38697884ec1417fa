"""TEMPLATE loss: replace with the paper's training loss (its equation in the class docstring).

The training loop (:func:`fusion_core.train.train`) calls ``loss(model, batch)`` and minimises ``["total"]``;
the other entries are logged per epoch (the loss-curve figures read them). Terms that two papers share live in
:mod:`fusion_core.losses`.
"""
from __future__ import annotations

import torch
from torch import nn

from ...losses import mean_squared, ssim_loss


class TemplateLoss(nn.Module):
    r"""$L = \lVert x - \hat x\rVert_2^2 + \lambda\,\tfrac12(1 - \mathrm{SSIM}(x, \hat x))$ on the IR and VIS
    reconstructions (the terms of ``losses.reconstruction_loss``, logged separately)."""

    def __init__(self, lam: float = 1.0):
        super().__init__()
        self.lam = lam

    def forward(self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        images = torch.cat(batch)  # the auto-encoder learns to reconstruct both modalities
        rebuilt = model(images)
        pixel, structural = mean_squared(rebuilt, images), ssim_loss(rebuilt, images)
        return {"total": pixel + self.lam * structural, "pixel": pixel, "ssim": structural}

    def describe(self) -> dict:
        return {"loss": "template", "lambda": self.lam}
