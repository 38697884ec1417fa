"""The portability check: the tests, and optionally the eval re-fuse checks, under emulated CPU levels.

    python tools/portability.py                      # unit tests + nbval under every level (make test-portable)
    python tools/portability.py --levels sse --only unit
    python tools/portability.py --refuse didfuse,res2netfuse   # also the eval profile's re-fuse checks

A check that passes on one processor only is not a check: kernels are chosen at run time by CPU features
(ATen's vector width, oneDNN's ISA, MKL's code path, OpenCV's SIMD dispatch), so sums run in another order,
with or without FMA, and the last bits of float results differ. Each level below switches those libraries
to an older instruction set on this machine, which changes exactly those orders. AVX-512 cannot be emulated
on a CPU without it (ATen then reports AVX512 and would crash); a machine that has it covers it natively.

Goldens must survive every level: a value that differs between levels is asserted at a tolerance justified
by the difference measured here, or replaced by a portable fact (see ``fusion_core.checks``).

``--refuse`` runs the eval notebooks of the named papers in a scratch git worktree (``results/`` of the
checkout stays untouched) and reports the largest relative difference of every re-fuse verification table
against the committed raw results, next to its tolerance.
"""
from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable

# OpenCV dispatches above its SSE3 baseline; names as cv2.getCPUFeaturesLine() prints them (check it: "?" = off)
_OPENCV_ABOVE_SSE3 = "SSE4.1,SSE4.2,POPCNT,AVX,FP16,AVX2,FMA3"
LEVELS = {
    "native": {},
    # AVX without AVX2/FMA: another vector width for ATen's generic kernels, no fused multiply-add anywhere
    "avx": {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "AVX", "MKL_CBWR": "AVX",
            "OPENCV_CPU_DISABLE": "AVX2,FMA3"},
    # SSE only: the oldest x86-64 paths of every library
    "sse": {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41", "MKL_CBWR": "COMPATIBLE",
            "OPENCV_CPU_DISABLE": _OPENCV_ABOVE_SSE3},
}
SUITES = {
    "unit": [PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
    "nbval": [PYTHON, "-m", "pytest", "-q", "--nbval-lax", "-p", "no:cacheprovider", "notebooks/"],
}
REFUSE_TOLERANCE = {"didfuse": "VERIFY_RTOL in fusion_core/engine.py", "res2netfuse": "VERIFY_RTOL in fusion_core/engine.py"}


def run(cmd: list[str], env: dict, cwd: Path, log: Path) -> tuple[int, float, str]:
    start = time.monotonic()
    with open(log, "w") as out:
        rc = subprocess.call(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    lines = [l for l in log.read_text().splitlines() if l.strip()]
    return rc, time.monotonic() - start, (lines[-1] if lines else "")


def level_env(level: str, profile: str | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in {k for lv in LEVELS.values() for k in lv}}
    env.update(LEVELS[level])
    if profile:
        env["FUSION_PROFILE"] = profile
    return env


def refuse(level: str, papers: list[str], logs: Path) -> list[dict]:
    """Eval notebooks of ``papers`` in a scratch worktree; the verification tables' largest differences."""
    rows = []
    scratch = Path(tempfile.mkdtemp(prefix="portability-"))
    tree = scratch / "main"
    subprocess.check_call(["git", "worktree", "add", "--detach", "-q", str(tree), "HEAD"], cwd=ROOT)
    try:
        (scratch / "shared").symlink_to((ROOT.parent / "shared").resolve())
        env = level_env(level)
        env["PYTHONPATH"] = str(tree)  # the worktree's package, not the editable install of the checkout
        for paper in papers:
            rc, seconds, last = run([PYTHON, "-m", "fusion_core", "reproduce", "--profile", "eval", "--nb", paper],
                                    env, tree, logs / f"refuse_{level}_{paper}.log")
            for table in sorted((tree / "results" / paper).glob("*verification.csv")):
                with open(table) as f:
                    checks = list(csv.DictReader(f))
                rows.append({"level": level, "paper": paper, "table": table.name, "pairs": len(checks),
                             "ok": sum(c["ok"] == "True" for c in checks),
                             "max_rel_diff": max(float(c["max_rel_diff"]) for c in checks), "rc": rc,
                             "seconds": round(seconds)})
    finally:
        subprocess.call(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT)
        shutil.rmtree(scratch, ignore_errors=True)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", default="native,avx,sse", help=f"comma list of {sorted(LEVELS)}")
    parser.add_argument("--only", default="unit,nbval", help="comma list of suites: unit, nbval, or none")
    parser.add_argument("--refuse", default="", help="comma list of papers whose eval re-fuse checks to run")
    parser.add_argument("--logs", default=str(ROOT / "build" / "portability"), help="where the logs go")
    parser.add_argument("--keep-quick", action="store_true", help="reuse build/quick (default: cleared before each "
                        "level, so the quick models the notebooks show are trained under that level, as on such a CPU)")
    args = parser.parse_args(argv)
    levels = [lv for lv in args.levels.split(",") if lv]
    unknown = [lv for lv in levels if lv not in LEVELS]
    if unknown:
        parser.error(f"unknown level(s) {unknown}; choose from {sorted(LEVELS)}")
    suites = [s for s in args.only.split(",") if s and s != "none"]
    logs = Path(args.logs)
    logs.mkdir(parents=True, exist_ok=True)
    failed, refused = [], []
    for level in levels:
        if not args.keep_quick:
            shutil.rmtree(ROOT / "build" / "quick", ignore_errors=True)  # a cache: every profile=quick run rebuilds it
        for suite in suites:
            rc, seconds, last = run(SUITES[suite], level_env(level, "quick" if suite == "nbval" else None), ROOT,
                                    logs / f"{suite}_{level}.log")
            print(f"{level:7s} {suite:6s} {'ok  ' if rc == 0 else 'FAIL'} {seconds:6.0f} s  {last}", flush=True)
            if rc:
                failed.append(f"{suite}@{level}")
        if args.refuse:
            for row in refuse(level, args.refuse.split(","), logs):
                refused.append(row)
                print(f"{level:7s} refuse {row['paper']}/{row['table']}: {row['ok']}/{row['pairs']} ok, "
                      f"max rel diff {row['max_rel_diff']:.2e} (tolerance: {REFUSE_TOLERANCE.get(row['paper'], '?')})",
                      flush=True)
                if row["ok"] != row["pairs"] or row["rc"]:
                    failed.append(f"refuse {row['paper']}@{level}")
    if refused:
        with open(logs / "refuse.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(refused[0]))
            writer.writeheader()
            writer.writerows(refused)
    print("portable" if not failed else f"NOT portable: {', '.join(failed)}", f"(logs: {logs})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
