"""Validation against VIFB's published fused images (``<reference>/vifb/fused/<pair>_<METHOD>.jpg``).

VIFB (Zhang et al., "VIFB: a visible and infrared image fusion benchmark", CVPRW 2020) fused its 21
colour pairs in MATLAB and stored 8-bit JPEGs. :func:`fuse_like_vifb` reproduces its colour
handling per method (:data:`fusion_core.classical.VIFB_RGB`), :func:`agreement` compares our 8-bit
RGB result with theirs (SSIM averaged over the RGB channels, PSNR over all of them), and
:func:`jpeg_ceiling` says how much agreement the JPEG storage alone leaves.

Two properties of VIFB's files, measured here rather than assumed:

- every file is a quality-75 JPEG (:func:`jpeg_quality` reads the quantisation tables: the IJG
  tables at quality 75, MATLAB ``imwrite``'s default), and PIL's encoder at that quality decodes to
  the same pixels as MATLAB's (ADF, TIF: JPEG(ours) equals VIFB's file value for value), so our
  output stored like VIFB's can be compared with, and scored like, VIFB's file;
- VIFB's GFF driver did not fuse the pairs whose IR file is single-channel (:func:`vifb_fused`,
  :func:`vifb_gff_unfused`): those four files are excluded from GFF's agreement.
"""
from __future__ import annotations

import functools
import io as _io
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from .. import data
from ._common import VIFB_RGB
from .msvd import _unblocks, fuse_bands, msvd

# our method name -> VIFB's file suffix, for every method both have
VIFB_NAMES = {"adf": "ADF", "cbf": "CBF", "gff": "GFF", "gtf": "GTF", "msvd": "MSVD", "tif": "TIF"}
JPEG_QUALITY = 75  # MATLAB imwrite's default
# VIFB's run_GFF wrote both inputs to quality-75 JPEGs and read them back before fusing
REENCODED_INPUTS = {"gff"}


def vifb_fused(method: str, pair: data.Pair) -> bool:
    """False where VIFB's stored image for ``method`` is not a fusion of ``pair``.

    VIFB's ``run_GFF`` writes the visible image and then the IR image as JPEGs and reads them back
    with the GFF authors' ``load_images``, which sizes its array from the first (colour) file and
    stores a single-channel second file with ``I(:,:,i) = im`` — in a 4-D array that is the visible
    image's green plane. GFF then "fuses" the visible image (green replaced by IR) with an all-zero
    image, which returns it unchanged. This happens exactly when the IR file has one channel
    (manWalking, running, walking2, walkingnight in vifb21); :func:`vifb_gff_unfused` rebuilds
    those files.
    """
    return not (method == "gff" and data.read_array(pair.ir).ndim == 2)


def vifb_gff_unfused(pair: data.Pair) -> np.ndarray:
    """What VIFB's GFF driver returned for a single-channel IR file (uint8 H×W×3): the visible
    image through a quality-75 JPEG round trip with its green plane replaced by the IR image through
    a grey quality-75 JPEG round trip (no fusion; see :func:`vifb_fused`)."""
    ir, vis = load_rgb_pair(pair)
    out = jpeg_roundtrip(_to_rgb8(vis))
    out[..., 1] = jpeg_roundtrip(_to_rgb8(ir)[..., 0])  # MATLAB writes a 2-D image as a grey JPEG
    return out


def reference_root() -> Path:
    """``<data root>/../reference/vifb`` (the shared reference folder next to the data)."""
    root = data.data_root().parent / "reference" / "vifb"
    if not root.is_dir():
        raise data.DataError(f"{root}: VIFB reference folder not found")
    return root


def reference_path(stem: str, method: str) -> Path:
    return reference_root() / "fused" / f"{stem}_{VIFB_NAMES[method]}.jpg"


def read_rgb8(path) -> np.ndarray:
    """An image as uint8 H×W×3 (grey repeated)."""
    array = data.read_array(path)
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    return np.round(array * 255.0).astype(np.uint8)


