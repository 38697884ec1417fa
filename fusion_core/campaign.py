"""The GPU campaign: one command to run the moment a GPU machine is lent (sized for one run of ≤ 9 minutes).

    make gpu-wheels gpu-data                      # here, once: wheels and data that travel with the tree (.carry/)
    make gpu-campaign OUT=/path/to/out            # there: python3 -m fusion_core.campaign OUT
    python -m fusion_core.campaign OUT --tiny     # the CPU dry run the tests do (tiny sizes, same code paths)
    python -m fusion_core.campaign --plan         # the steps, their budgets, and what would travel

First it installs what the machine lacks from ``.carry/wheels`` (``pip install --no-index --target``), and
points ``FUSION_DATA`` at ``.carry/data`` when that holds the data (and ``FUSION_DATA`` is unset). Then the
steps of :data:`STEPS` run in priority order, each within its budget (its own cap and what is left of
``--minutes``), and each packs what it produced into ``OUT/NN_<step>.tar.gz`` the moment it ends, so a
run cut off keeps every finished step. ``OUT/campaign.json`` (rewritten after every step) says per step:
status, seconds, archive, details. Unpack the archives at the repository root (``tar -xzf OUT/NN_x.tar.gz
-C .``): paths inside are relative to it, so checkpoints land in ``checkpoints/<paper>/`` and raw
per-image files in ``results/<paper>/raw_paper/``, where the eval profile picks them up
(``make reproduce NB=didfuse PARAMS="protocol=paper"``).

Steps (priority order):

1. ``didfuse_train`` — DIDFuse with the paper's protocol (``didfuse.train --protocol paper --device cuda``:
   128² crops, 120 epochs, batch 24), seeds 0–24 of the base model packed on the GPU through
   :mod:`fusion_core.sweep` (``--parallel`` at once), each job in ``--max-minutes`` chunks and no job
   started after half the step's budget, so the step ends in time; unfinished runs carry their resume
   state back (``NAME.resume.pt``) and the next campaign continues them.
2. ``didfuse_raw`` — per-image raw results of every complete paper-protocol model on the test sets whose
   data travelled (``raw_paper/``; rule sal+cam, and ``sum`` for seed 0), one sweep job per seed.
3. ``cuda_timings`` — metric suite pairs/s at 768×576 (``benchmarks/metrics_speed.py``) and ``fuse``
   frames/s of each learned method at 768×576.
4. ``didfuse_ablations_train`` — Table IV's exp1–exp5, seeds 0–4 (what still comes back: the device tool
   returns at most 8 files of 16 MiB, 64 MiB together; a step's archive is split into parts of 15 MiB and
   resume states are the first left out), with whatever time is left.

Later papers add their ``paper``-protocol step with :func:`step` in a module listed in :data:`STEP_MODULES`.
The module imports only the standard library at the top: it must start where nothing is installed yet.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
CARRY = REPO / ".carry"
SITE = Path("/tmp/fusion_core_site")
ARCHIVE_LIMIT = 15 * 2**20  # the device tool returns at most 8 files from OUT, 16 MiB each, 64 MiB together
RETURN_FILES, RETURN_BYTES = 8, 62 * 2**20
RESERVE_S = 20.0  # left for packing the last step
# Modules (beyond the ones in this file) whose import registers more steps; a paper appends its own.
STEP_MODULES: list[str] = []
# Python packages the GPU machine lacks (its python3 has torch, numpy, scipy, pandas, opencv, scikit-image,
# tqdm, ...): the Makefile's gpu-wheels target downloads exactly these, pinned as in requirements.txt.
CARRIED_WHEELS = ("kornia", "kornia_rs", "pytorch_msssim", "pywt", "dtcwt", "dask", "distributed", "partd", "locket",
                  "tblib", "zict", "tornado")
# Data sets the steps read; the Makefile's gpu-data target copies them to .carry/data (tno42: 3 pairs).
# nir_country52 (9.5 MiB) and tno40 (22 MiB) do not fit next to the tree and the wheels (64 MiB a call), so the
# raw step covers test_flir there; the other test sets' raw_paper files are computed here from the checkpoints.
CARRIED_DATA = ("flir_train180", "flir_test40")


# --------------------------------------------------------------------------- steps

@dataclass
class Context:
    out: Path
    tiny: bool
    device: str
    parallel: int
    ends_at: float  # time.monotonic() by which the last step must have packed
    env: dict = field(default_factory=dict)  # for subprocesses: PYTHONPATH (wheels, repo), FUSION_DATA
    work: Path = REPO / "build" / "campaign"

    def remaining(self) -> float:
        return self.ends_at - time.monotonic()

    def run(self, argv: list[str], log: Path, timeout: float) -> int:
        """One command (``python`` → this interpreter) from the repository root, output to ``log``."""
        argv = [sys.executable, *argv[1:]] if argv[0] == "python" else argv
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a") as handle:
            handle.write(f"$ {' '.join(argv)}\n")
            handle.flush()
            try:
                return subprocess.run(argv, cwd=REPO, env=self.env, stdout=handle, stderr=subprocess.STDOUT,
                                      timeout=max(timeout, 1.0)).returncode
            except subprocess.TimeoutExpired:
                handle.write(f"stopped after {timeout:.0f} s (campaign budget)\n")
                return 124


@dataclass
class Step:
    name: str
    minutes: float  # the most this step may take (it also gets no more than what is left)
    run: Callable[[Context, float], tuple[list[Path], dict]]  # (ctx, seconds) → (files to pack, details)


STEPS: list[Step] = []


def step(name: str, minutes: float):
    """Register ``fn(ctx, seconds) -> (paths to pack, details)`` as the next campaign step."""
    def register(fn):
        STEPS.append(Step(name, minutes, fn))
        return fn
    return register


def _sweep_jobs(ctx: Context, jobs, logs: Path, seconds: float, deadline_fraction: float = 0.5) -> dict:
    from . import sweep

    threads = max(1, (os.cpu_count() or 1) // ctx.parallel)
    sweep.run_jobs(jobs, ctx.parallel, threads, logs, deadline_s=deadline_fraction * seconds, gpu=False,
                   echo=lambda message: print(time.strftime("%H:%M:%S"), message, flush=True))
    table = sweep.summary(jobs)
    logs.mkdir(parents=True, exist_ok=True)
    table.to_csv(logs / "sweep_summary.csv", index=False)
    return {"jobs": len(jobs), **{status: int(n) for status, n in table["status"].value_counts().items()}}


def _didfuse_checkpoints(ctx: Context) -> tuple[Path, str, list[str]]:
    """(checkpoint folder, training protocol, extra trainer options) of this campaign's DIDFuse trainings."""
    if ctx.tiny:  # the quick trainer's settings in the campaign's own folder: the quick notebooks take every
        # complete model of build/quick/checkpoints, so a dry run there would change what make test prints
        return ctx.work / "checkpoints" / "didfuse", "quick", ["--epochs", "2", "--max-pairs", "4"]
    return REPO / "checkpoints" / "didfuse", "paper", []


