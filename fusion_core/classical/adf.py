r"""ADF: anisotropic diffusion two-scale fusion with a Karhunen–Loève (PCA) detail rule.

D. P. Bavirisetti and R. Dhuli, "Fusion of infrared and visible sensor images based on anisotropic
diffusion and Karhunen–Loève transform", IEEE Sensors Journal 16(1), 203–209, 2016.

Each source is split into a base layer $B_k$ = Perona–Malik anisotropic diffusion of the source
(8-neighbour scheme, conduction $c = \exp(-(|\nabla I|/\kappa)^2)$) and a detail layer
$D_k = I_k - B_k$. Details are fused with the KL/PCA weights of the pair $(D_1, D_2)$
(:func:`~fusion_core.classical.pca.pca_weights`), bases are averaged:

$$ F = p_1 D_1 + p_2 D_2 + \tfrac12 (B_1 + B_2). $$

Parameters (the authors' code as run by VIFB): 10 iterations, time step $\Delta t = 0.15$,
$\kappa = 30$ on 8-bit intensities, conduction option 1 (exponential); the diagonal neighbours
are weighted $1/2$ (distance $\sqrt2$). Outside the image the diffusion sees zeros, as MATLAB's
``imfilter`` default does in the authors' code. VIFB ran it per RGB channel of a colour visible
image with the grey IR image.
"""
from __future__ import annotations

import numpy as np

from ._common import per_channel_rgb, per_image, register, to_255
from .pca import pca_weights

ITERATIONS = 10
TIME_STEP = 0.15
KAPPA = 30.0  # on 0..255 intensities

# (row offset, column offset, 1/distance²) of the 8 neighbours
_NEIGHBOURS = [(-1, 0, 1.0), (1, 0, 1.0), (0, -1, 1.0), (0, 1, 1.0),
               (-1, -1, 0.5), (-1, 1, 0.5), (1, -1, 0.5), (1, 1, 0.5)]


def anisotropic_diffusion(image: np.ndarray, iterations: int = ITERATIONS, time_step: float = TIME_STEP,
                          kappa: float = KAPPA) -> np.ndarray:
    r"""Perona–Malik diffusion $I \leftarrow I + \Delta t \sum_d w_d\, c(\nabla_d I)\, \nabla_d I$ (zero outside)."""
    out = np.asarray(image, dtype=np.float64).copy()
    h, w = out.shape
    for _ in range(iterations):
        padded = np.pad(out, 1, mode="constant")
        update = np.zeros_like(out)
        for dy, dx, weight in _NEIGHBOURS:
            grad = padded[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] - out
            update += weight * np.exp(-((grad / kappa) ** 2)) * grad
        out += time_step * update
    return out


def adf_array(ir: np.ndarray, vis: np.ndarray) -> np.ndarray:
    a, b = to_255(ir), to_255(vis)
    base_a, base_b = anisotropic_diffusion(a), anisotropic_diffusion(b)
    detail_a, detail_b = a - base_a, b - base_b
    p1, p2 = pca_weights(detail_a, detail_b)
    return (p1 * detail_a + p2 * detail_b + 0.5 * (base_a + base_b)) / 255.0


adf_fusion = per_image(adf_array)
register("adf", adf_fusion, per_channel_rgb(adf_fusion))
