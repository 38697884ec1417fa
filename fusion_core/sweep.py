"""Run many trainings side by side on Dask: seeds × variants, one process per job, resumable in chunks.

One small network (DIDFuse: 0.26 M parameters, batch 24 at 128²) leaves most of a GPU idle, so
a seed sweep runs K trainings at once on the same device instead of one after another::

    python -m fusion_core.sweep --parallel 8 --gpu --seeds 0-24 --vary variant=base,exp1,exp2,exp3,exp4,exp5 \\
        --logs build/sweep -- python -m fusion_core.papers.didfuse.train --protocol paper --device cuda --max-minutes 9

Each job is the command after ``--`` plus ``--seed S`` and one ``--KEY VALUE`` per ``--vary``; a
leading ``python``/``python3`` is replaced by this interpreter. Every job is one Dask task that runs
the command as a subprocess on a worker with ``OMP_NUM_THREADS`` = ``--threads`` (default: CPU cores ÷
``--parallel``). The engine is Dask distributed:

* default: a ``LocalCluster`` on 127.0.0.1 only, ``--parallel`` worker processes (default: one per
  CPU core) with one thread each; ``--gpu`` gives every worker the resource ``GPU=1`` and every task
  asks for it (all local workers share this machine's GPU: that is the packing);
* ``--scheduler tcp://host:8786``: an existing cluster (``dask scheduler`` + ``dask worker`` or
  dask-jobqueue on SLURM/PBS, see the README); its workers need this repository at the same path,
  the same Python environment and a shared file system for ``--logs`` and the checkpoints.

A worker that dies mid-job (killed, out of memory, node lost) takes its job's process with it and Dask
runs the task again elsewhere (``distributed.scheduler.allowed-failures``, default 3); the training
resumes from its last epoch checkpoint and ends with the same numbers. With the training CLIs'
``--max-minutes`` every job stops within its budget and exits 75 ("rerun to resume");
``--deadline-minutes`` stops starting new jobs. Rerunning the same sweep resumes every unfinished
job, and a finished job returns at once.

Notebooks: ``--notebook NB -p KEY V1,V2 [-p KEY2 ...]`` runs the notebook once per point of the grid
with papermill (values are YAML: ``-p seeds "[0];[0,1]"`` separates list values with ``;``), writes
``<logs>/<setting>.ipynb`` per setting and ``<logs>/sweep_results.csv``: every CSV table each run wrote
to its results folder, in one tidy table with the parameters as columns. A setting with non-default
parameters writes its own folder (:mod:`fusion_core.params`), never ``results/<paper>/``::

    python -m fusion_core sweep --notebook notebooks/03_msfam.ipynb -p beta 1,2,3 -p alpha2 0.5,0.84,1

Output: one log per job (``<logs>/<job>.log``, appended, one ``$ command`` line per attempt) and
``<logs>/sweep_summary.csv`` (job, command, exit code, status, start and duration in seconds, worker).
Progress: Dask's progress bar on a terminal (``--progress``/``--no-progress``), one line per finished job
otherwise; the dashboard address is printed (the dashboard needs ``bokeh``). Exit code: 0 when every
job finished, 75 when some are resumable or were not started, 1 when any failed.
"""
from __future__ import annotations

import argparse
import ctypes
import itertools
import logging
import os
import shlex
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from .io import write_csv

# fusion_core.train.INCOMPLETE, not imported: workers unpickle run_job from this module, and importing
# torch there would add seconds to every worker's start (tests/test_sweep.py checks they agree).
INCOMPLETE = 75
STATUS = {0: "done", INCOMPLETE: "resumable"}


@dataclass
class Job:
    name: str
    argv: list[str]
    returncode: int | None = None
    start: float | None = None  # seconds after the sweep started
    seconds: float = 0.0
    worker: str | None = None

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
    """['variant=base,exp1'] → [('variant', ['base', 'exp1'])]."""
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


def _split_values(text: str) -> list[str]:
    """'1,2,3' → ['1', '2', '3']; '[0];[0,1]' → ['[0]', '[0,1]'] (``;`` separates when present)."""
    parts = text.split(";") if ";" in text else text.split(",")
    return [p.strip() for p in parts if p.strip()]


