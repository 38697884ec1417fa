"""``python -m fusion_core compare``: several methods on one data set, scored under one convention.

The run researchers do before every paper (VIFB-style), built on the raw-results engine
(:mod:`fusion_core.engine`), not on a cache of its own::

    <out>/raw/<role>/<method>[_<rule>].csv           per-image rows (the engine's raw files; resumable)
    <out>/fused/<role>/<raw name>/<checksum>/<stem>.png   the fused images of the grid pairs only
    <out>/summary_<role>.csv, summary_<role>.md      mean ± std and rank per metric
    <out>/grid_<role>.png                            rows = a few pairs; columns = ir, vis, each method
    <out>/compare.json                               the convention the folder was scored under

``role`` is the data set's name, with ``_first<N>`` / ``_crop<H>x<W>`` appended for ``--max-pairs`` / ``--crop``,
so a quick look on a few cropped pairs never mixes its rows into the whole set's files.

Everything is checked before anything is written: methods, rules, convention, metrics, every pair's images
(headers), the weights (their checksums key the raw files), and that raw files already in ``<out>`` hold the
requested metrics. An interrupt (Ctrl-C, a killed job) loses at most the pair in progress of each method;
rerunning the same command reads complete files as they are and resumes the others (the engine's
``.partial.csv``). ``jobs`` > 1 runs methods in forked processes with one torch thread each (``jobs`` = 1: this
process, one thread), so every value is the same for any ``jobs``.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd
import torch

from . import data, engine
from .io import save_figure, write_csv, write_json, write_text

GRID_PAIRS = 3  # rows of the qualitative grid when no stems are given
RANK_DIGITS = 10  # significant digits of the means that decide a rank (summary)


@dataclass(frozen=True)
class Job:
    """One method's share of a run: its source and the rules it runs with (``(None,)`` without rules)."""

    source: engine.Source
    rules: tuple[str | None, ...]

    @property
    def label(self) -> str:
        return self.source.key if self.rules == (None,) else f"{self.source.key} ({', '.join(self.rules)})"


@dataclass(frozen=True)
class Plan:
    """A checked run: nothing in it can fail for bad input once it exists."""

    jobs: tuple[Job, ...]
    dataset: engine.DataSet
    metrics: tuple[str, ...]
    directions: dict[str, str]  # metric → "higher" | "lower" is better
    convention: str
    out: Path
    grid: tuple[data.Pair, ...]  # the rows of the grid figure


# --------------------------------------------------------------------------- parsing and checking

def parse_list(text: str | None, what: str) -> list[str]:
    """``"a,b, c"`` → ``["a", "b", "c"]``; a name given twice is an error (it would be computed twice)."""
    names = [n.strip() for n in (text or "").split(",") if n.strip()]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"{what}: {', '.join(twice)} given more than once")
    return names


