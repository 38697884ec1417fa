"""Metric speed: pairs per second for each metric and for the core set, on tno42-sized pairs (768×576).

    python benchmarks/metrics_speed.py [--device cpu|cuda] [--threads N] [--repeats 3] [--pairs 3]

Uses the first 768×576 pairs of ``tno42`` (real data) with a fused image = their mean (8-bit), so every
metric sees realistic statistics. The core set is EN SD SF AG MI SCD VIF Qabf SSIM (the CDDFuse
evaluator's; about 2.1 s per pair on the project's 2-core machine, VIF alone 1.8 s); it is scored with the
``didfuse`` convention (VIF = VIFp sum, SF 1/MN, MATLAB AG) and the registry defaults for MI/Qabf/SSIM.
Not a test: numbers depend on the machine and its load; the output says which.
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from fusion_core import data
from fusion_core.metrics import METRICS, score

CORE = ["EN", "SD", "SF", "AG", "MI", "SCD", "VIF", "Qabf", "SSIM"]
CDDFUSE_CORE_S_PER_PAIR = 2.1  # stated in the issue for this 2-core machine


def load_pairs(count: int, device: str):
    pairs = [p for p in data.list_pairs("tno42") if data.image_size(p.ir) == (576, 768)][:count]
    if not pairs:
        raise SystemExit("no 768×576 pair in tno42")
    out = []
    for p in pairs:
        ir = torch.from_numpy(data.to_grey(data.read_array(p.ir)))[None, None]
        vis = torch.from_numpy(data.to_grey(data.read_array(p.vis)))[None, None]
        fused = torch.round((ir + vis) / 2 * 255) / 255
        out.append(tuple(t.to(device) for t in (fused, ir, vis)))
    return [p.name for p in pairs], out


def time_columns(columns, images, device, repeats):
    """Best-of-``repeats`` seconds per pair for scoring ``columns`` on every pair."""
    best = float("inf")
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for fused, ir, vis in images:
            score(fused, ir, vis, columns, "didfuse", device=device)
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, (time.perf_counter() - start) / len(images))
    return best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--metrics", default=None, help="comma-separated subset of the per-metric timings")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    names, images = load_pairs(args.pairs, args.device)
    print(f"device={args.device} torch_threads={torch.get_num_threads()} cpus={os.cpu_count()} "
          f"load={os.getloadavg()[0]:.1f} python={platform.python_version()} torch={torch.__version__}")
    print(f"pairs: {', '.join(names)} (768×576)")
    time_columns(CORE[:1], images[:1], args.device, 1)  # warm-up
    core = time_columns(CORE, images, args.device, args.repeats)
    print(f"core set ({' '.join(CORE)}): {core:.3f} s/pair = {1 / core:.2f} pairs/s; "
          f"speed-up vs CDDFuse evaluator (2.1 s/pair): {CDDFUSE_CORE_S_PER_PAIR / core:.1f}x")
    wanted = args.metrics.split(",") if args.metrics else list(METRICS)
    print(f"{'metric':10s} {'s/pair':>8s} {'pairs/s':>8s}")
    for name in wanted:
        seconds = time_columns([name], images, args.device, args.repeats)
        print(f"{name:10s} {seconds:8.3f} {1 / seconds:8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