def parse_param_grid(items: list[list[str]]) -> list[dict]:
    """[['beta', '1,2'], ['alpha2', '0.5,1']] → the product as dicts of YAML-parsed values, first key outermost."""
    import yaml

    axes = []
    for key, values in items:
        choices = [yaml.safe_load(v) for v in _split_values(values)]
        if not key.strip() or not choices:
            raise ValueError(f"-p '{key}' '{values}' is not -p KEY V1,V2,...")
        axes.append((key.strip(), choices))
    return [dict(zip([k for k, _ in axes], values)) for values in itertools.product(*(c for _, c in axes))]


def notebook_jobs(notebook: Path, grid: list[dict], profile: str, logs: Path) -> list[Job]:
    """One papermill run of ``notebook`` per setting: ``<logs>/<setting>.ipynb``, parameters as YAML."""
    import yaml

    from .params import slug
    from .reproduce import check_pair

    if not notebook.is_file():
        raise ValueError(f"{notebook}: notebook not found")
    check_pair(notebook)  # a sweep runs the .ipynb: an edit of its paired script not yet synced would be ignored
    jobs = []
    for setting in grid:
        name = slug(setting) or "defaults"
        argv = [sys.executable, "-m", "papermill", str(notebook.resolve()), str((logs / f"{name}.ipynb").resolve()),
                "-p", "profile", profile, "-y", yaml.safe_dump(setting, default_flow_style=True).strip(),
                "--cwd", str(notebook.resolve().parent), "--no-progress-bar"]
        jobs.append(Job(name, argv))
    return jobs


def notebook_results(notebook: Path, grid: list[dict], profile: str, jobs: list[Job]):
    """The tidy table: every top-level CSV each setting's run wrote, with the setting's parameters as columns
    (``param_<name>`` where a table has a column of that name) and ``sweep_status``, ``sweep_folder`` and
    ``sweep_table`` (the CSV's name)."""
    import pandas as pd

    from . import params
    from .reproduce import paper_of

    paper = paper_of(notebook)
    defaults = params.notebook_defaults(paper).get(notebook.name, {})
    frames = []
    for setting, job in zip(grid, jobs):
        values = {**defaults, **setting, "profile": profile}
        changed, _ = params.check(paper, values)
        canonical = (params.REPO_ROOT / "build" / "quick" if profile == "quick" else params.REPO_ROOT / "results") / paper
        folder = params.PARAMS_ROOT / profile / paper / params.slug(changed) if changed else canonical
        for table in sorted(folder.glob("*.csv")):
            frame = pd.read_csv(table)
            columns = {key: (f"param_{key}" if key in frame.columns else key) for key in setting}
            for key, value in setting.items():
                frame.insert(0, columns[key], [value] * len(frame) if not isinstance(value, (list, dict)) else
                             [str(value)] * len(frame))
            frame.insert(0, "sweep_table", table.stem)
            frame.insert(0, "sweep_folder", str(folder.relative_to(params.REPO_ROOT)) if folder.is_relative_to(
                params.REPO_ROOT) else str(folder))
            frame.insert(0, "sweep_status", job.status)
            frames.append(frame)
    return (pd.concat(frames, ignore_index=True) if frames
            else pd.DataFrame(columns=["sweep_status", "sweep_folder", "sweep_table", *grid[0]]))


# --------------------------------------------------------------------------- one job, on a worker

