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
$p = 1$ data term). Iterations: a fixed ``ITERATIONS`` primal–dual steps (step sizes
$\tau = \sigma = 1/\sqrt8$), deterministic; like the authors' solver (5 outer IRN loops) it
stops before full convergence. For a colour visible image VIFB fused the three
channels of $u - v$ jointly (IR repeated in every channel): :func:`gtf_rgb` does the same.
"""
from __future__ import annotations

import numpy as np
import torch

from ._common import check_pair, register

LAMBDA = 4.0
ITERATIONS = 200


def _grad_into(y: np.ndarray, gx: np.ndarray, gy: np.ndarray) -> None:
    """Forward differences (zero across the last column/row: Neumann boundary), written in place."""
    np.subtract(y[..., :, 1:], y[..., :, :-1], out=gx[..., :, :-1])
    np.subtract(y[..., 1:, :], y[..., :-1, :], out=gy[..., :-1, :])


def _div_into(px: np.ndarray, py: np.ndarray, out: np.ndarray) -> None:
    """Negative adjoint of the forward difference (px, py zero in the last column/row)."""
    np.copyto(out, px)
    out[..., :, 1:] -= px[..., :, :-1]
    out += py
    out[..., 1:, :] -= py[..., :-1, :]


def l1_tv_array(d: np.ndarray, lam: float = LAMBDA, iterations: int = ITERATIONS) -> np.ndarray:
    r"""$\arg\min_y \|y - d\|_1 + \lambda \sum_{pixels} \|\nabla y\|_2$ for C×H×W ``d`` (channels coupled).

    Chambolle–Pock primal–dual iterations, $\tau = \sigma = 1/\sqrt8$, in float32, started at $y = d$;
    in-place numpy (single-threaded, so the result and the run time do not depend on thread count).
    """
    d = np.ascontiguousarray(d, dtype=np.float32)
    tau = sigma = np.float32(1.0 / 8.0 ** 0.5)
    y, y_bar = d.copy(), d.copy()
    px, py, gx, gy = (np.zeros_like(d) for _ in range(4))
    div, v, norm = np.empty_like(d), np.empty_like(d), np.empty_like(d[:1])
    for _ in range(iterations):
        _grad_into(y_bar, gx, gy)
        px += sigma * gx
        py += sigma * gy
        np.sqrt((px * px + py * py).sum(axis=0, keepdims=True), out=norm)
        np.maximum(norm / np.float32(lam), 1.0, out=norm)
        px /= norm  # projection onto {|p| <= lambda}
        py /= norm
        _div_into(px, py, div)
        np.subtract(y, d, out=v)
        v += tau * div  # y + tau*div p - d
        np.multiply(y, -1.0, out=y_bar)
        np.add(d, np.sign(v) * np.maximum(np.abs(v) - tau, 0.0), out=y)  # prox of tau*|y - d|_1
        y_bar += 2.0 * y  # 2 y_new - y_old
    return y


def l1_tv(data: torch.Tensor, lam: float = LAMBDA, iterations: int = ITERATIONS) -> torch.Tensor:
    """:func:`l1_tv_array` for every image of an N×C×H×W tensor (C channels coupled)."""
    arrays = data.detach().cpu().numpy()
    out = np.stack([l1_tv_array(a, lam, iterations) for a in arrays])
    return torch.from_numpy(out).to(dtype=data.dtype, device=data.device)


def gtf_fusion(ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
    check_pair(ir, vis)
    return l1_tv(ir - vis) + vis


def gtf_rgb(ir: torch.Tensor, vis_rgb: torch.Tensor) -> torch.Tensor:
    """VIFB's colour GTF: vectorial L1-TV of (IR − RGB) over the three channels, plus RGB."""
    return l1_tv(ir.expand_as(vis_rgb) - vis_rgb) + vis_rgb


gtf_fusion.__doc__ = __doc__
register("gtf", gtf_fusion, gtf_rgb)
