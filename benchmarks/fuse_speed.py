"""`fuse` speed on CPU: seconds per 640×480 pair for every registered method, and for learned methods the
achieved GFLOP/s against plain ``conv2d`` calls of the same shapes timed in the same process (the practical
ceiling of the network's arithmetic on this machine).

    python benchmarks/fuse_speed.py [--methods didfuse,res2netfuse,...] [--repeats 3] [--threads N]
                                    [--rules didfuse=sum,sal+cam] [--before REV] [--out benchmarks/results/fuse_speed_cpu.csv]

The pair is VIFB's ``labMan`` (640×480, real data), fused on Y through ``fusion_core.fuse.fuse_images`` with
each method's default weights and rule — what ``python -m fusion_core fuse`` runs, start-up excluded. Each
method runs once to warm up, then ``--repeats`` times; the median wall and process-CPU seconds are reported.
For a learned method, ``gflop`` is what ``torch.utils.flop_counter.FlopCounterMode`` counts for one fuse
(the convolutions; the fusion rule's element-wise work is not counted) and ``ceiling_gflops`` the rate of the
same conv2d shapes run bare (random data, one call each), timed right after each repeat of the fuse;
``fraction_of_ceiling`` is the median over the repeats of (bare convolutions s) / (fuse s), so that a change
of load between the two is not read as a change of speed (``fraction_of_ceiling_cpu``: the same ratio of
process-CPU seconds, which other jobs on a busy machine move less).

``--rules METHOD=R1,R2`` also times a learned method with each of these rules (rows ``<method> (rule R)``):
the rule's share of a fuse is then plain. With ``sum`` (one addition per feature value) the fuse is the
network alone, so its ``fraction_of_ceiling`` is the network's; with ``sal+cam`` (DIDFuse's default) it is the
network plus the rule's box filters and element-wise passes, which the convolution ceiling does not count.

A run replaces the rows of the methods it times and keeps the others (each row carries its own date and load).

``--before REV`` also times DIDFuse as committed at git revision ``REV`` (a scratch copy of its
``fusion_core/``, in a subprocess, alternating with the current code in subprocesses of their own) and
compares the two fused images pixel by pixel (uint8): the speed fixes must not move the output by more than
float32 rounding.

``methods`` reads the seconds per pair from the CSV (``--out``); ``python -m fusion_core methods`` says
"not measured" for a method absent from it. Not a test: seconds depend on the machine and its load (the
table records the load average before and after); ratios to the ceiling measured in the same run less so.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def labman():
    from fusion_core import data

    pair = next(p for p in data.list_pairs("vifb21") if p.stem == "labMan")
    images = data.load_pair(pair)
    assert images.ir.shape[-2:] == (480, 640), images.ir.shape
    return images


def conv_shapes(fuser, images) -> list[tuple]:
    """(input shape, weight shape, padding, dilation) of every conv2d one fuse call runs."""
    import torch

    shapes = []

    def hook(module, inputs, output):
        shapes.append((tuple(inputs[0].shape), tuple(module.weight.shape), module.padding, module.dilation))

    handles = [m.register_forward_hook(hook) for m in fuser.model.modules() if isinstance(m, torch.nn.Conv2d)]
    try:
        with torch.inference_mode():
            fuser(images.ir, images.vis)
    finally:
        for h in handles:
            h.remove()
    return shapes


def ceiling(shapes) -> tuple[float, float]:
    """Wall and process-CPU seconds for one bare conv2d call of each of these shapes (random data), summed."""
    import torch
    import torch.nn.functional as F

    total, cpu = 0.0, 0.0
    with torch.inference_mode():
        for x_shape, w_shape, padding, dilation in shapes:
            x, w = torch.rand(x_shape), torch.rand(w_shape)
            start, start_cpu = time.perf_counter(), time.process_time()
            F.conv2d(x, w, padding=padding, dilation=dilation)
            total += time.perf_counter() - start
            cpu += time.process_time() - start_cpu
    return total, cpu


def time_method(name: str, repeats: int, weights=None, rule=None) -> dict:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from fusion_core.fuse import fuse_images
    from fusion_core.methods import build_method

    images = labman()
    try:
        from fusion_core.methods import method_info, resolve_weights
    except ImportError:  # an older tree (--before): no registry metadata, weights given explicitly
        kind = "learned" if weights else "classical"
    else:
        kind = method_info(name).kind
        weights, _ = resolve_weights(name, weights)
    fuser = build_method(name, weights=weights, rule=rule) if rule else build_method(name, weights=weights)
    fused = fuse_images(fuser, images)  # warm-up
    learned = getattr(fuser, "model", None) is not None
    shapes = conv_shapes(fuser, images) if learned else []
    walls, cpus, ceilings, ceiling_cpus = [], [], [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        fuse_images(fuser, images)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
        if learned:  # the peer right after each fuse, so both see the same load
            bare, bare_cpu = ceiling(shapes)
            ceilings.append(bare)
            ceiling_cpus.append(bare_cpu)
    row = {"method": name if rule is None else f"{name} (rule {rule})", "kind": kind, "rule": rule or "default",
           "s_per_pair": statistics.median(walls),
           "cpu_s_per_pair": statistics.median(cpus), "weights": str(weights or "")}
    if learned:
        counter = FlopCounterMode(display=False)
        with counter, torch.inference_mode():
            fuser(images.ir, images.vis)
        row["gflop"] = counter.get_total_flops() / 1e9
        row["gflops"] = row["gflop"] / row["s_per_pair"]
        row["ceiling_gflops"] = row["gflop"] / statistics.median(ceilings)
        # median of the per-repeat ratios: each fuse against the bare convolutions timed right after it
        row["fraction_of_ceiling"] = statistics.median(c / w for c, w in zip(ceilings, walls))
        # the same in CPU seconds of this process (all its threads): less moved by other jobs than wall time
        row["fraction_of_ceiling_cpu"] = statistics.median(c / w for c, w in zip(ceiling_cpus, cpus))
    row["_fused"] = fused
    return row


def _child(args) -> int:
    """One method timed in this process (the current tree or a scratch copy on PYTHONPATH); JSON on stdout."""
    import numpy as np
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.lean_malloc:
        try:
            from fusion_core.fuse import keep_freed_memory
        except ImportError:  # a tree from before the setting: the fuse command of that tree did not make it
            pass
        else:
            keep_freed_memory()
    row = time_method(args.child, args.repeats, args.weights, args.rule)
    from fusion_core import data

    np.save(args.save, data.to_uint8(row.pop("_fused")))
    print(json.dumps(row))
    return 0


def _run_child(method: str, args, pythonpath: Path, save: Path, weights=None, lean_malloc=True, rule=None) -> dict:
    cmd = [sys.executable, __file__, "--child", method, "--repeats", str(args.repeats), "--save", str(save)]
    cmd += ["--rule", rule] if rule else []
    cmd += ["--threads", str(args.threads)] if args.threads else []
    cmd += ["--weights", str(weights)] if weights else []
    cmd += ["--lean-malloc"] if lean_malloc else []
    from fusion_core import data

    env = {**os.environ, "PYTHONPATH": str(pythonpath), "FUSION_DATA": str(data.data_root())}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=pythonpath)
    if done.returncode:
        raise SystemExit(f"{method} in {pythonpath} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def before_after(args) -> list[dict]:
    """DIDFuse at ``args.before`` vs now, alternating subprocesses; uint8 outputs compared."""
    import numpy as np

    from fusion_core.methods import resolve_weights

    weights, _ = resolve_weights("didfuse")
    scratch = Path(tempfile.mkdtemp(prefix="fuse_speed_before_"))
    archive = subprocess.run(["git", "-C", str(REPO), "archive", args.before, "fusion_core"], capture_output=True,
                             check=True).stdout
    subprocess.run(["tar", "x", "-C", str(scratch)], input=archive, check=True)
    rows = []
    for rounds in range(args.rounds):
        for label, tree in (("before", scratch), ("after", REPO)):
            row = _run_child("didfuse", args, tree, scratch / f"{label}.npy", weights)
            rows.append({**row, "method": f"didfuse ({label}: {args.before if label == 'before' else 'working tree'})",
                         "round": rounds})
    a, b = np.load(scratch / "before.npy").astype(int), np.load(scratch / "after.npy").astype(int)
    diff = np.abs(a - b)
    for row in rows:
        row["pixels_differing"] = int((diff > 0).sum())
        row["max_grey_level_difference"] = int(diff.max())
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", help="comma-separated subset (default: every registered method)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2, help="--before: alternations of before and after")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--before", metavar="REV", help="also time DIDFuse as committed at this git revision")
    parser.add_argument("--out", default=str(RESULTS / "fuse_speed_cpu.csv"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--save", help=argparse.SUPPRESS)
    parser.add_argument("--weights", help=argparse.SUPPRESS)
    parser.add_argument("--rule", help=argparse.SUPPRESS)
    parser.add_argument("--rules", action="append", default=[], metavar="METHOD=R1,R2",
                        help="also time a learned method with each of these rules (repeatable)")
    parser.add_argument("--lean-malloc", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(args)

    import pandas as pd
    import torch

    from fusion_core import io
    from fusion_core.methods import method_names
    from fusion_core.train import cpu_model

    load_before = os.getloadavg()[0]
    names = args.methods.split(",") if args.methods else method_names()
    extra = {}
    for item in args.rules:
        method, _, rules = item.partition("=")
        extra.setdefault(method.strip(), []).extend(r.strip() for r in rules.split(",") if r.strip())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, rule in [(n, None) for n in names] + [(m, r) for m, rs in extra.items() for r in rs]:
            row = _run_child(name, args, REPO, Path(tmp) / "fused.npy", rule=rule)
            rows.append(row)
            print(f"{row['method']:24s} {row['s_per_pair']:7.3f} s/pair  cpu {row['cpu_s_per_pair']:7.3f} s"
                  + (f"  {row['gflops']:.1f} GFLOP/s of {row['ceiling_gflops']:.1f} ({row['fraction_of_ceiling']:.0%})"
                     if "gflops" in row else ""), flush=True)
    if args.before:
        for row in before_after(args):
            rows.append(row)
            print(f"{row['method']:40s} {row['s_per_pair']:7.3f} s/pair  cpu {row['cpu_s_per_pair']:7.3f} s  "
                  f"{row['gflops']:.1f} GFLOP/s of {row['ceiling_gflops']:.1f}; uint8 pixels differing "
                  f"{row['pixels_differing']} (max {row['max_grey_level_difference']})", flush=True)
    load_after = os.getloadavg()[0]
    table = pd.DataFrame(rows)
    table["date"] = time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime())
    table["pair"] = "vifb21/labMan 640x480"
    table["threads"] = args.threads or torch.get_num_threads()
    table["cpus"] = os.cpu_count()
    table["torch"] = torch.__version__
    table["processor"] = cpu_model()
    table["load_before"], table["load_after"] = round(load_before, 2), round(load_after, 2)
    table["note"] = ("other jobs were running (load average above half the CPUs): re-take on a quiet machine"
                     if load_before > (os.cpu_count() or 1) / 2 else "quiet machine")  # after: includes this run
    if Path(args.out).is_file():  # keep the rows of methods this run did not time
        timed = {name for name in names} | set(extra)
        old = pd.read_csv(args.out)
        keep = old[~old["method"].str.split(" ").str[0].isin(timed)]
        table = pd.concat([keep, table], ignore_index=True)
    io.write_csv(args.out, table)
    print(f"load average {load_before:.1f} → {load_after:.1f}; table → {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
