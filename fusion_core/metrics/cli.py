"""``python -m fusion_core score``: score every fused image of a folder against its sources, matched by stem.

The fused folder drives the run: each fused image needs its two sources (else an error naming it), while a
source pair without a fused image is skipped and counted (:func:`fusion_core.data.fused_triples`). Pairs are
scored in parallel processes with one torch thread each (forked after the imports, so a worker starts in
milliseconds); the rows come back in stem order, so the output does not depend on ``jobs``. The command
(``fusion_core.cli.cmd_score``) finds the images and starts decoding them in another process before this module,
and torch with it, is imported. Also ``python -m fusion_core conventions``.
"""
from __future__ import annotations

import csv
import math
import os
import time
from pathlib import Path

import numpy as np
import torch

from .. import data
from ..io import atomic_write
from .conventions import ALIASES, CONVENTIONS, get_convention

# Per convention: the toolbox it follows and, in one line, how it differs (the `conventions` table).
SUMMARY = {
    "vifb": ("VIFB benchmark, MATLAB", "colour per RGB channel, averaged; MI in nats, min-max normalised; SSIM summed"),
    "tang": ("Tang, Evaluation-for-Image-Fusion, MATLAB",
             "uint8 grey; MI in bits summed; VIF = VIFp sum; CC with the toolbox's mean bug"),
    "seafusion": ("SeAFusion's older copy of Tang's code", "SD, VIF on uint8; SF, Qabf on [0, 1]; SSIM is MEF-SSIM"),
    "li": ("DenseFuse/NestFuse analysis_Reference.m", "[0, 1] images; MI = 2·EN (the MATLAB bug), MI_correct beside"),
    "didfuse": ("DIDFuse paper, Table V, calibrated on its TSIFVS column",
                "uint8 grey; SD centred per column; SF with a zero-padded 2-tap difference, 1/MN; VIF = VIFF"),
    "didfuse_spec": ("DIDFuse Table V as spec_001 reads it", "EN SD SF(1/MN) VIF(VIFp IR + VIS) AG SCD on uint8 grey levels"),
    "msfam": ("MSFAM paper", "NestFuse MI (= 2·EN) and correct MI; CC summed (can exceed 1); VIF, MS-SSIM averaged"),
    "amfe": ("AMFE paper", "MI summed in bits; CC averaged; VIFF; Qabf without the equality quirk"),
    "savf": ("SAVF paper", "no-reference sharpness CPBD and JNB; VIFp and SSIM averaged; MI summed in bits"),
}


def convention_table() -> str:
    """One line per convention: name, toolbox, default columns (+ optional ones), how it differs."""
    aliases = {}
    for alias, target in ALIASES.items():
        aliases.setdefault(target, []).append(alias)
    rows = [("convention", "toolbox", "columns (default; + optional)", "how it differs")]
    for name, conv in CONVENTIONS.items():
        toolbox, differs = SUMMARY.get(name, (conv.description.split(",")[0], conv.description.split(". ")[0]))
        extra = [c for c in conv.columns if c not in conv.default_columns]
        columns = " ".join(conv.default_columns) + (f"; + {' '.join(extra)}" if extra else "")
        rows.append((name, toolbox, columns, differs))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = ["  ".join([*(cell.ljust(w) for cell, w in zip(row[:3], widths)), row[3]]) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in [*widths, len(rows[0][3])]))
    lines.append("\naliases: " + "; ".join(f"{', '.join(names)} = {target}" for target, names in aliases.items()))
    lines.append("Every entry, with the reason for each quirk: docs/metric_conventions.md; "
                 "any other registered metric can be asked for with --metrics.")
    return "\n".join(lines)


# --------------------------------------------------------------------------- scoring

def _read(path: Path, pixels=data.read_pixels) -> torch.Tensor:
    """The image as stored (8-bit: uint8 levels, which :func:`score` reads as levels / 255), N×C×H×W;
    ``pixels`` decodes (:func:`data.read_pixels`, or a :func:`data.decoding_ahead` that already has)."""
    array = pixels(path)
    if array.ndim == 3 and array.strides[-1] == 0:  # one channel seen three times (DecodedAhead): keep it so
        return torch.from_numpy(np.array(array[..., :1])).permute(2, 0, 1)[None].expand(-1, 3, -1, -1)
    t = torch.from_numpy(array)
    return t[None, None] if t.dim() == 2 else t.permute(2, 0, 1)[None]


def score_triple(triple, metrics=None, convention: str = "tang", device: str = "cpu",
                 pixels=data.read_pixels) -> dict:
    """One row: ``image`` (the stem) and one float per column."""
    from .score import score

    stem, f_path, ir_path, vis_path = triple
    f, a, b = (_read(path, pixels) for path in (f_path, ir_path, vis_path))
    for path, img in ((ir_path, a), (vis_path, b)):
        if img.shape[-2:] != f.shape[-2:]:
            raise data.DataError(
                f"{path}: size {img.shape[-1]}x{img.shape[-2]} does not match the fused image {f_path} "
                f"({f.shape[-1]}x{f.shape[-2]})")
    values = score(f, a, b, metrics, convention, device=device)
    return {"image": stem, **{k: float(v[0]) for k, v in values.items()}}


