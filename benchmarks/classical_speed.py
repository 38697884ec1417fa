"""Classical-method speed on CPU: seconds per 640×480 pair for every registered classical method, and the
ratio to a peer method timed in the same run (the number to quote: it survives a change of machine).

    python benchmarks/classical_speed.py [--repeats 3] [--threads N] [--peer average] [--out FILE.csv]
    python benchmarks/classical_speed.py --vifb-rgb [--peer tif]   # as notebook 98 runs them

The pair is VIFB's ``labMan`` (640×480, real data). By default each method fuses it on Y through the
standard interface (``build_method(name)(ir, vis)``, 1×1×480×640 float32) — what
``python -m fusion_core fuse`` runs. With ``--vifb-rgb`` the six methods VIFB also has run the way
notebook 98 compares them with VIFB's files (``_vifb.fuse_like_vifb``: per RGB channel, or the method's
own colour variant) — the times that table once carried as ``seconds_rgb``, moved here because run times
are not results (``results/`` holds only what a rerun reproduces byte for byte). Each method runs once to
warm up, then ``--repeats`` times; the median is reported, with ``x_<peer>`` = median / the peer's median.
For reference, VIFB (Zhang et al., CVPRW 2020, Table 3) lists the MATLAB run times of its methods on the
same benchmark; GTF and CBF are among its slowest classical methods. Not a test: seconds depend on the
machine and its load (the output says which); ratios less so.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import pandas as pd
import torch

from fusion_core import data, io
from fusion_core.classical import classical_names
from fusion_core.classical import _vifb as vifb
from fusion_core.methods import build_method, method_names
from fusion_core.train import cpu_model


def timed(fuse, repeats: int) -> list[float]:
    with torch.no_grad():
        fuse()  # warm-up (imports, caches, kernel tables)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fuse()
            times.append(time.perf_counter() - start)
    return times


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--methods", help="comma-separated subset (default: all classical methods)")
    parser.add_argument("--vifb-rgb", action="store_true", help="the VIFB methods on the colour pair, as notebook 98")
    parser.add_argument("--peer", help="method the ratios refer to (default: average; tif with --vifb-rgb)")
    parser.add_argument("--out", help="also write the table as CSV (atomically)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    pair = next(p for p in data.list_pairs("vifb21") if p.stem == "labMan")
    images = data.load_pair(pair)
    if images.ir.shape[-2:] != (480, 640):
        raise SystemExit(f"{pair.ir}: expected 640×480, got {tuple(images.ir.shape[-2:])}")
    method_names()
    available = list(vifb.VIFB_NAMES) if args.vifb_rgb else classical_names()
    names = args.methods.split(",") if args.methods else available
    peer = args.peer or ("tif" if args.vifb_rgb else "average")
    if peer not in names:
        names.append(peer)
    if args.vifb_rgb:
        ir, vis_rgb = vifb.load_rgb_pair(pair)
        runs = {name: (lambda name=name: vifb.fuse_like_vifb(name, ir, vis_rgb)) for name in names}
    else:
        runs = {name: (lambda fuse=build_method(name): fuse(images.ir, images.vis)) for name in names}
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    rows = []
    for name, fuse in runs.items():
        times = timed(fuse, args.repeats)
        rows.append({"method": name, "seconds_per_pair": statistics.median(times), "min": min(times),
                     "repeats": args.repeats})
        print(f"{name:8s} {statistics.median(times):8.3f} s/pair (min {min(times):.3f})", flush=True)
    table = pd.DataFrame(rows)
    table[f"x_{peer}"] = table["seconds_per_pair"] / table.set_index("method").at[peer, "seconds_per_pair"]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    busy = max(load_before, load) > (os.cpu_count() or 1) / 2
    table = table.assign(
        pair=f"{pair.name} 640x480 {'RGB (VIFB colour handling)' if args.vifb_rgb else 'Y'}", cpus=os.cpu_count(),
        torch_threads=torch.get_num_threads(), torch=torch.__version__, processor=cpu_model(),
        load_before=load_before, load_after=load,
        note="other jobs were running (load average above half the CPUs): seconds are upper bounds, ratios noisy"
        if busy else "")
    print(table[["method", "seconds_per_pair", "min", "repeats", f"x_{peer}"]].round(3).to_string(index=False))
    print(f"\nmachine: {cpu_model()}, {os.cpu_count()} CPUs, "
          f"torch threads {torch.get_num_threads()}, load average {load:.1f}; pair {pair.name} 640×480"
          f"{' RGB (VIFB colour handling)' if args.vifb_rgb else ' (Y)'}")
    if args.out:
        io.write_csv(args.out, table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