def _train_didfuse(ctx: Context, seconds: float, variants: list[str], name: str,
                   seeds: list[int]) -> tuple[list[Path], dict]:
    from . import sweep
    from .papers.didfuse.train import checkpoint_name
    from .train import progress_of

    folder, protocol, extra = _didfuse_checkpoints(ctx)
    chunk = max(0.45 * seconds / 60, 0.05)
    command = ["python", "-m", "fusion_core.papers.didfuse.train", "--protocol", protocol, "--device", ctx.device,
               "--out", str(folder), "--no-progress", "--max-minutes", f"{chunk:.2f}", *extra]
    jobs = sweep.build_jobs(command, seeds, [("variant", variants)])
    logs = ctx.work / name
    details = _sweep_jobs(ctx, jobs, logs, seconds)
    files = [logs]
    for variant in variants:
        for seed in seeds:
            checkpoint = folder / checkpoint_name(protocol, variant, seed)
            stem = checkpoint.stem
            progress = progress_of(checkpoint)
            if progress is None:
                continue
            files += [checkpoint, checkpoint.with_suffix(".json"), folder / f"{stem}_history.csv"]
            if progress[0] < progress[1]:  # unfinished: its resume state travels back so the next lease continues
                files.append(folder / f"{stem}.resume.pt")
    done = [progress_of(p) for p in files if p.suffix == ".pt" and not p.name.endswith(".resume.pt")]
    details["complete_models"] = sum(1 for d in done if d and d[0] == d[1])
    return files, details