def load_rgb_pair(pair: data.Pair) -> tuple[torch.Tensor, torch.Tensor]:
    """(IR grey 1×1×H×W, visible RGB 1×3×H×W), float32 in [0, 1]."""
    ir = data.read_grey(pair.ir)
    vis = torch.from_numpy(read_rgb8(pair.vis).transpose(2, 0, 1).astype(np.float32) / 255.0)[None]
    return ir, vis


def crop(ir: torch.Tensor, vis: torch.Tensor, size: int | None) -> tuple[torch.Tensor, torch.Tensor, tuple]:
    """Top-left ``size``×``size`` crop (None: whole image) and the crop window for references."""
    if size is None:
        return ir, vis, (slice(None), slice(None))
    window = (slice(0, size), slice(0, size))
    return ir[..., window[0], window[1]], vis[..., window[0], window[1]], window


def _to_rgb8(image: torch.Tensor) -> np.ndarray:
    return np.round(image[0].double().numpy().transpose(1, 2, 0) * 255.0).astype(np.uint8)


def _reencoded(image: torch.Tensor) -> torch.Tensor:
    """A 1×C×H×W [0, 1] image through an 8-bit RGB quality-75 JPEG round trip; one channel is
    encoded as three equal ones (as VIFB's three-channel IR files are) and returned as one."""
    pixels = _to_rgb8(image)
    rgb = jpeg_roundtrip(np.repeat(pixels, 3, axis=2) if pixels.shape[2] == 1 else pixels)
    out = rgb[..., :1] if image.shape[1] == 1 else rgb
    return torch.from_numpy(out.transpose(2, 0, 1).astype(np.float64) / 255.0)[None]


def fuse_like_vifb(method: str, ir: torch.Tensor, vis_rgb: torch.Tensor) -> np.ndarray:
    """Our method run with VIFB's colour handling; uint8 H×W×3 like VIFB's ``uint8(...)`` output."""
    if method in REENCODED_INPUTS:
        ir, vis_rgb = _reencoded(ir), _reencoded(vis_rgb)
    with torch.no_grad():
        fused = VIFB_RGB[method](ir.double(), vis_rgb.double())
    rgb = fused[0].numpy().transpose(1, 2, 0) * 255.0
    return np.clip(np.floor(rgb + 0.5), 0, 255).astype(np.uint8)  # MATLAB uint8(): round half up, saturate


def agreement(ours: np.ndarray, theirs: np.ndarray) -> dict[str, float]:
    """SSIM (Gaussian-free 7×7 skimage default, mean over RGB) and PSNR (dB) of two uint8 RGB images."""
    if ours.shape != theirs.shape:
        raise ValueError(f"shapes differ: ours {ours.shape} vs theirs {theirs.shape}")
    with np.errstate(divide="ignore"):  # identical images: PSNR = inf
        psnr = float(peak_signal_noise_ratio(theirs, ours, data_range=255))
    return {"ssim": float(structural_similarity(ours, theirs, channel_axis=2, data_range=255)), "psnr": psnr}


def jpeg_roundtrip(image: np.ndarray, quality: int = JPEG_QUALITY) -> np.ndarray:
    """uint8 H×W×3 (or H×W grey, kept grey) through an in-memory JPEG at ``quality`` (PIL, 4:2:0)."""
    buffer = _io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    return np.array(Image.open(buffer).convert("RGB" if image.ndim == 3 else "L"))


@functools.lru_cache(maxsize=None)
def _quantization(quality: int) -> dict:
    buffer = _io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    return Image.open(buffer).quantization


def jpeg_quality(path) -> int | None:
    """The IJG quality (1–100) whose quantisation tables the JPEG file uses; None if none matches."""
    with Image.open(path) as image:
        tables = image.quantization
    return next((q for q in range(100, 0, -1) if _quantization(q) == tables), None)


def jpeg_agreement(ours: np.ndarray, theirs: np.ndarray) -> dict[str, float]:
    """Ours stored the way VIFB stored its outputs (quality-75 JPEG) against VIFB's file.

    ``px_equal`` = 1 means our method reproduces VIFB's image exactly, JPEG storage included.
    """
    stored = jpeg_roundtrip(ours)
    return {"ssim_jpeg": agreement(stored, theirs)["ssim"], "px_equal": float(np.mean(stored == theirs))}