_worker_pixels = data.read_pixels  # a worker's decoder, set by _start_worker


def _start_worker(pixels) -> None:
    global _worker_pixels
    torch.set_num_threads(1)
    _worker_pixels = pixels


def _score_task(task):
    triple, metrics, convention = task
    return score_triple(triple, metrics, convention, pixels=_worker_pixels)


def default_jobs() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def score_triples(triples, metrics=None, convention: str = "tang", device: str = "cpu",
                  jobs: int | None = None, pixels=data.read_pixels) -> list[dict]:
    """Rows for ``triples`` (from :func:`data.fused_triples`) in their order; on the CPU, ``jobs`` forked
    processes (default one per CPU) with one torch thread each score the pairs (``jobs`` = 1: this process, one
    thread). ``pixels`` decodes the images (see :func:`_read`)."""
    get_convention(convention)  # unknown names fail here, before any work
    from . import score  # noqa: F401  (import the metrics once, before forking)

    jobs = min(jobs or default_jobs(), len(triples))
    if device != "cpu":
        return [score_triple(t, metrics, convention, device, pixels) for t in triples]
    if jobs <= 1 or not hasattr(os, "fork"):
        # One thread here too: the metrics' small ops gain nothing from more, and OpenMP workers that lose
        # their core to another job spin (measured: 42 tno42 pairs, 2 threads on a busy 2-core machine, 14× slower).
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return [score_triple(t, metrics, convention, device, pixels) for t in triples]
        finally:
            torch.set_num_threads(threads)
    import multiprocessing

    # Largest images first, so the last pair to finish is a small one; rows are put back in stem order.
    order = sorted(range(len(triples)), key=lambda i: -os.path.getsize(triples[i][1]))
    # Forked: the workers get ``pixels`` as it is, unpickled.
    with multiprocessing.get_context("fork").Pool(jobs, initializer=_start_worker, initargs=(pixels,)) as pool:
        rows = pool.map(_score_task, [(triples[i], metrics, convention) for i in order], chunksize=1)
    by_index = dict(zip(order, rows))
    return [by_index[i] for i in range(len(triples))]


def summary(rows: list[dict]) -> dict[str, tuple[float, float, int]]:
    """Column → (mean, sample std, count) over the finite values (NaN rows, e.g. SCD of a flat image, left out)."""
    out = {}
    for column in rows[0] if rows else ():
        if column == "image":
            continue
        values = [r[column] for r in rows if math.isfinite(r[column])]
        n = len(values)
        mean = sum(values) / n if n else math.nan
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else math.nan
        out[column] = (mean, std, n)
    return out


def write_rows(path, rows: list[dict]) -> Path:
    """The per-image CSV (``image`` then one column per metric, full precision), written atomically."""
    with atomic_write(path, "w") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: (v if isinstance(v, str) else repr(v)) for k, v in row.items()} for row in rows)
    return Path(path)


def score_command(args, triples, skipped: int, decoded: data.DecodedAhead) -> int:
    """CLI entry after ``fusion_core.cli`` has checked the arguments and found ``triples`` (``skipped`` source pairs
    without a fused image), with the images decoding ahead: score, print mean ± std per column, and write the
    per-image CSV when ``--out`` is given."""
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    if args.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: CUDA is not available on this machine")
    conv = get_convention(args.convention)
    from ._core import METRICS

    unknown = [name for name in metrics or () if conv.column(name).metric not in METRICS]
    if unknown:  # before any work, with the names that exist
        raise ValueError(f"unknown metric {', '.join(map(repr, unknown))} for convention '{conv.name}'; its columns: "
                         f"{', '.join(conv.columns)}; other registered metrics: {', '.join(sorted(METRICS))}")
    import gc

    from . import score as _  # noqa: F401  (the metrics, imported before the workers are forked)
    from ..memory import keep_freed_memory

    keep_freed_memory()  # the metrics allocate and free many image-sized planes: reuse them (see there)
    # Everything imported so far (torch: ~10^5 objects) goes to the collector's permanent generation, as the gc docs
    # advise before fork(): the workers' collections and the interpreter's final one no longer walk it, and the
    # workers do not copy its pages on write. Measured: exit 0.33 → 0.12 s after scoring 42 tno42 pairs. Here in the
    # command, not in score_triples: a library call must not freeze its caller's objects.
    gc.freeze()
    decoded.stop()  # the imports are done: the workers get every CPU and decode whatever is left themselves
    start = time.perf_counter()
    rows = score_triples(triples, metrics, args.convention, args.device, args.jobs, decoded)
    if args.out:
        write_rows(args.out, rows)
    skip_note = f"; {skipped} source pair{'s' * (skipped != 1)} without a fused image skipped" if skipped else ""
    print(f"scored {len(rows)} images with convention '{args.convention}' in {time.perf_counter() - start:.1f} s"
          f"{skip_note}" + (f" -> {args.out}" if args.out else ""))
    for name, (mean, std, n) in summary(rows).items():
        count = f"  (n = {n})" if n != len(rows) else ""
        print(f"  {name:12s} {mean:10.4f} ± {std:.4f}{count}")
    return 0
