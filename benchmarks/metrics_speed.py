"""Metric speed: seconds per pair and pairs per second for each metric and for the core set, on tno42-sized
pairs (768×576), on the CPU and, when there is one, a CUDA device.

    python benchmarks/metrics_speed.py [--device cpu,cuda] [--threads N] [--repeats 5] [--pairs 3]
                                       [--conventions didfuse,tang,vifb] [--no-extra] [--batch 64] [--out CSV]

Uses the first 768×576 pairs of ``tno42`` (real data) with a fused image = their mean (8-bit), so every
metric sees realistic statistics. The core set is EN SD SF AG MI SCD VIF Qabf SSIM (the CDDFuse
evaluator's; about 2.1 s per pair on the project's 2-core machine, VIF alone 1.8 s); it is scored with the
``didfuse`` convention (VIF = VIFp sum, SF 1/MN, MATLAB AG) and the registry defaults for MI/Qabf/SSIM.
Then each default column of the other conventions asked for (``tang``, ``vifb``), and every other registered
metric with its registry defaults ("extra": FMI, Wang MS-SSIM, Nabf, CPBD, JNB).

Each timing is, per pair, the best of ``--repeats`` ``score`` calls, averaged over the pairs; on CUDA the pairs
are repeated into one batch of ``--batch`` images, timed after synchronising. ``cpu_s`` is the
process CPU time per pair (all threads), which other jobs on the machine inflate less than the wall time.
Not a test: the numbers depend on the machine and its load; the table says which. On a shared, busy machine
run it with ``OMP_WAIT_POLICY=PASSIVE`` (or ``--threads 1``): spinning OpenMP workers that lose their core
make two torch threads 10× slower than one there. The CPU table goes to
``benchmarks/results/metrics_speed_cpu.csv`` (CUDA: ``..._cuda.csv``), written atomically.
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import pandas as pd
import torch

from fusion_core import data, io
from fusion_core.metrics import METRICS, get_convention, score
from fusion_core.train import cpu_model

CORE = ["EN", "SD", "SF", "AG", "MI", "SCD", "VIF", "Qabf", "SSIM"]
PEER = {"core set": 2.1, "VIF": 1.8}  # CDDFuse's Python evaluator on this 2-core machine, s/pair (the issue)
RESULTS = Path(__file__).resolve().parent / "results"
SLOW_S = 2.0  # a metric slower than this per pair is timed once


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


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_columns(columns, convention, images, device, repeats) -> tuple[float, float]:
    """(wall, process CPU) seconds per pair for scoring ``columns``: per batch the best of ``repeats`` runs (the
    runs least disturbed by other jobs), averaged over the batches."""
    walls, cpus = [], []
    for fused, ir, vis in images:
        best_wall = best_cpu = float("inf")
        for run in range(repeats):
            _sync(device)
            wall, cpu = time.perf_counter(), time.process_time()
            score(fused, ir, vis, columns, convention, device=device)
            _sync(device)
            best_wall = min(best_wall, (time.perf_counter() - wall) / fused.shape[0])
            best_cpu = min(best_cpu, (time.process_time() - cpu) / fused.shape[0])
            if best_wall > SLOW_S:
                break
        walls.append(best_wall)
        cpus.append(best_cpu)
    return sum(walls) / len(walls), sum(cpus) / len(cpus)


def plan(conventions: list[str], extra: bool) -> list[tuple[str, str, list[str]]]:
    """(convention, row label, columns): each convention's set, then its columns one by one; then the rest."""
    rows, seen = [], set()
    for name in conventions:
        columns = CORE if name == "didfuse" else list(get_convention(name).default_columns)
        rows.append((name, "core set" if name == "didfuse" else "default set", columns))
        for column in columns:
            rows.append((name, column, [column]))
            seen.add(get_convention(name).column(column).metric)
    if extra:
        rows += [("didfuse", name, [name]) for name in METRICS if name not in seen]
    return rows


