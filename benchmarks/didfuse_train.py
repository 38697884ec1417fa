"""DIDFuse training cost: seconds per iteration (batch 24, both modalities, as the paper trains).

    python benchmarks/didfuse_train.py [--threads 2] [--iters 3] [--crops 128 64] [--devices cpu cuda]

One iteration = encode–decode 24 IR and 24 VIS crops, Eq. 5, backward, Adam step (loss preset
"paper"; AMP on CUDA as fusion_core.train uses it). Crops are the centre crops of the first 24 pairs of
data/splits/didfuse/train.txt. Extrapolated to the full protocol: 120 epochs × ⌈pairs / 24⌉ iterations
— 960 on our FLIR-Train-180 substitute, 1,440 on the paper's 286 pairs. Timings, not tests.
"""
from __future__ import annotations

import argparse
import math
import time

import torch

from fusion_core import data
from fusion_core.losses import DIDFuseLoss
from fusion_core.nets.didfuse import DIDFuse
from fusion_core.train import CropPairs, seed_everything

BATCH, EPOCHS = 24, 120
PROTOCOLS = {"ours (flir_train180)": 180, "paper (286 pairs)": 286}


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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--iters", type=int, help="timed iterations (default 3 on CPU, 20 on CUDA)")
    parser.add_argument("--crops", type=int, nargs="+", default=[128, 64])
    parser.add_argument("--devices", nargs="+", default=["cpu", "cuda"])
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    devices = [d for d in args.devices if d == "cpu" or torch.cuda.is_available()]
    header = f"{'device':28s} {'crop':>5s} {'s/iter':>8s} " + " ".join(f"{p + ' h':>24s}" for p in PROTOCOLS)
    print(f"DIDFuse training, batch {BATCH} (IR + VIS), {EPOCHS} epochs; torch {torch.__version__}, "
          f"{args.threads} CPU threads")
    print(header)
    for device in devices:
        name = "cpu" if device == "cpu" else f"cuda ({torch.cuda.get_device_name()})"
        for crop in args.crops:
            iters = args.iters or (3 if device == "cpu" else 20)
            sec = seconds_per_iteration(device, crop, iters)
            hours = [sec * EPOCHS * math.ceil(pairs / BATCH) / 3600 for pairs in PROTOCOLS.values()]
            print(f"{name:28s} {crop:5d} {sec:8.3f} " + " ".join(f"{h:24.2f}" for h in hours), flush=True)
    if "cuda" in args.devices and "cuda" not in devices:
        print("cuda: not available on this machine")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
