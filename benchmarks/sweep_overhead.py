"""Sweep overhead on Dask: what the engine adds per job compared with running the same commands directly.

    python benchmarks/sweep_overhead.py [--jobs 8] [--parallel 1] [--sleep 1.0]

Each job is ``python -c "import time; time.sleep(S)"`` (no work besides the interpreter start). The direct
run starts the jobs one after another with ``subprocess.run``; the sweep runs them through
:func:`fusion_core.sweep.run_jobs` on a fresh ``LocalCluster`` of ``--parallel`` workers. Reported: the
cluster's start and close (once per sweep) and the overhead per job,
(sweep time − start/close − direct time × (1 / parallel)) / jobs. Not a test: the load of the machine shows.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from distributed import Client

from fusion_core import sweep


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--parallel", type=int, default=1)
    parser.add_argument("--sleep", type=float, default=1.0)
    args = parser.parse_args(argv)
    command = [sys.executable, "-c", f"import time; time.sleep({args.sleep})"]
    tick = time.perf_counter()
    for _ in range(args.jobs):
        subprocess.run(command, check=True)
    direct = time.perf_counter() - tick
    with tempfile.TemporaryDirectory() as logs:
        tick = time.perf_counter()
        cluster = sweep.local_cluster(args.parallel)
        client = Client(cluster)
        started = time.perf_counter() - tick
        jobs = [sweep.Job(f"job{i}", command) for i in range(args.jobs)]
        tick = time.perf_counter()
        sweep.run_jobs(jobs, args.parallel, 1, Path(logs), client=client, echo=lambda m: None)
        swept = time.perf_counter() - tick
        tick = time.perf_counter()
        client.close()
        cluster.close()
        closed = time.perf_counter() - tick
    per_job = (swept - direct / args.parallel) / args.jobs
    load = os.getloadavg()[0]
    print(f"{args.jobs} jobs of {args.sleep} s, {args.parallel} worker(s), load {load:.1f}: direct {direct:.2f} s, "
          f"sweep {swept:.2f} s + cluster start {started:.2f} s + close {closed:.2f} s → {per_job * 1000:.0f} ms per job")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
