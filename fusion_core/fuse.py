"""Fuse folders of pairs with any registered method; colour visible images are fused on Y."""
from __future__ import annotations

import ctypes
import ctypes.util
from pathlib import Path
from typing import Sequence

import torch
from tqdm import tqdm

from . import data
from .methods import Fuser, build_method


def fuse_images(fuser: Fuser, images: data.PairImages, device: str = "cpu") -> torch.Tensor:
    """Fuse one decoded pair; returns the fused Y (1×1×H×W, CPU, clamped to [0, 1])."""
    with torch.inference_mode():
        fused = fuser(images.ir.to(device), images.vis.to(device))
    if fused.shape != images.ir.shape:
        raise RuntimeError(
            f"{images.pair.name}: method returned shape {tuple(fused.shape)}, expected {tuple(images.ir.shape)}"
        )
    return fused.detach().float().cpu().clamp(0, 1)


def keep_freed_memory() -> bool:
    """Let glibc keep freed memory for reuse instead of returning it to the kernel (a process-wide setting).

    A learned method at 640×480 allocates and frees hundreds of 20–80 MB feature tensors per pair. glibc
    serves each with a fresh ``mmap`` (anything above 32 MB always is) and unmaps it on free, so every
    tensor is zero-filled page by page again: DIDFuse spent as much kernel time in page faults (4 M minor
    faults, sys ≈ user) as in arithmetic. With mmap off and trimming raised, the heap is reused and the
    faults vanish. Returns False where the C library is not glibc (nothing changed). Called by the
    ``fuse`` command; a long-lived process that fuses little need not call it.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_max = -1, -4
    return bool(mallopt(m_mmap_max, 0)) and bool(mallopt(m_trim_threshold, 1 << 30))


def fuse_pairs(
    method: str,
    pairs: Sequence[data.Pair],
    out_dir: str | Path,
    weights=None,
    rule=None,
    device: str = "cpu",
    progress: bool = True,
) -> list[Path]:
    """Fuse every pair and write ``<out_dir>/<stem>.png``.

    All pairs are validated from their headers before anything is fused or written, so bad input
    fails with one error naming the file and leaves ``out_dir`` untouched. A learned method without
    ``weights`` loads its documented default (:func:`fusion_core.methods.resolve_weights`).
    """
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: no CUDA device is available on this machine")
    for pair in pairs:
        data.check_pair(pair)
    fuser = build_method(method, weights=weights, rule=rule, device=device)
    out_dir = Path(out_dir)
    written = []
    for pair in tqdm(pairs, desc=f"fuse {method}", unit="pair", disable=not progress):
        images = data.load_pair(pair)
        fused = fuse_images(fuser, images, device)
        written.append(data.write_image(out_dir / f"{pair.stem}.png", fused, images.cbcr))
    return written