@step("didfuse_train", minutes=4.0)
def didfuse_train(ctx: Context, seconds: float):
    return _train_didfuse(ctx, seconds, ["base"], "didfuse_train", [90, 91] if ctx.tiny else list(range(25)))


def _roles_with_data(roles) -> list[str]:
    from . import data

    present = []
    for role in roles:
        try:
            pairs = data.load_split("didfuse", role)
        except data.DataError:
            continue
        if all(p.ir.is_file() and p.vis.is_file() for p in pairs):
            present.append(role)
    return present


@step("didfuse_raw", minutes=2.5)
def didfuse_raw(ctx: Context, seconds: float):
    from . import sweep
    from .papers.didfuse import experiment as exp
    from .papers.didfuse.train import discover

    folder, protocol, _ = _didfuse_checkpoints(ctx)
    models = [m for m in discover(folder, protocol) if m.variant == "base" and (not ctx.tiny or m.seed >= 90)]
    roles = _roles_with_data(exp.TEST_SETS)
    out = ctx.work / "didfuse_results" if ctx.tiny else REPO / "results" / "didfuse"
    notebook_profile = "quick" if ctx.tiny else "full"
    command = ["python", "-m", "fusion_core.papers.didfuse.experiment", "raw", "--profile", notebook_profile,
               "--protocol", "paper", "--variant", "base", "--sets", ",".join(roles), "--threads", "1",
               "--out", str(out), *(["--checkpoints", str(folder)] if ctx.tiny else [])]
    jobs = [sweep.Job(f"raw_seed{m.seed}", [sys.executable, *command[1:], "--seeds", str(m.seed), "--rules",
                                            exp.PAPER_RULE + (",sum" if m.seed in (0, 90) else "")])
            for m in models]
    logs = ctx.work / "didfuse_raw"
    details = {"roles": roles, "models": len(models)}
    if jobs and roles:
        details.update(_sweep_jobs(ctx, jobs, logs, seconds, deadline_fraction=0.7))
    raw = [p for p in out.glob("raw*/**/*.csv") if not p.name.endswith(".partial.csv")]
    return [logs, *raw], {**details, "raw_files": len(raw)}


@step("cuda_timings", minutes=1.5)
def cuda_timings(ctx: Context, seconds: float):
    work = ctx.work / "timings"
    work.mkdir(parents=True, exist_ok=True)
    speed = ["python", "benchmarks/metrics_speed.py", "--device", ctx.device, "--no-extra", "--out",
             str(work / "metrics_speed.csv")]
    speed += ["--pairs", "1", "--repeats", "1", "--conventions", "didfuse"] if ctx.tiny else \
        ["--pairs", "3", "--repeats", "3", "--batch", "64"]
    code = ctx.run(speed, work / "metrics_speed.log", 0.6 * seconds)
    fps = fuse_fps(ctx, work / "fuse_fps.csv")
    return [work], {"metrics_speed_exit": code, "fuse_fps": fps}


