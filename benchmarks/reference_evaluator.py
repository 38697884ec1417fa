"""A faithful re-implementation of the CDDFuse-style Python metric loop, the peer `score` is timed against.

    python benchmarks/reference_evaluator.py --fused DIR --ir DIR --vis DIR

CDDFuse (Zhao et al., CVPR 2023; ``utils/Evaluator.py`` and ``test_IVF.py``) and the papers that copied its
evaluator score a folder with plain NumPy / SciPy / scikit-image, one pair after another, in one process.
We could not run their file here (it is not in this repository or its data, and scikit-learn is not
installed), so this is a re-implementation of the same loop with the same library calls, written from that
code: images read with ``cv2.imread`` and converted to grey in float32 (rounded), then EN (``np.bincount``),
SD, SF, AG (``np.gradient``-style central differences), MI (``sklearn.metrics.mutual_info_score`` on the
flattened images: contingency table from ``np.unique`` labels in a ``scipy.sparse.coo_matrix``, as scikit-learn
builds it), SCD, VIF (VIFp over 4 scales with ``scipy.signal.convolve2d``), Qabf (Sobel by ``convolve2d``,
``np.arctan`` angles) and SSIM (``skimage.metrics.structural_similarity``, ``data_range=255`` — recent
scikit-image refuses float input without one). Values are the evaluator's, not the toolbox conventions'; only
the time is used. Prints the means and the seconds it took.
"""
from __future__ import annotations

import argparse
import math
import os
import time

import cv2
import numpy as np
import scipy.sparse as sp
from scipy.signal import convolve2d
from skimage.metrics import structural_similarity as ssim


def image_read_gray(path: str) -> np.ndarray:
    img = cv2.imread(path).astype("float32")
    return np.round(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY))


def EN(img):
    a = np.uint8(np.round(img)).flatten()
    h = np.bincount(a) / a.shape[0]
    return -sum(h * np.log2(h + (h == 0)))


def SD(img):
    return np.std(img)


def SF(img):
    return np.sqrt(np.mean((img[:, 1:] - img[:, :-1]) ** 2) + np.mean((img[1:, :] - img[:-1, :]) ** 2))


def AG(img):
    Gx, Gy = np.zeros_like(img), np.zeros_like(img)
    Gx[:, 0] = img[:, 1] - img[:, 0]
    Gx[:, -1] = img[:, -1] - img[:, -2]
    Gx[:, 1:-1] = (img[:, 2:] - img[:, :-2]) / 2
    Gy[0, :] = img[1, :] - img[0, :]
    Gy[-1, :] = img[-1, :] - img[-2, :]
    Gy[1:-1, :] = (img[2:, :] - img[:-2, :]) / 2
    return np.mean(np.sqrt((Gx ** 2 + Gy ** 2) / 2))


def mutual_info_score(labels_true, labels_pred):
    """sklearn.metrics.mutual_info_score: contingency matrix (sparse) → MI in nats."""
    classes, class_idx = np.unique(labels_true, return_inverse=True)
    clusters, cluster_idx = np.unique(labels_pred, return_inverse=True)
    contingency = sp.coo_matrix((np.ones(class_idx.shape[0]), (class_idx, cluster_idx)),
                                shape=(classes.shape[0], clusters.shape[0]), dtype=np.int64).tocsr()
    contingency.sum_duplicates()
    nzx, nzy, nz_val = sp.find(contingency)
    contingency_sum = contingency.sum()
    pi = np.ravel(contingency.sum(axis=1))
    pj = np.ravel(contingency.sum(axis=0))
    log_contingency_nm = np.log(nz_val)
    contingency_nm = nz_val / contingency_sum
    outer = pi.take(nzx).astype(np.int64, copy=False) * pj.take(nzy).astype(np.int64, copy=False)
    log_outer = -np.log(outer) + math.log(pi.sum()) + math.log(pj.sum())
    mi = contingency_nm * (log_contingency_nm - math.log(contingency_sum)) + contingency_nm * log_outer
    mi = np.where(np.abs(mi) < np.finfo(mi.dtype).eps, 0.0, mi)
    return np.clip(mi.sum(), 0.0, None)


def MI(F, A, B):
    return mutual_info_score(F.flatten(), A.flatten()) + mutual_info_score(F.flatten(), B.flatten())


def SCD(F, A, B):
    fa, fb = F - A, F - B

    def corr(x, y):
        return np.sum((x - np.mean(x)) * (y - np.mean(y))) / np.sqrt(np.sum((x - np.mean(x)) ** 2) * np.sum((y - np.mean(y)) ** 2))

    return corr(A, fb) + corr(B, fa)


