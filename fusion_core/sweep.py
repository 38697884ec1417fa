"""Run many trainings side by side on one machine: seeds × variants as concurrent processes.

One small network (DIDFuse: 0.26 M parameters, batch 24 at 128²) leaves most of a GPU idle, so
a seed sweep runs K trainings at once on the same device instead of one after another::

    python -m fusion_core.sweep --parallel 8 --seeds 0-24 --vary ablation=full,exp1,exp2,exp3,exp4,exp5 \\
        --logs build/sweep -- python -m fusion_core.train_didfuse --profile full --device cuda --max-minutes 9

Each job is the command after ``--`` plus ``--seed S`` and one ``--KEY VALUE`` per ``--vary``. A
leading ``python``/``python3`` is replaced by this interpreter. Jobs get ``OMP_NUM_THREADS`` =
``--threads`` (default: CPU cores ÷ ``--parallel``) so they do not fight over the CPU. With the
training CLIs' ``--max-minutes`` every job stops within its budget and exits 75 ("rerun to resume",
checkpoint saved); ``--deadline-minutes`` stops starting new jobs. Rerunning the same sweep resumes
every unfinished job, and a finished job returns at once, so a long protocol runs as a series of
bounded chunks.

Output: one log per job (``<logs>/<job>.log``, appended) and ``<logs>/sweep_summary.csv`` (job,
command, exit code, status, start and duration in seconds). Exit code: 0 when every job finished, 75 when some are
resumable or were not started, 1 when any failed.
"""
from __future__ import annotations

import argparse
import itertools
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .io import write_csv
from .train import INCOMPLETE

STATUS = {0: "done", INCOMPLETE: "resumable"}


@dataclass
class Job:
    name: str
    argv: list[str]
    returncode: int | None = None
    start: float | None = None  # seconds after the sweep started
    seconds: float = 0.0

    @property
    def status(self) -> str:
        if self.returncode is None:
            return "not started"
        return STATUS.get(self.returncode, "failed")


def parse_seeds(text: str) -> list[int]:
    """'0-4,7' → [0, 1, 2, 3, 4, 7] (ranges inclusive, order kept, duplicates dropped)."""
    seeds: list[int] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        try:
            low, dash, high = part.partition("-")
            values = range(int(low), int(high) + 1) if dash else [int(low)]
        except ValueError:
            raise ValueError(f"seeds '{text}': '{part}' is not an integer or a range like 0-24") from None
        seeds.extend(v for v in values if v not in seeds)
    if not seeds:
        raise ValueError(f"seeds '{text}' name no seed")
    return seeds


def parse_vary(items: list[str]) -> list[tuple[str, list[str]]]:
    """['ablation=full,exp1'] → [('ablation', ['full', 'exp1'])]."""
    parsed = []
    for item in items:
        key, sep, values = item.partition("=")
        choices = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not key.strip() or not choices:
            raise ValueError(f"--vary '{item}' is not KEY=V1,V2,...")
        parsed.append((key.strip(), choices))
    return parsed


def build_jobs(command: list[str], seeds: list[int], vary: list[tuple[str, list[str]]] = ()) -> list[Job]:
    """The seeds × variants grid as jobs, variants outermost (all seeds of one variant side by side)."""
    if not command:
        raise ValueError("no command given after --")
    base = [sys.executable, *command[1:]] if command[0] in ("python", "python3") else list(command)
    keys = [key for key, _ in vary]
    jobs = []
    for values in itertools.product(*(choices for _, choices in vary)):
        for seed in seeds:
            extra = [arg for key, value in zip(keys, values) for arg in (f"--{key}", value)]
            label = "_".join(f"{key}-{value}" for key, value in zip(keys, values))
            jobs.append(Job(f"{label + '_' if label else ''}seed{seed}", [*base, "--seed", str(seed), *extra]))
    return jobs