def _die_with_parent() -> None:
    """In the child: get SIGKILL when the worker that started it dies (Linux), so a retry never races an orphan."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def run_job(name: str, argv: list[str], log: str, threads: int, deadline_at: float | None) -> dict:
    """Run one job's command to its end on this Dask worker (appending to its log); returns what happened.

    ``deadline_at`` (epoch seconds): a job that would start later is not started (``returncode`` None).
    """
    if deadline_at is not None and time.time() > deadline_at:
        return {"returncode": None, "start": None, "seconds": 0.0, "worker": None}
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    host = os.uname().nodename
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as handle:
        handle.write(f"$ {shlex.join(argv)}  (OMP_NUM_THREADS={threads}, {host} pid {os.getpid()}, "
                     f"{time.strftime('%F %T')})\n")
        handle.flush()
        start = time.time()
        process = subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT, env=env, stdin=subprocess.DEVNULL,
                                   preexec_fn=_die_with_parent)
        returncode = process.wait()
    return {"returncode": returncode, "start": start, "seconds": time.time() - start, "worker": f"{host}:{os.getpid()}"}


# --------------------------------------------------------------------------- the engine

def local_cluster(parallel: int, gpu: bool = False):
    """A Dask ``LocalCluster`` on 127.0.0.1: ``parallel`` worker processes, one thread each (``GPU=1`` each with ``gpu``)."""
    from distributed import LocalCluster

    return LocalCluster(n_workers=parallel, threads_per_worker=1, processes=True, host="127.0.0.1",
                        scheduler_port=0, dashboard_address="127.0.0.1:0", memory_limit=0,
                        resources={"GPU": 1} if gpu else None, silence_logs=logging.ERROR)


def dashboard_note(client) -> str:
    try:
        import bokeh  # noqa: F401  (the dashboard's one extra dependency)
        return f"dashboard: {client.dashboard_link}"
    except ImportError:
        return f"dashboard: {client.dashboard_link} (served only where bokeh is installed)"


def run_jobs(jobs: list[Job], parallel: int, threads: int, logs: Path, deadline_s: float | None = None,
             poll: float | None = None, echo=print, scheduler: str | None = None, gpu: bool = False,
             client=None, progress: bool = False) -> list[Job]:
    """Run ``jobs`` as Dask tasks; fills in each job's exit code, start, seconds and worker.

    ``client``: an existing ``distributed.Client``; else ``scheduler`` (an address) or a new
    :func:`local_cluster` of ``parallel`` workers, closed at the end. ``poll`` is accepted for callers of
    the former process pool and ignored.
    """
    from distributed import Client, as_completed
    from distributed import progress as progress_bar

    logs = Path(logs).resolve()
    logs.mkdir(parents=True, exist_ok=True)
    started = time.time()
    deadline_at = None if deadline_s is None else started + deadline_s
    cluster, own = None, client is None
    if own:
        if scheduler:
            client = Client(scheduler)
        else:
            cluster = local_cluster(parallel, gpu)
            client = Client(cluster)
    try:
        where = scheduler or ("existing client" if not own else f"LocalCluster, {parallel} workers × 1 thread")
        echo(f"dask: {where}; {dashboard_note(client)}")
        token = uuid.uuid4().hex[:8]
        futures = {}
        for index, job in enumerate(jobs):
            future = client.submit(run_job, job.name, job.argv, str(logs / f"{job.name}.log"), threads, deadline_at,
                                   key=f"sweep-{job.name}-{token}", pure=False, priority=-index,
                                   resources={"GPU": 1} if gpu else None)
            futures[future] = job
        try:
            if progress:
                progress_bar(list(futures), notebook=False)
            for future in as_completed(list(futures)):
                job = futures[future]
                try:
                    outcome = future.result()
                except Exception as exc:  # the task itself failed (e.g. every worker it ran on died)
                    job.returncode, job.seconds = -1, 0.0
                    echo(f"failed    {job.name} ({exc.__class__.__name__}: {exc})")
                    continue
                job.returncode, job.seconds, job.worker = outcome["returncode"], outcome["seconds"], outcome["worker"]
                job.start = None if outcome["start"] is None else outcome["start"] - started
                if job.returncode is None:
                    echo(f"deadline passed: {job.name} not started")
                elif not progress:
                    echo(f"{job.status:9s} {job.name} (exit {job.returncode}, {job.seconds:.0f} s)")
        except KeyboardInterrupt:
            client.cancel(list(futures), force=True)
            raise
    finally:
        if own:
            client.close()
            if cluster is not None:
                cluster.close()
    return jobs


def summary(jobs: list[Job]):
    import pandas as pd

    return pd.DataFrame([{"job": j.name, "command": shlex.join(j.argv), "exit": j.returncode, "status": j.status,
                          "start_s": None if j.start is None else round(j.start, 1), "seconds": round(j.seconds, 1),
                          "worker": j.worker}
                         for j in jobs])


def default_parallel() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _validate_grid(notebook: Path, grid: list[dict], profile: str) -> None:
    """Every setting's values checked against the notebook's parameters before anything runs (one error)."""
    from .params import check, notebook_defaults
    from .reproduce import paper_of

    paper = paper_of(notebook)
    defaults = notebook_defaults(paper).get(notebook.name)
    if defaults is None:
        raise ValueError(f"{notebook}: not a committed notebook of paper '{paper}' (notebooks/NN_<name>.ipynb)")
    for setting in grid:
        unknown = sorted(set(setting) - set(defaults))
        if unknown:
            raise ValueError(f"{notebook.name} has no parameter {', '.join(unknown)}; its parameters: "
                             f"{', '.join(defaults)}")
        check(paper, {**defaults, **setting, "profile": profile})


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
    parser.add_argument("--parallel", type=int, help="local workers = jobs at once (default: CPU cores)")
    parser.add_argument("--threads", type=int, help="OMP_NUM_THREADS per job (default: cores ÷ parallel)")
    parser.add_argument("--scheduler", help="address of an existing Dask scheduler, e.g. tcp://host:8786")
    parser.add_argument("--gpu", action="store_true", help="tasks ask for the worker resource GPU=1")
    parser.add_argument("--logs", type=Path, default=Path("build/sweep"), help="folder for job logs and the summary")
    parser.add_argument("--deadline-minutes", type=float, help="start no job after this many minutes")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="Dask's progress bar (default: when stdout is a terminal)")
    parser.add_argument("--dry-run", action="store_true", help="print the jobs and exit")
    parser.add_argument("--notebook", type=Path, help="run this notebook once per -p setting (papermill)")
    parser.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("KEY", "V1,V2"),
                        help="notebook parameter values (YAML; ';' separates values that hold commas)")
    parser.add_argument("--profile", default="eval", choices=["quick", "eval", "full"],
                        help="notebook profile (default eval)")
    args = parser.parse_args(options)
    parallel = args.parallel or default_parallel()
    grid = None
    try:
        if parallel < 1:
            raise ValueError(f"--parallel must be ≥ 1, got {parallel}")
        if args.notebook:
            if command:
                raise ValueError("give either --notebook or a command after --, not both")
            grid = parse_param_grid(args.param) if args.param else [{}]
            _validate_grid(args.notebook, grid, args.profile)
            jobs = notebook_jobs(args.notebook, grid, args.profile, args.logs)
        else:
            jobs = build_jobs(command, parse_seeds(args.seeds), parse_vary(args.vary))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    threads = args.threads or max(1, default_parallel() // parallel)
    if args.dry_run:
        for job in jobs:
            print(f"{job.name}: {shlex.join(job.argv)}")
        return 0
    print(f"{len(jobs)} job(s), {'on ' + args.scheduler if args.scheduler else f'{parallel} at a time'}, "
          f"OMP_NUM_THREADS={threads}; logs in {args.logs}", flush=True)
    progress = sys.stdout.isatty() if args.progress is None else args.progress
    run_jobs(jobs, parallel, threads, args.logs, None if args.deadline_minutes is None else 60 * args.deadline_minutes,
             echo=lambda m: print(m, flush=True), scheduler=args.scheduler, gpu=args.gpu, progress=progress)
    table = summary(jobs)
    write_csv(args.logs / "sweep_summary.csv", table)
    if grid is not None:
        results = notebook_results(args.notebook, grid, args.profile, jobs)
        write_csv(args.logs / "sweep_results.csv", results)
        print(f"{len(results)} result rows from {len(grid)} setting(s): {args.logs / 'sweep_results.csv'}")
    counts = table["status"].value_counts()
    print(", ".join(f"{n} {status}" for status, n in counts.items()) + f"; summary: {args.logs / 'sweep_summary.csv'}")
    if counts.get("failed", 0):
        return 1
    return 0 if counts.get("done", 0) == len(jobs) else INCOMPLETE


if __name__ == "__main__":
    raise SystemExit(main())
