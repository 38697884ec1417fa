"""`score` end to end on the 42 `tno42` pairs against a reference Python evaluator timed in the same run.

    python benchmarks/score_speed.py [--rounds 1] [--append] [--out benchmarks/results/score_speed_cpu.csv]

What a user runs, start-up included: ``python -m fusion_core score --fused DIR --dataset tno42 --convention tang
--metrics EN,SD,SF,AG,MI,SCD,VIF,Qabf,SSIM`` (one process per CPU, one thread each; and once with
``--jobs 1``), against ``benchmarks/reference_evaluator.py`` — our re-implementation of the CDDFuse-style
NumPy/SciPy/scikit-image loop over the same nine metrics (see its docstring: their file could not be run
here). The fused images are the pixel average of each pair (``fuse --method average``), written once to a
scratch folder. Each tool runs as a fresh process, timed by wall clock, alternating, ``--rounds`` times; the
ratio is reference seconds / ours in the same round (``reference_over_this``, wall clock: the goal), beside the same
ratio of CPU seconds (user + system of the command and its workers: ``reference_cpu_over_this``), which a busy
machine moves far less; with one process per CPU ours spends more CPU than wall time. Not a test: seconds depend on the machine and its load
(the table records the load average before and after); the ratio, taken side by side, less so.
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
METRICS = "EN,SD,SF,AG,MI,SCD,VIF,Qabf,SSIM"


def timed(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds of one run of ``cmd`` and the CPU seconds (user + system) of it and its worker processes."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr}")
    print(f"  {seconds:7.1f} s  (cpu {cpu:6.1f} s)  {' '.join(cmd[1:4])}…  {done.stdout.strip().splitlines()[0]}",
          flush=True)
    return seconds, cpu


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "score_speed_cpu.csv"))
    parser.add_argument("--append", action="store_true", help="add this run's rows to --out instead of replacing it")
    args = parser.parse_args(argv)

    import pandas as pd

    from fusion_core import data, io
    from fusion_core.fuse import fuse_pairs
    from fusion_core.train import cpu_model

    pairs = data.list_pairs("tno42")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        fused = Path(tmp) / "fused"
        fuse_pairs("average", pairs, fused, progress=False)
        ir, vis = pairs[0].ir.parent, pairs[0].vis.parent
        ours = [sys.executable, "-m", "fusion_core", "score", "--fused", str(fused), "--dataset", "tno42",
                "--convention", "tang", "--metrics", METRICS]
        reference = [sys.executable, str(REPO / "benchmarks" / "reference_evaluator.py"), "--fused", str(fused),
                     "--ir", str(ir), "--vis", str(vis)]
        load_before = os.getloadavg()[0]
        for round_ in range(args.rounds):
            times = {"fusion_core score": timed(ours), "reference evaluator": timed(reference),
                     "fusion_core score --jobs 1": timed(ours + ["--jobs", "1"])}
            reference_wall, reference_cpu = times["reference evaluator"]
            for tool, (seconds, cpu) in times.items():
                rows.append({"round": round_, "tool": tool, "seconds": seconds, "pairs": len(pairs),
                             "s_per_pair": seconds / len(pairs), "reference_over_this": reference_wall / seconds,
                             "cpu_seconds": cpu, "reference_cpu_over_this": reference_cpu / cpu})
        load_after = os.getloadavg()[0]
    table = pd.DataFrame(rows)
    table["date"] = time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime())
    table["metrics"] = METRICS.replace(",", " ")
    table["start_up_included"] = True
    table["cpus"] = os.cpu_count()
    table["python"] = platform.python_version()
    table["processor"] = cpu_model()
    table["load_before"], table["load_after"] = round(load_before, 2), round(load_after, 2)
    # judged before the run: afterwards the load average counts the benchmark's own processes (the reference
    # evaluator alone keeps one CPU busy for a minute, so load_after is about 1 on any machine)
    table["note"] = ("other jobs were running (load average above half the CPUs): re-take on a quiet machine"
                     if load_before > (os.cpu_count() or 1) / 2 else "quiet machine")
    best = table.groupby("tool")["reference_over_this"].median()
    if args.append and Path(args.out).is_file():
        table = pd.concat([pd.read_csv(args.out), table], ignore_index=True)
    io.write_csv(args.out, table)
    print(f"reference / ours (median over rounds): {best['fusion_core score']:.1f}x with one process per CPU, "
          f"{best['fusion_core score --jobs 1']:.1f}x with --jobs 1; load {load_before:.1f} → {load_after:.1f}; "
          f"→ {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