@step("didfuse_ablations_train", minutes=9.0)
def didfuse_ablations_train(ctx: Context, seconds: float):
    if ctx.tiny:
        return _train_didfuse(ctx, seconds, ["exp5"], "didfuse_ablations_train", [90])
    # 25 models (1.06 MB each) is what still comes back next to step 1's 25 (return limit: 64 MiB)
    return _train_didfuse(ctx, seconds, ["exp1", "exp2", "exp3", "exp4", "exp5"], "didfuse_ablations_train",
                          list(range(5)))


def fuse_fps(ctx: Context, path: Path) -> dict:
    """Frames per second of each learned method's ``fuse`` at 768×576 (tiny: 64×64), after a warm-up."""
    import torch

    from .methods import build_method

    folder, protocol, _ = _didfuse_checkpoints(ctx)
    didfuse = sorted(folder.glob(f"didfuse_{protocol}_seed*.pt")) or sorted(
        (REPO / "checkpoints" / "didfuse").glob("didfuse_reduced_seed*.pt"))
    methods = {"didfuse": didfuse[0] if didfuse else None, "res2netfuse": None}
    h, w, frames = (64, 64, 2) if ctx.tiny else (576, 768, 50)
    ir, vis = (torch.rand(1, 1, h, w, device=ctx.device) for _ in range(2))
    rows = {}
    for name, weights in methods.items():
        fuser = build_method(name, weights=weights, device=ctx.device)
        with torch.no_grad():
            for _ in range(2):
                fuser(ir, vis)
            if ctx.device == "cuda":
                torch.cuda.synchronize()
            tick = time.perf_counter()
            for _ in range(frames):
                fuser(ir, vis)
            if ctx.device == "cuda":
                torch.cuda.synchronize()
        rows[name] = round(frames / (time.perf_counter() - tick), 2)
    lines = ["method,height,width,frames,fps,device,weights"] + [
        f"{name},{h},{w},{frames},{fps},{ctx.device},{methods[name] and Path(methods[name]).name or 'default'}"
        for name, fps in rows.items()]
    path.write_text("\n".join(lines) + "\n")
    return rows


# --------------------------------------------------------------------------- packing and running

def _files(paths: list[Path]) -> list[Path]:
    """Files under ``paths`` (folders expanded), each once, resolved, in order."""
    found = []
    for path in (Path(p).resolve() for p in paths):
        found += sorted(q for q in path.rglob("*") if q.is_file()) if path.is_dir() else [path] if path.is_file() else []
    return list(dict.fromkeys(found))


def _arcname(path: Path, out: Path) -> str:
    """Relative to the repository root (files unpack where the eval profile reads them); else to ``out``."""
    return str(path.relative_to(REPO if path.is_relative_to(REPO) else out))


def pack(out: Path, stem: str, paths: list[Path], budget: dict) -> tuple[list[str], int, list[str]]:
    """Pack ``paths`` (stored relative to the repository root) into ``out/stem.tar.gz``, or ``stem.partK.tar.gz``
    parts of at most :data:`ARCHIVE_LIMIT`, each written atomically, within ``budget`` (files and bytes that
    may still come back); returns (archive names, bytes, files left out). Resume states go last, so they
    are the first left out.
    """
    files = sorted(_files(paths), key=lambda p: p.name.endswith(".resume.pt"))
    groups, current, size = [], [], 0
    for path in files:
        if current and size + path.stat().st_size > ARCHIVE_LIMIT:
            groups.append(current)
            current, size = [], 0
        current.append(path)
        size += path.stat().st_size
    if current:
        groups.append(current)
    names, total, left = [], 0, []
    for index, group in enumerate(groups, 1):
        name = f"{stem}.tar.gz" if len(groups) == 1 else f"{stem}.part{index}.tar.gz"
        partial = out / f"{name}.tmp"
        with tarfile.open(partial, "w:gz") as tar:
            for path in group:
                tar.add(path, arcname=_arcname(path, out))
        written = partial.stat().st_size
        if budget["files"] < 1 or written > budget["bytes"]:
            partial.unlink()
            left += [_arcname(p, out) for p in group]
            continue
        partial.replace(out / name)
        budget["files"] -= 1
        budget["bytes"] -= written
        names.append(name)
        total += written
    return names, total, left


