r"""AMFE's training losses (spec 004 §3): stage 1 (Eq. 5, extractor + decoder, with a discriminator) and stage 2
(attention; the paper gives no loss, the spec's unsupervised default).

The shared loop (:func:`fusion_core.train.train`) makes one Adam step on ``total`` per batch. Stage 1's
generator/discriminator alternation is folded into that one step: ``total = L_G + L_D`` where L_G reaches the
discriminator through *detached* copies of its parameters (so it only moves the network) and L_D sees a detached
reconstruction (so it only moves the discriminator). Adam is per parameter, so this is one D step and one G step
per batch with the same learning rate [A], except that the G step uses the discriminator as it was before this
batch's D step (simultaneous instead of sequential alternation; stated in the README).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call

from ...losses import mean_squared, ssim_loss
from .model import AMFE, AMFEStage1, edge_map

GAN_LABELS = ("hard", "soft")


def ssim_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    r"""$L_{SSIM} = 1 - \mathrm{SSIM}(x, y)$ (mean of the SSIM map; Gaussian 11×11, σ = 1.5, data range 1).

    :func:`fusion_core.losses.ssim_loss` is mean((1 − SSIM)/2) clamped to [0, 1], so this is twice it."""
    return 2.0 * ssim_loss(x, y)


def lsgan_generator(d_fake: torch.Tensor, target: torch.Tensor | float = 1.0) -> torch.Tensor:
    r"""$L_{GAN} = \mathrm{mean}\,(D(\hat I) - 1)^2$ (least squares, hard label 1 or a soft target tensor)."""
    return (d_fake - target).square().mean()


def lsgan_discriminator(d_real: torch.Tensor, d_fake: torch.Tensor, real: torch.Tensor | float = 1.0,
                        fake: torch.Tensor | float = 0.0) -> torch.Tensor:
    r"""$L_D = \mathrm{mean}\,(D(I) - 1)^2 + \mathrm{mean}\,D(\hat I)^2$ (hard labels 1/0, or soft targets)."""
    return (d_real - real).square().mean() + (d_fake - fake).square().mean()


class Stage1Loss(nn.Module):
    r"""Eq. 5: $L = L_{pixel} + \gamma L_{SSIM} + \lambda L_{GAN}$ on the reconstruction $\hat I$ of a crop I, plus
    the discriminator's $L_D$ (module docstring). $L_{pixel}$ = mean squared error (``pixel="mse"``) or the
    Euclidean norm ‖Î − I‖₂ per image, averaged (``"l2norm"``). Soft labels (FusionGAN): real, generator target
    ~U[0.7, 1.2], fake ~U[0, 0.3]. λ = 0, or a model without discriminator: the "original network" of Figs. 5/6.
    Logged: ``pixel``, ``ssim``, ``recon`` = L_pixel + γ L_SSIM (the part both Fig. 5 runs share), ``adv``, ``disc``.
    """

    def __init__(self, gamma: float = 100.0, lam: float = 0.1, pixel: str = "mse", gan_labels: str = "hard"):
        super().__init__()
        if pixel not in ("mse", "l2norm"):
            raise ValueError(f"pixel loss '{pixel}' is not 'mse' or 'l2norm'")
        if gan_labels not in GAN_LABELS:
            raise ValueError(f"gan_labels '{gan_labels}' is not one of {GAN_LABELS}")
        self.gamma, self.lam, self.pixel, self.gan_labels = gamma, lam, pixel, gan_labels

    def pixel_loss(self, rebuilt: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        if self.pixel == "mse":
            return mean_squared(rebuilt, images)
        return (rebuilt - images).flatten(1).norm(dim=1).mean()

    def _labels(self, n: int, like: torch.Tensor):
        if self.gan_labels == "hard":
            return 1.0, 0.0, 1.0
        u = torch.rand(3, n, 1, dtype=like.dtype, device=like.device)
        return 0.7 + 0.5 * u[0], 0.3 * u[1], 0.7 + 0.5 * u[2]

    def forward(self, model: AMFEStage1, batch: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        images = batch[0]
        rebuilt = model.net.reconstruct(images)
        pixel, structural = self.pixel_loss(rebuilt, images), ssim_distance(rebuilt, images)
        recon = pixel + self.gamma * structural
        terms = {"pixel": pixel, "ssim": structural, "recon": recon}
        if model.disc is None or self.lam == 0:
            terms["total"] = recon
            return terms
        real, fake, target = self._labels(images.shape[0], images)
        frozen = {k: v.detach() for k, v in model.disc.named_parameters()}
        adv = lsgan_generator(functional_call(model.disc, frozen, (rebuilt,)), target)
        disc = lsgan_discriminator(model.disc(images), model.disc(rebuilt.detach()), real, fake)
        terms.update(adv=adv, disc=disc, total=recon + self.lam * adv + disc)
        return terms

    def describe(self) -> dict:
        return {"loss": "amfe stage 1 (Eq. 5)", "gamma": self.gamma, "lambda": self.lam, "pixel": self.pixel,
                "gan_labels": self.gan_labels, "alternation": "simultaneous D and G step (one Adam step on L_G + L_D)"}


class Stage2Loss(nn.Module):
    r"""Stage 2 [A, spec §3]: $L = L_{int} + \beta L_{edge} + \eta L^{fus}_{SSIM}$ on the fused image F, with
    $L_{int} = \mathrm{mean}|F - \max(I_{ir}, I_{vis})|$,
    $L_{edge} = \mathrm{mean}|S(G(F)) - \max(S(G(I_{ir})), S(G(I_{vis})))|$ (the paper's own edge operator),
    $L^{fus}_{SSIM} = 1 - \tfrac12[\mathrm{SSIM}(F, I_{ir}) + \mathrm{SSIM}(F, I_{vis})]$.
    Only the attention learns unless ``finetune_all`` (the extractor and decoder are frozen and kept in eval mode).
    """

    def __init__(self, beta: float = 10.0, eta: float = 1.0, rule: str = "softmax_channel",
                 finetune_all: bool = False):
        super().__init__()
        self.beta, self.eta, self.rule, self.finetune_all = beta, eta, rule, finetune_all

    def forward(self, model: AMFE, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        ir, vis = batch
        if not self.finetune_all:
            model.extractor.eval()
            model.decoder.eval()
        fused = model.fuse(ir, vis, self.rule)
        intensity = (fused - torch.maximum(ir, vis)).abs().mean()
        target = torch.maximum(edge_map(ir), edge_map(vis))
        edge = (edge_map(fused, eps=1e-8) - target).abs().mean()
        structural = 0.5 * (ssim_distance(fused, ir) + ssim_distance(fused, vis))
        total = intensity + self.beta * edge + self.eta * structural
        return {"total": total, "intensity": intensity, "edge": edge, "ssim": structural}

    def describe(self) -> dict:
        return {"loss": "amfe stage 2 [A]", "beta": self.beta, "eta": self.eta, "rule": self.rule,
                "finetune_all": self.finetune_all}


def freeze_for_stage2(model: AMFE, finetune_all: bool = False) -> AMFE:
    """Stage 2 trains the attention only: extractor and decoder stop receiving gradients (unless ``finetune_all``)."""
    for module in (model.extractor, model.decoder):
        for parameter in module.parameters():
            parameter.requires_grad_(finetune_all)
    return model
