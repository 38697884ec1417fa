r"""Training losses, one function per term; a thin module per paper assembles them.

DIDFuse (spec 001 §3.1, Eqs. 1–5), with $\Phi = \tanh$ and $B, D$ the base / detail maps:

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
    >>> from fusion_core.nets.didfuse import DIDFuse
    >>> loss = DIDFuseLoss("paper")
    >>> terms = loss(DIDFuse(), (torch.rand(2, 1, 32, 32), torch.rand(2, 1, 32, 32)))
    >>> sorted(terms)
    ['base', 'detail', 'ir_rec', 'total', 'vis_grad', 'vis_rec']
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch
from kornia.filters import spatial_gradient
from kornia.losses import ssim_loss as _kornia_ssim_loss
from torch import nn

SSIM_WINDOW = 11


# --------------------------------------------------------------------------- terms

def ssim_loss(x: torch.Tensor, y: torch.Tensor, window: int = SSIM_WINDOW) -> torch.Tensor:
    r"""Eq. 4: $L_{SSIM} = \mathrm{mean}\,\tfrac12 (1 - \mathrm{SSIM}(x, y))$ (kornia, 11×11 Gaussian, σ = 1.5)."""
    if x.shape != y.shape or x.ndim != 4:
        raise ValueError(f"ssim_loss needs two N×C×H×W tensors of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    return _kornia_ssim_loss(x, y, window, max_val=1.0)


def gradient_l1(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    r"""$\mathrm{mean}\,|\nabla x - \nabla y|$ over both Sobel directions (normalised kernels)."""
    return (spatial_gradient(x, "sobel", normalized=True) - spatial_gradient(y, "sobel", normalized=True)).abs().mean()


def mean_squared(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (x - y).square().mean()


def mean_absolute(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (x - y).abs().mean()


DISTANCES = {"mse": mean_squared, "l1": mean_absolute}


def reconstruction_loss(x: torch.Tensor, x_hat: torch.Tensor, lam: float) -> torch.Tensor:
    r"""Eq. 3: $f(X, \hat X) = \|X - \hat X\|_2^2 + \lambda L_{SSIM}(X, \hat X)$ (mean squared error)."""
    return mean_squared(x, x_hat) + lam * ssim_loss(x, x_hat)


# --------------------------------------------------------------------------- DIDFuse

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

    ``*_features`` are :class:`fusion_core.nets.didfuse.Features`; a missing map (ablation) drops its term.
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


# =========================================================================== Res2NetFuse (spec 002 §3)

MSSSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def _gaussian_window(size: int, sigma: float, channels: int, like: torch.Tensor) -> torch.Tensor:
    x = torch.arange(size, dtype=like.dtype, device=like.device) - size // 2
    g = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def ssim_code(x: torch.Tensor, y: torch.Tensor, window: int = 11, sigma: float = 1.5) -> tuple[torch.Tensor, torch.Tensor]:
    r"""SSIM and contrast–structure term as the Res2NetFuse code's vendored ``pytorch_msssim`` computes them.

    Gaussian 11×11 (σ = 1.5, shrunk to the image when smaller), "valid" convolution, means over the
    whole batch. The dynamic range is guessed from the FIRST argument: $L = 255$ if max > 128 else 1,
    minus −1 if min < −0.5; $C_1 = (0.01L)^2$, $C_2 = (0.03L)^2$.
    Returns $(\overline{\mathrm{SSIM}}, \overline{cs})$ with $cs = (2\sigma_{xy} + C_2)/(\sigma_x^2 + \sigma_y^2 + C_2)$.
    """
    high = 255.0 if float(x.detach().max()) > 128 else 1.0
    low = -1.0 if float(x.detach().min()) < -0.5 else 0.0
    dynamic = high - low
    c1, c2 = (0.01 * dynamic) ** 2, (0.03 * dynamic) ** 2
    channels, height, width = x.shape[1:]
    size = min(window, height, width)
    kernel = _gaussian_window(size, sigma, channels, x)
    conv = lambda t: torch.nn.functional.conv2d(t, kernel, groups=channels)  # noqa: E731
    mu_x, mu_y = conv(x), conv(y)
    var_x, var_y = conv(x * x) - mu_x ** 2, conv(y * y) - mu_y ** 2
    cov = conv(x * y) - mu_x * mu_y
    v1, v2 = 2 * cov + c2, var_x + var_y + c2
    cs = (v1 / v2).mean()
    ssim_map = ((2 * mu_x * mu_y + c1) * v1) / ((mu_x ** 2 + mu_y ** 2 + c1) * v2)
    return ssim_map.mean(), cs


def msssim_code(x: torch.Tensor, y: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    r"""The Res2NetFuse code's MS-SSIM, operator-precedence quirk included (spec 002 §3.1).

    Five levels with 2×2 average pooling between them; with ``normalize`` each term is mapped
    $t \mapsto (t + 1)/2$. The code's ``prod(mcs[:-1]**w[:-1] * mssim[-1]**w[-1])`` equals
    $\prod_{l<5} cs_l^{w_l} \cdot \mathrm{SSIM}_5^{4 w_5}$, not Wang's $\prod_{l<5} cs_l^{w_l}\,\mathrm{SSIM}_5^{w_5}$.
    """
    weights = torch.tensor(MSSSIM_WEIGHTS, dtype=x.dtype, device=x.device)
    ssims, css = [], []
    for _ in MSSSIM_WEIGHTS:
        s, cs = ssim_code(x, y)
        ssims.append(s)
        css.append(cs)
        x, y = torch.nn.functional.avg_pool2d(x, 2), torch.nn.functional.avg_pool2d(y, 2)
    ssims, css = torch.stack(ssims), torch.stack(css)
    if normalize:
        ssims, css = (ssims + 1) / 2, (css + 1) / 2
    return torch.prod(css[:-1] ** weights[:-1] * ssims[-1] ** weights[-1])


class Res2NetFuseLoss(nn.Module):
    r"""$L = L_{pixel} + L_{ssim}$ (Eq. 2, both weights 1) on [0, 255] images.

    ``pixel_norm="code"``: ``MSELoss / (B·C·H·W)`` (the code normalises twice); ``"paper"``: Eq. 3, the
    plain mean. ``ssim_loss="msssim_code"``: $1 - $:func:`msssim_code` (output first); ``"ssim"``: Eq. 4,
    $1 - \mathrm{SSIM}$ (pytorch-msssim, data range 255).
    """

    def __init__(self, pixel_norm: str = "code", ssim_loss: str = "msssim_code"):
        super().__init__()
        if pixel_norm not in ("code", "paper"):
            raise ValueError(f"pixel_norm '{pixel_norm}' is not 'code' or 'paper'")
        if ssim_loss not in ("msssim_code", "ssim"):
            raise ValueError(f"ssim_loss '{ssim_loss}' is not 'msssim_code' or 'ssim'")
        self.pixel_norm, self.ssim_kind = pixel_norm, ssim_loss

    def forward(self, model: nn.Module, batch: tuple) -> dict[str, torch.Tensor]:
        x = batch[0]
        out = model(x)
        pixel = torch.nn.functional.mse_loss(out, x)
        if self.pixel_norm == "code":
            pixel = pixel / x.numel()
        if self.ssim_kind == "msssim_code":
            structural = 1 - msssim_code(out, x)
        else:
            from pytorch_msssim import ssim

            structural = 1 - ssim(out, x, data_range=255.0, size_average=True)
        return {"total": pixel + structural, "pixel": pixel, "ssim": structural}

    def describe(self) -> dict:
        return {"loss": "Res2NetFuse", "pixel_norm": self.pixel_norm, "ssim_loss": self.ssim_kind}