def install_wheels(wheels: Path, target: Path = SITE) -> str:
    """Install the carried wheels into ``target`` when a package they hold is missing; returns what happened."""
    missing = [name for name in CARRIED_WHEELS if importlib.util.find_spec(name) is None]
    if not missing:
        return "nothing missing"
    found = sorted(wheels.glob("*.whl")) if wheels.is_dir() else []
    if not found:
        return f"missing {', '.join(missing)} and no wheels in {wheels} (run make gpu-wheels)"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                    "--no-cache-dir", "--upgrade", "--target", str(target), *map(str, found)], check=True)
    sys.path.insert(0, str(target))
    importlib.invalidate_caches()
    return f"installed {len(found)} wheels into {target} for {', '.join(missing)}"


def carry_data(target: Path = CARRY / "data") -> int:
    """Copy the data sets the steps read to ``target`` (tno42: the three 768×576 pairs the metric timing uses)."""
    from . import data

    root = data.data_root()
    target.mkdir(parents=True, exist_ok=True)
    for name in CARRIED_DATA:
        shutil.copytree(root / name, target / name, dirs_exist_ok=True)
    pairs = [p for p in data.list_pairs("tno42") if data.image_size(p.ir) == (576, 768)][:3]
    for pair in pairs:
        for path in (pair.ir, pair.vis):
            destination = target / path.relative_to(root)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, destination)
    return sum(p.stat().st_size for p in target.rglob("*") if p.is_file())


def travel_bytes() -> int:
    """What a device call carries: tracked and untracked-not-ignored files, plus ``.carry``."""
    listing = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True)
    files = [REPO / name for name in listing.stdout.decode().split("\0") if name]
    carried = [p for p in CARRY.rglob("*") if p.is_file()] if CARRY.is_dir() else []
    return sum(p.stat().st_size for p in files + carried if p.is_file())


