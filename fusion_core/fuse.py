"""Fuse folders of pairs with any registered method; colour visible images are fused on Y."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from tqdm import tqdm

from . import data
from .memory import keep_freed_memory  # noqa: F401  (where fuse's callers found it)
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
