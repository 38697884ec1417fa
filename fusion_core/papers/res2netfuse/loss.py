r"""Res2NetFuse's training loss (spec 002 §3): pixel MSE + (MS-)SSIM on [0, 255] images, as the paper and its code.
"""
from __future__ import annotations

import torch
from torch import nn

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