def run_campaign(out: Path, minutes: float = 9.0, tiny: bool = False, only: list[str] | None = None,
                 parallel: int | None = None) -> int:
    started = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    note = install_wheels(CARRY / "wheels") if not tiny else "tiny dry run: no install"
    paths = [str(SITE)] if SITE.is_dir() and str(SITE) in sys.path else []
    env["PYTHONPATH"] = os.pathsep.join([*paths, str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    os.environ["PYTHONPATH"] = env["PYTHONPATH"]  # Dask workers start from this environment
    if "FUSION_DATA" not in env and (CARRY / "data").is_dir():
        env["FUSION_DATA"] = os.environ["FUSION_DATA"] = str(CARRY / "data")
    for module in STEP_MODULES:
        importlib.import_module(module)

    import torch

    device = "cuda" if torch.cuda.is_available() and not tiny else "cpu"
    cores = os.cpu_count() or 1
    ctx = Context(out, tiny, device, parallel or (min(12, cores) if device == "cuda" else max(1, min(2, cores))),
                  started + 60 * minutes - RESERVE_S, env,
                  out / "work" if tiny else REPO / "build" / "campaign")
    report = {"started": time.strftime("%FT%T%z"), "minutes": minutes, "tiny": tiny, "device": device,
              "gpu": torch.cuda.get_device_name() if device == "cuda" else None, "wheels": note,
              "data": env.get("FUSION_DATA", "default"), "parallel": ctx.parallel, "steps": []}
    print(f"campaign: {device}{' (' + report['gpu'] + ')' if report['gpu'] else ''}, {minutes} min, "
          f"{ctx.parallel} jobs at once; wheels: {note}; data: {report['data']}", flush=True)
    steps = [s for s in STEPS if only is None or s.name in only]
    budget_back = {"files": RETURN_FILES - 1, "bytes": RETURN_BYTES - 2**20}  # campaign.json is one more file
    for index, item in enumerate(steps, 1):
        budget = min(60 * item.minutes, ctx.remaining())
        entry = {"step": item.name, "budget_s": round(budget, 1)}
        if budget < 15:
            entry.update(status="skipped", reason="no time left")
            report["steps"].append(entry)
            continue
        tick = time.monotonic()
        print(f"== {item.name}: budget {budget:.0f} s", flush=True)
        try:
            files, details = item.run(ctx, budget)
            entry.update(status="done", details=details)
        except Exception as exc:  # one broken step must not cost the others their time
            files, details = [], {}
            entry.update(status="failed", error=f"{exc.__class__.__name__}: {exc}")
        entry["seconds"] = round(time.monotonic() - tick, 1)
        if files:
            names, size, left = pack(out, f"{index:02d}_{item.name}", files, budget_back)
            entry.update(archives=names, archive_bytes=size)
            if left:
                entry["not_returned"] = {"files": len(left), "reason": "return limit (8 files, 64 MiB)",
                                         "first": left[:5]}
        print(f"   {item.name}: {entry['status']} in {entry['seconds']} s" +
              (f" → {', '.join(entry['archives'])} ({entry['archive_bytes'] / 2**20:.1f} MiB)" if entry.get("archives")
               else "") +
              (f" ({entry['error']})" if "error" in entry else ""), flush=True)
        report["steps"].append(entry)
        report["seconds"] = round(time.monotonic() - started, 1)
        (out / "campaign.json").write_text(json.dumps(report, indent=2, default=str))
    report["seconds"] = round(time.monotonic() - started, 1)
    (out / "campaign.json").write_text(json.dumps(report, indent=2, default=str))
    statuses = [s["status"] for s in report["steps"]]
    unfinished = any(s.get("details", {}).get("resumable") or s.get("details", {}).get("not started")
                     for s in report["steps"])
    return 1 if "failed" in statuses else (75 if unfinished or "skipped" in statuses else 0)


def plan() -> str:
    lines = [f"{i:02d} {s.name}: at most {s.minutes} min" for i, s in enumerate(STEPS, 1)]
    size = travel_bytes()
    lines.append(f"travels: {size / 2**20:.1f} MiB of 64 MiB (tree + untracked + .carry)")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fusion_core.campaign", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, nargs="?", help="output folder: one archive per finished step")
    parser.add_argument("--minutes", type=float, default=9.0, help="whole-run budget (default 9)")
    parser.add_argument("--tiny", action="store_true", help="CPU dry run at tiny sizes (what the tests run)")
    parser.add_argument("--steps", help="comma-separated step names (default: all, in priority order)")
    parser.add_argument("--parallel", type=int, help="trainings at once (default: 12 on a GPU, 2 on a CPU)")
    parser.add_argument("--plan", action="store_true", help="print the steps and the travel size, and exit")
    parser.add_argument("--carry-data", action="store_true", help=f"copy the data the steps read to {CARRY / 'data'}")
    args = parser.parse_args(argv)
    for module in STEP_MODULES:
        importlib.import_module(module)
    if args.carry_data:
        print(f"{CARRY / 'data'}: {carry_data() / 2**20:.1f} MiB")
    if args.plan or args.carry_data:
        print(plan())
        return 0
    if args.out is None:
        parser.error("give an output folder")
    only = [s.strip() for s in args.steps.split(",")] if args.steps else None
    unknown = sorted(set(only or ()) - {s.name for s in STEPS})
    if unknown:
        print(f"error: unknown step(s) {', '.join(unknown)}; known: {', '.join(s.name for s in STEPS)}", file=sys.stderr)
        return 2
    return run_campaign(args.out.resolve(), args.minutes, args.tiny, only, args.parallel)


if __name__ == "__main__":
    raise SystemExit(main())