def parse_rules(text: str | None, methods: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """``"didfuse=sal+cam,didfuse=sum,res2netfuse=l1"`` →
    ``{"didfuse": ("sal+cam", "sum"), "res2netfuse": ("l1",)}``."""
    rules: dict[str, list[str]] = {}
    for item in (i.strip() for i in (text or "").split(",") if i.strip()):
        method, sep, rule = (part.strip() for part in item.partition("="))
        if not sep or not method or not rule:
            raise ValueError(f"--rules '{item}': write METHOD=RULE (e.g. didfuse=sal+cam)")
        if method not in methods:
            raise ValueError(f"--rules '{item}': method '{method}' is not among --methods ({', '.join(methods)})")
        if rule in rules.setdefault(method, []):
            raise ValueError(f"--rules '{item}': given more than once")
        rules[method].append(rule)
    return {method: tuple(names) for method, names in rules.items()}


def parse_crop(text: str | None) -> tuple[int, int] | None:
    """``"64x96"`` → (64, 96) = (height, width) of the top-left window; None keeps the images whole."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*[x×]\s*(\d+)\s*", text)
    if not match or 0 in (size := (int(match[1]), int(match[2]))):
        raise ValueError(f"--crop '{text}': write HEIGHTxWIDTH in pixels, e.g. 128x128")
    return size


def role_name(dataset: str, max_pairs: int | None, crop: tuple[int, int] | None) -> str:
    """The folder of a run's raw files: the data set's name, plus what makes the rows differ from the whole set's."""
    return dataset + (f"_first{max_pairs}" if max_pairs else "") + (f"_crop{crop[0]}x{crop[1]}" if crop else "")


def metric_directions(convention: str, metrics: Sequence[str] | None) -> tuple[tuple[str, ...], dict[str, str]]:
    """The columns (default: the convention's set) and which way each is better, from the metric registry
    (``@metric(name, "higher" | "lower", ...)``: e.g. MSE, Nabf, CE are better when lower)."""
    from .metrics import METRICS, get_convention

    conv = get_convention(convention)
    columns = tuple(metrics) if metrics else conv.default_columns
    unknown = [name for name in columns if conv.column(name).metric not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric {', '.join(map(repr, unknown))} for convention '{conv.name}'; its columns: "
                         f"{', '.join(conv.columns)}; other registered metrics: {', '.join(sorted(METRICS))}")
    return columns, {name: METRICS[conv.column(name).metric].direction for name in columns}


def grid_pairs(pairs: Sequence[data.Pair], stems: Sequence[str] | None) -> tuple[data.Pair, ...]:
    """The grid's rows: the named stems, else :data:`GRID_PAIRS` pairs spread evenly over the set (first, middle,
    last)."""
    by_stem = {p.stem: p for p in pairs}
    if stems:
        unknown = [s for s in stems if s not in by_stem]
        if unknown:
            raise ValueError(f"--grid-pairs: no pair with stem {', '.join(map(repr, unknown))} in the data set")
        return tuple(by_stem[s] for s in stems)
    count = min(GRID_PAIRS, len(pairs))
    picks = sorted({round(i * (len(pairs) - 1) / max(count - 1, 1)) for i in range(count)})
    return tuple(pairs[i] for i in picks)


def make_plan(methods: Sequence[str], dataset: str, convention: str, out: str | Path, *,
              metrics: Sequence[str] | None = None, rules: dict[str, tuple[str, ...]] | None = None,
              crop: tuple[int, int] | None = None, max_pairs: int | None = None,
              grid: Sequence[str] | None = None, device: str = "cpu") -> Plan:
    """Check every input (see the module docstring) and build the sources; writes nothing."""
    from .methods import method_info

    if not methods:
        raise ValueError("--methods: give at least one method (see `python -m fusion_core methods`)")
    if max_pairs is not None and max_pairs < 1:
        raise ValueError(f"--max-pairs {max_pairs}: give a positive number of pairs")
    columns, directions = metric_directions(convention, metrics)
    pairs = data.list_pairs(dataset)[:max_pairs]
    for pair in pairs:
        data.check_pair(pair)  # unreadable or mismatched images: one DataError naming the file
    rules, shown = rules or {}, grid_pairs(pairs, grid)
    jobs = []
    for method in methods:
        info = method_info(method)  # unknown: KeyError listing the registered methods
        unknown = [r for r in rules.get(method, ()) if r not in info.rules]
        if unknown and info.rules:
            raise ValueError(f"--rules: method '{method}' has no rule {', '.join(map(repr, unknown))}; its rules: "
                             f"{', '.join(info.rules)}")
        wanted = rules.get(method) or info.rules[:1]  # a learned method's default rule comes first
        source = engine.method_source(method, rules=wanted or None, device=device)  # classical + rule: ValueError
        jobs.append(Job(source, tuple(source.wanted(list(wanted) or [None]))))
    plan = Plan(tuple(jobs), engine.DataSet(role_name(dataset, max_pairs, crop), tuple(pairs), crop), columns,
                directions, convention, Path(out), shown)
    check_existing(plan)
    return plan


def check_existing(plan: Plan) -> None:
    """Files already in ``out`` must come from the same convention and hold every requested metric: the engine
    keys raw files by pair and weights checksum only, so a file scored otherwise would be read as complete."""
    stamp = plan.out / "compare.json"
    if stamp.is_file():
        scored = json.loads(stamp.read_text()).get("convention")
        if scored != plan.convention:
            raise ValueError(f"{stamp}: this folder was scored under convention '{scored}', not "
                             f"'{plan.convention}'; choose another --out")
    for job in plan.jobs:
        for rule in job.rules:
            path = engine.raw_path(plan.out, job.source, plan.dataset.role, rule)
            for file in (path, engine.partial_path(path)):
                if file.is_file():
                    lacking = [m for m in plan.metrics if m not in engine.read_raw(file).columns]
                    if lacking:
                        raise ValueError(f"{file}: computed without {', '.join(lacking)}; remove it (and its "
                                         ".partial.csv) to recompute, or choose another --out")


# --------------------------------------------------------------------------- computing

def fused_path(out: Path, source: engine.Source, role: str, rule: str | None, stem: str) -> Path:
    """Where a grid pair's fused image is kept: by raw file and weights checksum (other weights, other image)."""
    name = engine.raw_path(out, source, role, rule).stem
    return out / "fused" / role / name / source.checksum / f"{stem}.png"


def keeping_grid_images(job: Job, plan: Plan) -> engine.Source:
    """The job's source, writing the fused images of the grid pairs as the engine fuses them (no second fusing)."""
    stems, role, out = {p.stem for p in plan.grid}, plan.dataset.role, plan.out
    source = job.source

    def fuse(images: data.PairImages, rules):
        fused = source.fuse(images, rules)
        if images.pair.stem in stems:
            for rule, image in fused.items():
                data.write_image(fused_path(out, source, role, rule, images.pair.stem), image, images.cbcr)
        return fused

    return dataclasses.replace(source, fuse=fuse)


def run_job(job: Job, plan: Plan, log: Callable[[str], None] | None = None) -> None:
    """Compute the job's raw files (complete ones untouched), then fuse any grid image still missing (a file
    complete before this run, or other grid pairs)."""
    source = keeping_grid_images(job, plan)
    engine.compute(source, plan.dataset, list(job.rules), metrics=plan.metrics, convention=plan.convention,
                   out=plan.out, log=log)
    for pair in plan.grid:
        need = [r for r in job.rules if not fused_path(plan.out, job.source, plan.dataset.role, r, pair.stem).is_file()]
        if need:
            source.fuse(plan.dataset.images(pair), need)


_PLAN: Plan | None = None  # the plan forked workers inherit (sources hold closures: not picklable)


def _worker_init() -> None:
    # One thread per process; Ctrl-C and `kill` go to the parent, which terminates the pool (the workers' partial files
    # are written atomically, so a terminated worker leaves only complete rows).
    torch.set_num_threads(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the parent's SIGTERM handler is not for workers


def _log(line: str) -> None:
    print(line, flush=True)  # one line per fused pair, as it happens (also from the forked workers)


def _worker(index: int) -> None:
    run_job(_PLAN.jobs[index], _PLAN, log=_log)


def slowest_first(jobs: Sequence[Job]) -> list[int]:
    """Job indices by measured seconds per pair (``benchmarks/results/fuse_speed_cpu.csv``), slowest first and
    unmeasured ones before all: N workers then finish close together."""
    from .methods import measured_seconds

    seconds = measured_seconds()
    return sorted(range(len(jobs)), key=lambda i: -seconds.get(jobs[i].source.method, math.inf))


def compute_all(plan: Plan, jobs: int = 1) -> None:
    """Run every job: in this process with one torch thread (``jobs`` = 1), else in ``jobs`` forked processes."""
    global _PLAN
    order = slowest_first(plan.jobs)
    jobs = min(jobs, len(order))
    if jobs <= 1 or not hasattr(os, "fork"):
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            for index in order:
                run_job(plan.jobs[index], plan, log=_log)
        finally:
            torch.set_num_threads(threads)
        return
    import multiprocessing

    _PLAN = plan
    try:
        with multiprocessing.get_context("fork").Pool(jobs, initializer=_worker_init) as pool:
            pool.map(_worker, order, chunksize=1)
    finally:
        _PLAN = None


# --------------------------------------------------------------------------- summary

def summarise(rows: pd.DataFrame, metrics: Sequence[str], directions: dict[str, str]) -> pd.DataFrame:
    """One row per (method, rule) in order of appearance: ``n``, then per metric ``<m>_mean``, ``<m>_std`` (sample
    std over the finite values; NaN rows, e.g. SCD of a flat image, left out) and ``<m>_rank``: 1 = best by the
    metric's direction, ties share the better rank (1, 1, 3). Means equal to :data:`RANK_DIGITS` significant digits
    tie: the order of a float sum must not decide a rank (0.2 + 0.4 ≠ 0.1 + 0.5 in the last bit)."""
    groups = rows.groupby(["source", "rule"], sort=False)
    table = groups.size().rename("n").reset_index().rename(columns={"source": "method"})
    for m in metrics:
        mean, std = groups[m].mean().to_numpy(), groups[m].std(ddof=1).to_numpy()
        table[f"{m}_mean"], table[f"{m}_std"] = mean, std
        rounded = table[f"{m}_mean"].map(lambda v: float(f"{v:.{RANK_DIGITS}g}"))
        table[f"{m}_rank"] = rounded.rank(method="min", ascending=directions[m] == "lower").astype("Int64")
    return table


def _number(value: float) -> str:
    return "nan" if math.isnan(value) else f"{value:.4g}" if abs(value) >= 1e4 else f"{value:.4f}"


def summary_markdown(table: pd.DataFrame, metrics: Sequence[str], directions: dict[str, str],
                     caption: str) -> str:
    """The summary as a Markdown table: one cell ``mean ± std (rank)`` per metric; ↑/↓: larger/smaller is better."""
    from .report import to_markdown

    shown = pd.DataFrame({"method": table["method"], "rule": table["rule"]})
    for m in metrics:
        arrow = "↑" if directions[m] == "higher" else "↓"
        shown[f"{m} {arrow}"] = [
            f"{_number(mean)} ± {_number(std)} ({'-' if pd.isna(rank) else rank})"
            for mean, std, rank in zip(table[f"{m}_mean"], table[f"{m}_std"], table[f"{m}_rank"])]
    legend = "mean ± std over the pairs (rank: 1 = best; ↑ larger is better, ↓ smaller is better)"
    return f"**{caption}**\n\n{legend}\n\n" + to_markdown(shown)


# --------------------------------------------------------------------------- figure

def grid_figure(plan: Plan):
    """Rows = the grid pairs; columns = ir, vis (in colour when it has colour), then each method's fused image."""
    from .report import image_grid

    rows, labels = [], [job.label for job in plan.jobs]
    for pair in plan.grid:
        images = plan.dataset.images(pair)
        row = [images.ir, data.to_uint8(images.vis, images.cbcr) / 255.0]
        for job in plan.jobs:
            row += [data.read_array(fused_path(plan.out, job.source, plan.dataset.role, rule, pair.stem))
                    for rule in job.rules]
        rows.append(row)
    columns = ["ir", "vis"] + [f"{job.source.key}" + (f" ({r})" if r else "") for job in plan.jobs for r in job.rules]
    return image_grid(rows, [pair.name for pair in plan.grid], columns,
                      title=f"{plan.dataset.role}: {', '.join(labels)}")


# --------------------------------------------------------------------------- the command

def run(plan: Plan, jobs: int = 1) -> tuple[pd.DataFrame, str]:
    """Compute what is missing, write the summary (CSV + Markdown) and the grid; returns (table, Markdown)."""
    write_json(plan.out / "compare.json", {"convention": plan.convention})
    compute_all(plan, jobs)
    frames = []
    for job in plan.jobs:  # one call per job: collect applies its rules to every source it is given
        result = engine.collect([job.source], [plan.dataset], list(job.rules), metrics=plan.metrics,
                                convention=plan.convention, out=plan.out, compute=False, verify=None)
        if result.missing:
            raise RuntimeError(f"raw files missing after computing: {', '.join(result.missing)}")
        frames.append(result.rows)
    table = summarise(pd.concat(frames, ignore_index=True), plan.metrics, plan.directions)
    role = plan.dataset.role
    crop = f", top-left {plan.dataset.crop[0]}x{plan.dataset.crop[1]} crops" if plan.dataset.crop else ""
    caption = (f"{role}: {len(plan.dataset.pairs)} pairs{crop}, convention '{plan.convention}', "
               f"{len(table)} methods")
    markdown = summary_markdown(table, plan.metrics, plan.directions, caption)
    write_csv(plan.out / f"summary_{role}.csv", table)
    weights = [f"- {job.source.key}: weights checksum {job.source.checksum}" for job in plan.jobs
               if job.source.checksum != job.source.key]
    write_text(plan.out / f"summary_{role}.md", markdown + ("\n" + "\n".join(weights) + "\n" if weights else ""))
    import matplotlib.pyplot as plt

    figure = grid_figure(plan)
    save_figure(figure, plan.out / f"grid_{role}.png")
    plt.close(figure)
    return table, markdown


def _stop(signum, frame) -> None:
    # A background run ignores SIGINT (POSIX: jobs started with `&` by a non-interactive shell), so `kill PID` is
    # how it is stopped: the same clean stop as Ctrl-C (workers terminated, finished pairs kept).
    raise KeyboardInterrupt


def compare_command(args) -> int:
    """CLI entry: check, compute (resumable), print the summary; Ctrl-C keeps every finished pair."""
    import time

    from .memory import keep_freed_memory
    from .metrics.cli import default_jobs

    if args.jobs is not None and args.jobs < 1:
        raise ValueError(f"--jobs {args.jobs}: give a positive number of processes")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: CUDA is not available on this machine")
    methods = parse_list(args.methods, "--methods")
    crop = parse_crop(args.crop)
    out = Path(args.out or Path("build") / "compare" / f"{args.dataset}_{args.convention}")
    plan = make_plan(methods, args.dataset, args.convention, out, metrics=parse_list(args.metrics, "--metrics"),
                     rules=parse_rules(args.rules, methods), crop=crop, max_pairs=args.max_pairs,
                     grid=parse_list(args.grid_pairs, "--grid-pairs"), device=args.device)
    jobs = 1 if args.device != "cpu" else (args.jobs or default_jobs())
    print(f"compare {len(plan.jobs)} methods on {plan.dataset.role} ({len(plan.dataset.pairs)} pairs), convention "
          f"'{plan.convention}', {jobs} process{'es' * (jobs > 1)} -> {out}", flush=True)
    keep_freed_memory()
    signal.signal(signal.SIGTERM, _stop)
    start = time.perf_counter()
    try:
        _, markdown = run(plan, jobs)
    except KeyboardInterrupt:
        print(f"\ninterrupted: finished pairs are kept in {out / 'raw' / plan.dataset.role}; "
              "rerun the same command to resume", flush=True)
        return 130
    print(markdown)
    role = plan.dataset.role
    print(f"{time.perf_counter() - start:.1f} s; wrote {out / f'summary_{role}.csv'}, {out / f'summary_{role}.md'}, "
          f"{out / f'grid_{role}.png'}, per-image rows in {out / 'raw' / role}")
    return 0