def compare_viff(ref, dist):
    sigma_nsq, eps = 2, 1e-10
    num = den = 0.0
    for scale in range(1, 5):
        N = 2 ** (4 - scale + 1) + 1
        sd = N / 5.0
        m, n = [(ss - 1.0) / 2.0 for ss in (N, N)]
        y, x = np.ogrid[-m:m + 1, -n:n + 1]
        h = np.exp(-(x * x + y * y) / (2.0 * sd * sd))
        h[h < np.finfo(h.dtype).eps * h.max()] = 0
        win = h / h.sum()
        if scale > 1:
            ref = convolve2d(ref, np.rot90(win, 2), mode="valid")[::2, ::2]
            dist = convolve2d(dist, np.rot90(win, 2), mode="valid")[::2, ::2]
        mu1 = convolve2d(ref, np.rot90(win, 2), mode="valid")
        mu2 = convolve2d(dist, np.rot90(win, 2), mode="valid")
        mu1_sq, mu2_sq, mu1_mu2 = mu1 * mu1, mu2 * mu2, mu1 * mu2
        sigma1_sq = convolve2d(ref * ref, np.rot90(win, 2), mode="valid") - mu1_sq
        sigma2_sq = convolve2d(dist * dist, np.rot90(win, 2), mode="valid") - mu2_sq
        sigma12 = convolve2d(ref * dist, np.rot90(win, 2), mode="valid") - mu1_mu2
        sigma1_sq[sigma1_sq < 0] = 0
        sigma2_sq[sigma2_sq < 0] = 0
        g = sigma12 / (sigma1_sq + eps)
        sv_sq = sigma2_sq - g * sigma12
        g[sigma1_sq < eps] = 0
        sv_sq[sigma1_sq < eps] = sigma2_sq[sigma1_sq < eps]
        sigma1_sq[sigma1_sq < eps] = 0
        g[sigma2_sq < eps] = 0
        sv_sq[sigma2_sq < eps] = 0
        sv_sq[g < 0] = sigma2_sq[g < 0]
        g[g < 0] = 0
        sv_sq[sv_sq <= eps] = eps
        num += np.sum(np.log10(1 + g * g * sigma1_sq / (sv_sq * sigma_nsq)))
        den += np.sum(np.log10(1 + sigma1_sq / sigma_nsq))
    vifp = num / den
    return 1.0 if np.isnan(vifp) else vifp


def VIF(F, A, B):
    return compare_viff(A, F) + compare_viff(B, F)


def _qabf_array(img):
    h1 = np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]]).astype(np.float32)
    h3 = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]).astype(np.float32)
    sx, sy = convolve2d(img, h3, mode="same"), convolve2d(img, h1, mode="same")
    g = np.sqrt(np.multiply(sx, sx) + np.multiply(sy, sy))
    a = np.zeros_like(img)
    a[sx == 0] = math.pi / 2
    a[sx != 0] = np.arctan(sy[sx != 0] / sx[sx != 0])
    return g, a


def _qabf_q(aA, gA, aF, gF):
    Tg, kg, Dg, Ta, ka, Da = 0.9994, -15, 0.5, 0.9879, -22, 0.8
    GAF = np.zeros_like(aA)
    GAF[gA > gF] = gF[gA > gF] / gA[gA > gF]
    GAF[gA == gF] = gF[gA == gF]
    GAF[gA < gF] = gA[gA < gF] / gF[gA < gF]
    AAF = 1 - np.abs(aA - aF) / (math.pi / 2)
    return Tg / (1 + np.exp(kg * (GAF - Dg))) * (Ta / (1 + np.exp(ka * (AAF - Da))))


def Qabf(F, A, B):
    gA, aA = _qabf_array(A)
    gB, aB = _qabf_array(B)
    gF, aF = _qabf_array(F)
    QAF, QBF = _qabf_q(aA, gA, aF, gF), _qabf_q(aB, gB, aF, gF)
    return np.sum(np.multiply(QAF, gA) + np.multiply(QBF, gB)) / np.sum(gA + gB)


def SSIM(F, A, B):
    return ssim(F, A, data_range=255) + ssim(F, B, data_range=255)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fused", required=True)
    parser.add_argument("--ir", required=True)
    parser.add_argument("--vis", required=True)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    names = ["EN", "SD", "SF", "AG", "MI", "SCD", "VIF", "Qabf", "SSIM"]
    total, count = np.zeros(len(names)), 0
    for name in sorted(os.listdir(args.ir)):
        stem = name.rsplit(".", 1)[0]
        ir = image_read_gray(os.path.join(args.ir, name))
        vi = image_read_gray(os.path.join(args.vis, name))
        fi = image_read_gray(os.path.join(args.fused, stem + ".png"))
        total += np.array([EN(fi), SD(fi), SF(fi), AG(fi), MI(fi, ir, vi), SCD(fi, ir, vi), VIF(fi, ir, vi),
                           Qabf(fi, ir, vi), SSIM(fi, ir, vi)])
        count += 1
    print(" ".join(f"{n}={v:.4f}" for n, v in zip(names, total / count)))
    print(f"scored {count} images in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
