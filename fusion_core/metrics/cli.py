"""``python -m fusion_core score``: score every fused image of a folder against its sources, matched by stem."""
from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import torch

from .. import data
from ..io import write_csv
from .conventions import get_convention
from .score import score


def matched_triples(fused_dir, ir_dir, vis_dir) -> list[tuple[str, Path, Path, Path]]:
    """(stem, fused, ir, vis) for every fused image; every stem must exist in all three folders."""
    fused, ir, vis = data.image_files(fused_dir), data.image_files(ir_dir), data.image_files(vis_dir)
    for stem in sorted(set(fused) | set(ir) | set(vis)):
        present = {"fused": fused, "ir": ir, "vis": vis}
        have = next(d[stem] for d in present.values() if stem in d)
        lacking = [Path(f).as_posix() for f, d in zip((fused_dir, ir_dir, vis_dir), present.values()) if stem not in d]
        if lacking:
            raise data.DataError(f"{have}: no partner with stem '{stem}' in {', '.join(lacking)}")
    return [(stem, fused[stem], ir[stem], vis[stem]) for stem in sorted(fused, key=data.natural_key)]


def _read(path: Path) -> torch.Tensor:
    array = data.read_array(path)
    t = torch.from_numpy(array)
    return t[None, None] if t.dim() == 2 else t.permute(2, 0, 1)[None]


def score_folders(fused_dir, ir_dir, vis_dir, metrics=None, convention="tang", device="cpu") -> pd.DataFrame:
    """One row per image (column ``image`` = stem) with every requested column."""
    conv = get_convention(convention)
    rows = []
    for stem, f_path, ir_path, vis_path in matched_triples(fused_dir, ir_dir, vis_dir):
        f, a, b = _read(f_path), _read(ir_path), _read(vis_path)
        for path, img in ((ir_path, a), (vis_path, b)):
            if img.shape[-2:] != f.shape[-2:]:
                raise data.DataError(
                    f"{path}: size {img.shape[-1]}x{img.shape[-2]} does not match the fused image {f_path} "
                    f"({f.shape[-1]}x{f.shape[-2]})")
        values = score(f, a, b, metrics, conv.name, device=device)
        rows.append({"image": stem, **{k: float(v[0]) for k, v in values.items()}})
    return pd.DataFrame(rows)


def score_command(args) -> int:
    """CLI entry: write the per-image CSV atomically, print the means."""
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    if args.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: CUDA is not available on this machine")
    start = time.perf_counter()
    table = score_folders(args.fused, args.ir, args.vis, metrics, args.convention, args.device)
    write_csv(args.out, table)
    means = table.drop(columns="image").mean()
    print(f"scored {len(table)} images with convention '{args.convention}' in {time.perf_counter() - start:.1f} s "
          f"-> {args.out}")
    for name, value in means.items():
        print(f"  {name:12s} {value:.4f}")
    return 0
