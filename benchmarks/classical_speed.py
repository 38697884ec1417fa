"""Classical-method speed: seconds per 640×480 pair for every registered classical method, on CPU.

    python benchmarks/classical_speed.py [--repeats 3] [--threads N] [--out FILE.csv]

The pair is VIFB's ``labMan`` (640×480, real data), fused on Y through the standard interface
(``build_method(name)(ir, vis)``, 1×1×480×640 float32) — what ``python -m fusion_core fuse`` runs.
Each method runs once to warm up, then ``--repeats`` times; the median is reported. For reference,
VIFB (Zhang et al., CVPRW 2020, Table 3) lists the MATLAB run times of its methods on the same
benchmark; GTF and CBF are among its slowest classical methods. Not a test: the numbers depend on the
machine and its load; the output says which.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import pandas as pd
import torch

from fusion_core import data, io
from fusion_core.classical import classical_names
from fusion_core.methods import build_method, method_names


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--methods", help="comma-separated subset (default: all classical methods)")
    parser.add_argument("--out", help="also write the table as CSV (atomically)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    pair = next(p for p in data.list_pairs("vifb21") if p.stem == "labMan")
    images = data.load_pair(pair)
    if images.ir.shape[-2:] != (480, 640):
        raise SystemExit(f"{pair.ir}: expected 640×480, got {tuple(images.ir.shape[-2:])}")
    method_names()
    names = args.methods.split(",") if args.methods else classical_names()
    rows = []
    for name in names:
        fuse = build_method(name)
        with torch.no_grad():
            fuse(images.ir, images.vis)  # warm-up (imports, caches)
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                fuse(images.ir, images.vis)
                times.append(time.perf_counter() - start)
        rows.append({"method": name, "seconds_per_pair": statistics.median(times), "min": min(times),
                     "repeats": args.repeats})
        print(f"{name:8s} {statistics.median(times):8.3f} s/pair (min {min(times):.3f})", flush=True)
    table = pd.DataFrame(rows)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch threads {torch.get_num_threads()}, load average {load:.1f}; pair {pair.name} 640×480")
    if args.out:
        io.write_csv(args.out, table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