def machine(device: str) -> dict:
    info = {"device": device, "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
            "torch": torch.__version__, "python": platform.python_version(),
            "processor": cpu_model()}
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
    return info


def run_device(device: str, args) -> pd.DataFrame:
    names, images = load_pairs(args.pairs, device)
    if device == "cuda":  # one batch of args.batch images, the pairs repeated
        reps = -(-args.batch // len(images))
        images = [tuple(torch.cat([im[i] for im in images] * reps)[:args.batch] for i in range(3))]
    load_before = os.getloadavg()[0]
    about = ", ".join(f"{k}={v}" for k, v in machine(device).items())
    print(f"\n== {device}: {', '.join(names)} (768×576); {about}; load average {load_before:.1f}", flush=True)
    for name in args.conventions:  # warm-up: imports, OpenCV/FFT plans, CUDA kernels
        score(*images[0], CORE if name == "didfuse" else None, name, device=device)
    rows = []
    print(f"{'convention':10s} {'metric':12s} {'s/pair':>9s} {'pairs/s':>9s} {'cpu s':>8s} {'vs peer':>8s}")
    for convention, label, columns in plan(args.conventions, args.extra):
        wall, cpu = time_columns(columns, convention, images, device, args.repeats)
        peer = PEER.get(label) if convention == "didfuse" else None
        rows.append({"convention": convention, "metric": label, "columns": " ".join(columns),
                     "s_per_pair": wall, "pairs_per_s": 1 / wall, "cpu_s_per_pair": cpu if device == "cpu" else None,
                     "peer_s_per_pair": peer, "speedup_vs_peer": peer / wall if peer else None})
        vs = f"{peer / wall:7.1f}x" if peer else ""
        print(f"{convention:10s} {label:12s} {wall:9.4f} {1 / wall:9.1f} {cpu:8.4f} {vs:>8s}", flush=True)
    load_after = os.getloadavg()[0]
    table = pd.DataFrame(rows)
    for key, value in machine(device).items():
        table[key] = value
    table["pairs"] = len(names) if device == "cpu" else args.batch
    table["repeats"] = args.repeats
    table["load_before"], table["load_after"] = round(load_before, 2), round(load_after, 2)
    busy = max(load_before, load_after) > 0.5 * (os.cpu_count() or 1)
    table["note"] = ("other jobs were running (load average above half the CPUs): wall times are upper bounds"
                     if busy else "machine otherwise idle")
    core = table[(table["convention"] == "didfuse") & (table["metric"] == "core set")]
    if len(core):
        s = float(core["s_per_pair"].iloc[0])
        print(f"core set ({' '.join(CORE)}): {s:.4f} s/pair = {1 / s:.1f} pairs/s; {PEER['core set'] / s:.1f}x "
              f"the CDDFuse evaluator (2.1 s/pair); load {load_before:.1f} → {load_after:.1f}")
    return table


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu,cuda", help="comma-separated; cuda is skipped when unavailable")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=64, help="CUDA batch size (pairs per score call)")
    parser.add_argument("--conventions", default="didfuse,tang,vifb")
    parser.add_argument("--no-extra", dest="extra", action="store_false",
                        help="skip the remaining registered metrics")
    parser.add_argument("--out", default=None,
                        help="CSV path (default: benchmarks/results/metrics_speed_<device>.csv)")
    args = parser.parse_args(argv)
    args.conventions = args.conventions.split(",")
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = args.device.split(",")
    for device in devices:
        if device == "cuda" and not torch.cuda.is_available():
            print("\n== cuda: not available here, skipped")
            continue
        table = run_device(device, args)
        path = RESULTS / f"metrics_speed_{device}.csv"
        if args.out:
            path = Path(args.out)
            path = path.with_name(f"{path.stem}_{device}{path.suffix}") if len(devices) > 1 else path
        io.write_csv(path, table)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
