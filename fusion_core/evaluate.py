"""Fuse a list of pairs with a method and score every fused image: the per-image raw results of every table.

One row per pair: ``dataset, stem, <metric columns...>``. The fused image is scored as it is written to
disk (8-bit), because every paper computed its metrics on saved uint8 images.

    >>> from fusion_core import data, evaluate
    >>> pairs = data.list_pairs("tno40")[:2]
    >>> raw = evaluate.fuse_and_score("average", pairs, convention="didfuse")
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd
import torch
from tqdm import tqdm

from . import data
from .fuse import fuse_images
from .methods import build_method


def crop_images(images: data.PairImages, crop: tuple[int, int] | None) -> data.PairImages:
    """The top-left ``(height, width)`` window of a pair (used by the quick profile); None keeps it whole."""
    if crop is None:
        return images
    h, w = crop
    cut = lambda t: None if t is None else t[..., :h, :w].contiguous()  # noqa: E731
    return data.PairImages(images.pair, cut(images.ir), cut(images.vis), cut(images.cbcr))


def quantise(image: torch.Tensor) -> torch.Tensor:
    """[0, 1] → the 8-bit grid, as ``data.write_image`` stores it."""
    return torch.round(image.clamp(0, 1) * 255.0) / 255.0


def fuse_and_score(
    method: str,
    pairs: Sequence[data.Pair],
    convention: str,
    metrics: Sequence[str] | None = None,
    weights=None,
    rule: str | None = None,
    device: str = "cpu",
    fused_dir: str | Path | None = None,
    crop: tuple[int, int] | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Fuse each pair with ``method`` and score it under ``convention``; optionally keep the PNGs."""
    from .metrics import score

    for pair in pairs:
        data.check_pair(pair)
    fuser = build_method(method, weights=weights, rule=rule, device=device)
    rows = []
    label = method if rule is None else f"{method}/{rule}"
    for pair in tqdm(pairs, desc=f"fuse+score {label}", unit="pair", disable=not progress):
        images = crop_images(data.load_pair(pair), crop)
        fused = quantise(fuse_images(fuser, images, device))
        if fused_dir is not None:
            data.write_image(Path(fused_dir) / f"{pair.stem}.png", fused, images.cbcr)
        values = score(fused, images.ir, images.vis, metrics=metrics, convention=convention)
        rows.append({"dataset": pair.dataset, "stem": pair.stem, **{k: float(v[0]) for k, v in values.items()}})
    return pd.DataFrame(rows)


def score_files(fused_paths: Sequence[str | Path], pairs: Sequence[data.Pair], convention: str,
                metrics: Sequence[str] | None = None, progress: bool = True) -> pd.DataFrame:
    """Score already-fused images (e.g. an author's released outputs) against their pairs, one row each."""
    from .metrics import score

    if len(fused_paths) != len(pairs):
        raise ValueError(f"{len(fused_paths)} fused images for {len(pairs)} pairs")
    rows = []
    for path, pair in tqdm(list(zip(fused_paths, pairs)), desc="score", unit="image", disable=not progress):
        images = data.load_pair(pair)
        fused = data.read_grey(path)
        if fused.shape != images.ir.shape:
            raise data.DataError(f"{path}: size {tuple(fused.shape[-2:])} differs from its pair {pair.name} "
                                 f"{tuple(images.ir.shape[-2:])}")
        values = score(fused, images.ir, images.vis, metrics=metrics, convention=convention)
        rows.append({"dataset": pair.dataset, "stem": pair.stem, **{k: float(v[0]) for k, v in values.items()}})
    return pd.DataFrame(rows)
