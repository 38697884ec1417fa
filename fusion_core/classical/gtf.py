r"""GTF: infrared/visible fusion via gradient transfer and total-variation minimisation.

J. Ma, C. Chen, C. Li and J. Huang, "Infrared and visible image fusion via gradient transfer and
total variation minimization", Information Fusion 31, 100–109, 2016.

The fused image $x$ keeps the infrared intensities and the visible gradients:

$$ \min_x \; \|x - u\|_1 + \lambda \|\nabla x - \nabla v\|_1 , $$

$u$ = IR, $v$ = visible. With $y = x - v$ this is L1-TV denoising of $u - v$,
$\min_y \|y - (u - v)\|_1 + \lambda \operatorname{TV}(y)$, and $x = y + v$. The TV is isotropic
(and, for several channels, the vectorial TV that couples them, as the NUMIPAD ``irntv`` solver
used by the authors does). We solve it with the first-order primal–dual algorithm of Chambolle and
Pock (2011), forward differences with Neumann boundary, started from $y_0 = u - v$ like the authors.

Parameters: $\lambda = 4$ on intensities in [0, 1] (the authors' code as run by VIFB; the paper's
$p = 1$ data term). Iterations: ``ITERATIONS`` primal–dual steps (step sizes
$\tau = \sigma = 1/\sqrt8$), or fewer when the relative change drops below ``TOLERANCE``. The
authors' solver stops after 5 outer IRN loops, which is not fully converged, so our (converged)
output differs slightly in the flat regions. For a colour visible image VIFB fused the three
channels of $u - v$ jointly (IR repeated in every channel): :func:`gtf_rgb` does the same.
"""
from __future__ import annotations

import torch

from ._common import check_pair, register

LAMBDA = 4.0
ITERATIONS = 300
TOLERANCE = 1e-5


def _grad(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    gx = torch.zeros_like(y)
    gy = torch.zeros_like(y)
    gx[..., :, :-1] = y[..., :, 1:] - y[..., :, :-1]
    gy[..., :-1, :] = y[..., 1:, :] - y[..., :-1, :]
    return gx, gy


def _div(px: torch.Tensor, py: torch.Tensor) -> torch.Tensor:
    """Negative adjoint of :func:`_grad`."""
    dx = torch.zeros_like(px)
    dy = torch.zeros_like(py)
    dx[..., :, 0] = px[..., :, 0]
    dx[..., :, 1:-1] = px[..., :, 1:-1] - px[..., :, :-2]
    dx[..., :, -1] = -px[..., :, -2]
    dy[..., 0, :] = py[..., 0, :]
    dy[..., 1:-1, :] = py[..., 1:-1, :] - py[..., :-2, :]
    dy[..., -1, :] = -py[..., -2, :]
    return dx + dy


def l1_tv(data: torch.Tensor, lam: float = LAMBDA, iterations: int = ITERATIONS,
          tolerance: float = TOLERANCE) -> torch.Tensor:
    r"""$\arg\min_y \|y - d\|_1 + \lambda \sum_{pixels} \|\nabla y\|_2$ for N×C×H×W ``data`` (C channels coupled)."""
    d = data.double()
    if d.shape[-1] < 2 or d.shape[-2] < 2:
        return d.clone().to(data.dtype)
    tau = sigma = 1.0 / 8.0 ** 0.5
    y = d.clone()
    y_bar = y.clone()
    px = torch.zeros_like(d)
    py = torch.zeros_like(d)
    for _ in range(iterations):
        gx, gy = _grad(y_bar)
        px, py = px + sigma * gx, py + sigma * gy
        norm = torch.sqrt((px * px + py * py).sum(dim=1, keepdim=True))
        scale = torch.clamp(norm / lam, min=1.0)  # project onto {|p| <= lambda}
        px, py = px / scale, py / scale
        y_old = y
        v = y + tau * _div(px, py) - d
        y = d + torch.sign(v) * torch.clamp(v.abs() - tau, min=0.0)  # prox of tau*|y - d|_1
        y_bar = 2.0 * y - y_old
        change = (y - y_old).norm() / max(float(y.norm()), 1e-12)
        if change < tolerance:
            break
    return y.to(data.dtype)


def gtf_fusion(ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
    check_pair(ir, vis)
    return l1_tv(ir - vis) + vis


def gtf_rgb(ir: torch.Tensor, vis_rgb: torch.Tensor) -> torch.Tensor:
    """VIFB's colour GTF: vectorial L1-TV of (IR − RGB) over the three channels, plus RGB."""
    return l1_tv(ir.expand_as(vis_rgb) - vis_rgb) + vis_rgb


gtf_fusion.__doc__ = __doc__
register("gtf", gtf_fusion, gtf_rgb)