def run_jobs(jobs: list[Job], parallel: int, threads: int, logs: Path, deadline_s: float | None = None,
             poll: float = 0.2, echo=print) -> list[Job]:
    """Run ``jobs`` with at most ``parallel`` at a time; fills in each job's exit code and seconds."""
    logs.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    started = time.perf_counter()
    pending, running = list(jobs), []
    try:
        while pending or running:
            while pending and len(running) < parallel:
                if deadline_s is not None and time.perf_counter() - started > deadline_s:
                    echo(f"deadline passed: {len(pending)} job(s) not started")
                    pending.clear()
                    break
                job = pending.pop(0)
                handle = open(logs / f"{job.name}.log", "a")
                handle.write(f"$ {shlex.join(job.argv)}  (OMP_NUM_THREADS={threads}, {time.strftime('%F %T')})\n")
                handle.flush()
                process = subprocess.Popen(job.argv, stdout=handle, stderr=subprocess.STDOUT, env=env,
                                           stdin=subprocess.DEVNULL)
                job.start = time.perf_counter() - started
                running.append((job, process, handle, time.perf_counter()))
                echo(f"start {job.name}")
            for entry in list(running):
                job, process, handle, tick = entry
                if process.poll() is None:
                    continue
                job.returncode, job.seconds = process.returncode, time.perf_counter() - tick
                handle.close()
                running.remove(entry)
                echo(f"{job.status:9s} {job.name} (exit {job.returncode}, {job.seconds:.0f} s)")
            if running:
                time.sleep(poll)
    except KeyboardInterrupt:
        for job, process, handle, tick in running:
            process.terminate()
            process.wait()
            job.returncode, job.seconds = process.returncode, time.perf_counter() - tick
            handle.close()
        raise
    return jobs


def summary(jobs: list[Job]) -> pd.DataFrame:
    return pd.DataFrame([{"job": j.name, "command": shlex.join(j.argv), "exit": j.returncode, "status": j.status,
                          "start_s": None if j.start is None else round(j.start, 1), "seconds": round(j.seconds, 1)}
                         for j in jobs])


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[argv.index("--") + 1:] if "--" in argv else []
    options = argv[:argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(prog="python -m fusion_core.sweep", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     usage="%(prog)s [options] -- COMMAND ...")
    parser.add_argument("--seeds", default="0", help="e.g. 0-24 or 0,3,5 (default 0)")
    parser.add_argument("--vary", action="append", default=[], metavar="KEY=V1,V2",
                        help="also pass --KEY V for each value (repeatable: the grid is the product)")
    parser.add_argument("--parallel", type=int, default=1, help="jobs at once (default 1)")
    parser.add_argument("--threads", type=int, help="OMP_NUM_THREADS per job (default: cores ÷ parallel)")
    parser.add_argument("--logs", type=Path, default=Path("build/sweep"), help="folder for job logs and the summary")
    parser.add_argument("--deadline-minutes", type=float, help="start no job after this many minutes")
    parser.add_argument("--dry-run", action="store_true", help="print the jobs and exit")
    args = parser.parse_args(options)
    try:
        if args.parallel < 1:
            raise ValueError(f"--parallel must be ≥ 1, got {args.parallel}")
        jobs = build_jobs(command, parse_seeds(args.seeds), parse_vary(args.vary))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    threads = args.threads or max(1, (os.cpu_count() or 1) // args.parallel)
    if args.dry_run:
        for job in jobs:
            print(f"{job.name}: {shlex.join(job.argv)}")
        return 0
    print(f"{len(jobs)} job(s), {args.parallel} at a time, OMP_NUM_THREADS={threads}; logs in {args.logs}")
    run_jobs(jobs, args.parallel, threads, args.logs,
             None if args.deadline_minutes is None else 60 * args.deadline_minutes)
    table = summary(jobs)
    write_csv(args.logs / "sweep_summary.csv", table)
    counts = table["status"].value_counts()
    print(", ".join(f"{n} {status}" for status, n in counts.items()) + f"; summary: {args.logs / 'sweep_summary.csv'}")
    if counts.get("failed", 0):
        return 1
    return 0 if counts.get("done", 0) == len(jobs) else INCOMPLETE


if __name__ == "__main__":
    raise SystemExit(main())
