"""DIDFuse training cost: seconds per iteration (batch 24, both modalities, as the paper trains).

    python benchmarks/didfuse_train.py [--threads 2] [--iters 3] [--crops 128 64] [--devices cpu cuda]
    python benchmarks/didfuse_train.py --devices cuda --crops 128 --concurrent 1 4 8 16   # sweep throughput

One iteration = encode–decode 24 IR and 24 VIS crops, Eq. 5, backward, Adam step (loss preset
"paper"; AMP on CUDA as fusion_core.train uses it). Crops are the centre crops of the first 24 pairs of
fusion_core/papers/didfuse/splits/train.txt. Extrapolated to the paper protocol: 120 epochs × ⌈pairs / 24⌉ iterations
— 960 on our FLIR-Train-180 substitute, 1,440 on the paper's 286 pairs. ``--concurrent K`` runs K
trainings at once (spawned processes, as ``python -m fusion_core.sweep --parallel K`` does; CPU
threads split between them) and reports their summed throughput, the speed-up over one run and
the hours of a 25-training sweep. Writes benchmarks/results/didfuse_train_<devices>.csv.
Timings, not tests.
"""
from __future__ import annotations

import argparse
import math
import multiprocessing
import time
from pathlib import Path

import pandas as pd
import torch

from fusion_core import data
from fusion_core.io import write_csv
from fusion_core.papers.didfuse.loss import DIDFuseLoss
from fusion_core.papers.didfuse.model import DIDFuse
from fusion_core.papers.didfuse.train import PROTOCOLS
from fusion_core.train import CropPairs, seed_everything

BATCH, EPOCHS = PROTOCOLS["paper"].batch_size, PROTOCOLS["paper"].epochs  # 24, 120
TRAINING_SETS = {"ours (flir_train180)": 180, "paper (286 pairs)": 286}  # pairs per epoch of the paper protocol
RESULTS = Path(__file__).resolve().parent / "results"


def seconds_per_iteration(device: str, crop: int, iters: int, warmup: int = 1) -> float:
    seed_everything(0)
    crops = CropPairs.from_pairs(data.load_split("didfuse", "train")[:BATCH], crop=crop)
    batch = tuple(t.to(device) for t in crops.take(torch.arange(BATCH), torch.Generator()))
    model, loss = DIDFuse().to(device).train(), DIDFuseLoss("paper")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    amp = device == "cuda"
    scaler = torch.amp.GradScaler(device, enabled=amp)

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device, enabled=amp):
            total = loss(model, batch)["total"]
        scaler.scale(total).backward()
        scaler.step(optimizer)
        scaler.update()

    for _ in range(warmup):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(iters):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / iters


def _worker(args: tuple[str, int, int, int]) -> float:
    device, crop, iters, threads = args
    torch.set_num_threads(threads)
    return seconds_per_iteration(device, crop, iters)


def concurrent_seconds(device: str, crop: int, iters: int, processes: int, threads: int) -> list[float]:
    """Seconds per iteration of each of ``processes`` trainings running at the same time (spawned)."""
    if processes == 1:
        torch.set_num_threads(threads)
        return [seconds_per_iteration(device, crop, iters)]
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes) as pool:
        return pool.map(_worker, [(device, crop, iters, threads)] * processes)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads in all (split over concurrent runs)")
    parser.add_argument("--iters", type=int, help="timed iterations (default 3 on CPU, 20 on CUDA)")
    parser.add_argument("--crops", type=int, nargs="+", default=[128, 64])
    parser.add_argument("--devices", nargs="+", default=["cpu", "cuda"])
    parser.add_argument("--concurrent", type=int, nargs="+", default=[1],
                        help="numbers of trainings run at once on the device (e.g. 1 2 4 8): sweep throughput")
    parser.add_argument("--out", type=Path, help="CSV (default: benchmarks/results/didfuse_train_<devices>.csv)")
    args = parser.parse_args(argv)
    devices = [d for d in args.devices if d == "cpu" or torch.cuda.is_available()]
    print(f"DIDFuse training, batch {BATCH} (IR + VIS), {EPOCHS} epochs; torch {torch.__version__}, "
          f"{args.threads} CPU threads in all")
    rows = []
    for device in devices:
        name = "cpu" if device == "cpu" else f"cuda ({torch.cuda.get_device_name()})"
        for crop in args.crops:
            iters = args.iters or (3 if device == "cpu" else 20)
            for processes in args.concurrent:
                threads = max(1, args.threads // processes) if device == "cpu" else 1
                seconds = concurrent_seconds(device, crop, iters, processes, threads)
                throughput = sum(1 / s for s in seconds)  # iterations per second, all runs together
                row = {"device": name, "crop": crop, "processes": processes, "threads_each": threads,
                       "s_per_iter": round(sum(seconds) / len(seconds), 4),
                       "aggregate_iter_per_s": round(throughput, 4)}
                for label, pairs in TRAINING_SETS.items():
                    per_training = EPOCHS * math.ceil(pairs / BATCH)
                    row[f"hours_one_training {label}"] = round(per_training * row["s_per_iter"] / 3600, 3)
                    row[f"hours_25_trainings {label}"] = round(25 * per_training / throughput / 3600, 3)
                rows.append(row)
                print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    if "cuda" in args.devices and "cuda" not in devices:
        print("cuda: not available on this machine")
    table = pd.DataFrame(rows)
    for (device, crop), group in table.groupby(["device", "crop"], sort=False):
        single = group.loc[group["processes"] == 1, "aggregate_iter_per_s"]
        if len(single):
            table.loc[group.index, "speedup_vs_1"] = (group["aggregate_iter_per_s"] / single.iloc[0]).round(3)
    out = args.out or RESULTS / f"didfuse_train_{'_'.join(devices)}.csv"
    write_csv(out, table)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