def jpeg_ceiling(theirs: np.ndarray, ours: np.ndarray | None = None) -> dict[str, float]:
    """Agreement lost to JPEG storage alone.

    ``ref_vs_reencoded``: VIFB's JPEG against itself re-encoded at quality 75 (the ceiling the brief
    asks for; a second JPEG pass changes little, so this is an optimistic bound). ``ours_vs_jpeg``:
    our exact result against its own quality-75 JPEG — what a perfect reimplementation stored the
    way VIFB stored its outputs would score against the exact image (the realistic ceiling).
    """
    out = {f"ref_vs_reencoded_{k}": v for k, v in agreement(jpeg_roundtrip(theirs), theirs).items()}
    if ours is not None:
        out.update({f"ours_vs_jpeg_{k}": v for k, v in agreement(jpeg_roundtrip(ours), ours).items()})
    return out


def msvd_signs_reproducing_vifb(pair: data.Pair, top: int = 3) -> dict:
    """Singular-vector signs that make our MSVD reproduce VIFB's file (a measurement, not a method).

    Per RGB channel, the 8 flips of U's columns 2–4 on the visible side relative to the IR side
    (flipping both sides changes nothing) are ranked by how close that channel comes to VIFB's;
    then the combinations of each channel's ``top`` best are tried, best-ranked first, and the one
    whose quality-75 JPEG matches most of VIFB's stored values is kept. Returns
    ``{"flips": [[±1]*4]*3, "px_equal": fraction}``; all +1 means LAPACK's signs are MATLAB's.
    """
    import itertools

    ir, vis = load_rgb_pair(pair)
    theirs = read_rgb8(reference_path(pair.stem, "msvd"))
    grey = ir[0, 0].double().numpy()
    if grey.shape[0] % 2 or grey.shape[1] % 2:
        raise ValueError(f"{pair.stem}: odd size {grey.shape}; VIFB resized these, no file comparison")
    t_ir, u_ir = msvd(grey)
    flips = [np.array((1.0,) + f) for f in itertools.product((1.0, -1.0), repeat=3)]
    ranked = []  # per channel: [(flip, 8-bit channel)] best first
    for c in range(3):
        t_vis, u_vis = msvd(vis[0, c].double().numpy())
        fused = [np.clip(np.floor(_unblocks(fuse_bands(t_ir, u_ir, t_vis * f[:, None], u_vis * f), grey.shape)
                                  * 255.0 + 0.5), 0, 255) for f in flips]
        order = np.argsort([np.mean((f - theirs[..., c]) ** 2) for f in fused], kind="stable")
        ranked.append([(flips[k], fused[k].astype(np.uint8)) for k in order[:top]])
    best = None
    for choice in sorted(itertools.product(range(top), repeat=3), key=sum):
        rgb = np.stack([ranked[c][k][1] for c, k in enumerate(choice)], axis=2)
        px = jpeg_agreement(rgb, theirs)["px_equal"]
        if best is None or px > best["px_equal"]:
            flips_used = [ranked[c][k][0].astype(int).tolist() for c, k in enumerate(choice)]
            best = {"flips": flips_used, "px_equal": px}
        if px == 1.0:
            break
    return best


def vifb_metric(stem: str, method: str, metric: str) -> float:
    """VIFB's own MATLAB value of ``metric`` (our column name, e.g. "Qabf") for its fused image."""
    from ..metrics.conventions import VIFB_SUFFIX

    suffix = {ours: theirs for theirs, ours in VIFB_SUFFIX.items()}[metric]
    path = reference_root() / "metrics_single" / f"{stem}_{VIFB_NAMES[method]}_{suffix}.txt"
    try:
        return float(path.read_text().strip())
    except (OSError, ValueError) as exc:
        raise data.DataError(f"{path}: cannot read the reference value ({exc})") from None
