r"""GFF: image fusion with guided filtering.

S. Li, X. Kang and J. Hu, "Image fusion with guided filtering", IEEE Transactions on Image
Processing 22(7), 2864–2875, 2013.

Two-scale decomposition: base $B_k$ = mean filter of source $k$ (31×31), detail $D_k = I_k - B_k$.
Saliency $S_k = |L * I_k| * g_{r_g,\sigma_g}$ (3×3 Laplacian, then Gaussian); initial weights
$P_k = [S_k = \max_j S_j]$ (ties to the first source); refined weights are guided-filtered with
the source as guide, $W^B_k = G_{r_1,\epsilon_1}(P_k, I_k)$ and $W^D_k = G_{r_2,\epsilon_2}(P_k, I_k)$,
clipped to [0, 1] and normalised:

$$ F = \sum_k W^B_k B_k + \sum_k W^D_k D_k. $$

Parameters (paper; the authors' code as run by VIFB): $r_1 = 45$, $\epsilon_1 = 0.3$,
$r_2 = 7$, $\epsilon_2 = 10^{-6}$, Gaussian 11×11 with $\sigma = 5$, mean filter 31×31; image
borders replicated, the guided filter's box means over the part of the window inside the image
(He et al.'s ``boxfilter``). The authors' code stores the weights as 8-bit (``uint8(W*255)``),
which we repeat. The first source is the visible image, as in VIFB. For a colour visible image
VIFB computed the weights on grey versions (MATLAB ``rgb2gray``) and applied them to every RGB
channel: :func:`gff_rgb` does the same.

Validation against VIFB: 17 of VIFB's 21 GFF images agree with ours to SSIM ≥ 0.98 (12 of them
value for value once ours is stored as VIFB stored its images). The other four (manWalking,
running, walking2, walkingnight) are not GFF fusions at all: their IR files are single-channel
JPEGs, and VIFB's driver (``run_GFF`` with the authors' ``load_images``) then writes the IR image
into the visible image's green plane and fuses that with an all-zero image, i.e. returns the
visible image with green replaced by IR. Measured: that image, rebuilt from the inputs, equals
VIFB's four files value for value after JPEG storage
(:func:`fusion_core.classical._vifb.vifb_gff_unfused`). Those pairs are left out of GFF's
agreement with VIFB; nothing in this implementation depends on the inputs' channel count.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

from ._common import check_pair, per_image, register

R_BASE, EPS_BASE = 45, 0.3
R_DETAIL, EPS_DETAIL = 7, 1e-6
GAUSS_SIZE, GAUSS_SIGMA = 11, 5.0
MEAN_SIZE = 31
_LAPLACIAN = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=np.float64)
_MATLAB_GREY = np.array([0.298936021293775, 0.587043074451121, 0.114020904255103])


def box_mean(image: np.ndarray, radius: int) -> np.ndarray:
    """Mean over the (2r+1)² window clipped to the image (He et al.'s box filter / N)."""
    size = (2 * radius + 1, 2 * radius + 1)
    total = cv2.boxFilter(image, cv2.CV_64F, size, normalize=False, borderType=cv2.BORDER_CONSTANT)
    count = cv2.boxFilter(np.ones_like(image), cv2.CV_64F, size, normalize=False, borderType=cv2.BORDER_CONSTANT)
    return total / count


def guided_filter(guide: np.ndarray, src: np.ndarray, radius: int, eps: float) -> np.ndarray:
    r"""He et al.'s guided filter: $q = \bar a I + \bar b$, $a = \mathrm{cov}(I,p)/(\mathrm{var}(I)+\epsilon)$."""
    mean_i, mean_p = box_mean(guide, radius), box_mean(src, radius)
    cov_ip = box_mean(guide * src, radius) - mean_i * mean_p
    var_i = box_mean(guide * guide, radius) - mean_i * mean_i
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    return box_mean(a, radius) * guide + box_mean(b, radius)


def gff_weights(greys: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Base and detail weight maps (K×H×W each, summing to 1) from the K grey sources in [0, 1]."""
    saliency = np.stack([
        cv2.GaussianBlur(np.abs(cv2.filter2D(g, cv2.CV_64F, _LAPLACIAN, borderType=cv2.BORDER_REPLICATE)),
                         (GAUSS_SIZE, GAUSS_SIZE), GAUSS_SIGMA, borderType=cv2.BORDER_REPLICATE)
        for g in greys
    ])
    winner = np.argmax(saliency, axis=0)  # ties: first source
    weights = []
    for radius, eps in ((R_BASE, EPS_BASE), (R_DETAIL, EPS_DETAIL)):
        w = np.stack([guided_filter(g, (winner == k).astype(np.float64), radius, eps) for k, g in enumerate(greys)])
        w = np.clip(np.round(w * 255.0), 0, 255) / 255.0 + 1e-12  # the authors' 8-bit weights
        weights.append(w / w.sum(axis=0, keepdims=True))
    return weights[0], weights[1]


def gff_compose(images: list[np.ndarray], w_base: np.ndarray, w_detail: np.ndarray) -> np.ndarray:
    """Σ_k W^B_k B_k + W^D_k D_k for sources H×W (or H×W×C, weights broadcast over channels)."""
    fused = 0.0
    for k, image in enumerate(images):
        base = cv2.blur(image, (MEAN_SIZE, MEAN_SIZE), borderType=cv2.BORDER_REPLICATE)
        wb, wd = (w_base[k], w_detail[k]) if image.ndim == 2 else (w_base[k][..., None], w_detail[k][..., None])
        fused = fused + wb * base + wd * (image - base)
    return fused


def gff_array(ir: np.ndarray, vis: np.ndarray) -> np.ndarray:
    sources = [np.ascontiguousarray(vis, dtype=np.float64), np.ascontiguousarray(ir, dtype=np.float64)]
    return gff_compose(sources, *gff_weights(sources))


def gff_rgb(ir: torch.Tensor, vis_rgb: torch.Tensor) -> torch.Tensor:
    """VIFB's colour GFF: weights from MATLAB-``rgb2gray`` grey images, applied to each RGB channel."""
    check_pair(ir, vis_rgb[:, :1])
    out = []
    for n in range(ir.shape[0]):
        vis = np.ascontiguousarray(vis_rgb[n].double().numpy().transpose(1, 2, 0))
        grey_ir = ir[n, 0].double().numpy()
        grey_vis = np.round(vis @ _MATLAB_GREY * 255.0) / 255.0  # rgb2gray of the 8-bit image
        w_base, w_detail = gff_weights([grey_vis, grey_ir])
        rgb_ir = np.repeat(grey_ir[..., None], 3, axis=2)
        out.append(gff_compose([vis, rgb_ir], w_base, w_detail).transpose(2, 0, 1))
    return torch.from_numpy(np.stack(out)).to(vis_rgb.dtype)


gff_fusion = per_image(gff_array)
register("gff", gff_fusion, gff_rgb)
