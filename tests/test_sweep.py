"""Concurrent training sweeps: job grid, statuses, time-budgeted chunks that resume, same numbers as one run."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from fusion_core import data, sweep
from fusion_core.train import INCOMPLETE

REPO = Path(__file__).resolve().parents[1]


def _sweep(args, logs, timeout=600):
    return subprocess.run([sys.executable, "-m", "fusion_core.sweep", "--logs", str(logs), *args],
                          capture_output=True, text=True, cwd=REPO, timeout=timeout)


def test_seed_lists_and_ranges_parse():
    assert sweep.parse_seeds("0-3,7,2") == [0, 1, 2, 3, 7]
    assert sweep.parse_seeds("5") == [5]
    with pytest.raises(ValueError, match="'x'"):
        sweep.parse_seeds("1,x")
    with pytest.raises(ValueError, match="KEY=V1"):
        sweep.parse_vary(["ablation"])


def test_grid_is_variants_times_seeds_with_one_flag_each():
    jobs = sweep.build_jobs(["python", "-m", "m", "--profile", "full"], [0, 1],
                            sweep.parse_vary(["ablation=full,exp1"]))
    assert [j.name for j in jobs] == ["ablation-full_seed0", "ablation-full_seed1", "ablation-exp1_seed0",
                                      "ablation-exp1_seed1"]
    assert jobs[3].argv == [sys.executable, "-m", "m", "--profile", "full", "--seed", "1", "--ablation", "exp1"]


def test_exit_codes_become_statuses_and_the_sweep_exit_code(tmp_path):
    # the job exits with its own seed: 0 → done, 75 → resumable, 3 → failed
    result = _sweep(["--seeds", "0,75,3", "--parallel", "3", "--", "python", "-c",
                     "import sys; sys.exit(int(sys.argv[2]))"], tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    table = pd.read_csv(tmp_path / "sweep_summary.csv")
    assert list(table["status"]) == ["done", "resumable", "failed"] and list(table["exit"]) == [0, INCOMPLETE, 3]
    assert (tmp_path / "seed3.log").read_text().startswith("$ ")


def test_deadline_stops_starting_jobs(tmp_path):
    result = _sweep(["--seeds", "0-1", "--deadline-minutes", "0", "--", "python", "-c", "pass"], tmp_path)
    assert result.returncode == INCOMPLETE
    assert list(pd.read_csv(tmp_path / "sweep_summary.csv")["status"]) == ["not started"] * 2


def _state(path):
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def test_concurrent_time_budgeted_sweep_resumes_to_the_same_weights_as_one_direct_run(tmp_path):
    try:
        data.load_split("didfuse", "train")
    except data.DataError as exc:
        pytest.skip(f"training data missing: {exc}")
    out, logs = tmp_path / "ckpt", tmp_path / "logs"
    train = ["--", "python", "-m", "fusion_core.train_didfuse", "--profile", "quick", "--epochs", "2", "--max-pairs",
             "4", "--out", str(out), "--no-progress"]
    grid = ["--seeds", "0-1", "--vary", "ablation=full,exp5", "--parallel", "2", "--threads", "1"]
    first = _sweep(grid + train + ["--max-minutes", "0"], logs)  # every job stops after its first epoch
    assert first.returncode == INCOMPLETE, first.stdout + first.stderr
    table = pd.read_csv(logs / "sweep_summary.csv")
    assert (table["status"] == "resumable").all() and len(table) == 4
    # two at a time: the second job starts before the first one ends
    assert table["start_s"].iloc[1] < table["start_s"].iloc[0] + table["seconds"].iloc[0]
    names = ["didfuse_quick_seed0", "didfuse_quick_seed1", "didfuse_quick_exp5_seed0", "didfuse_quick_exp5_seed1"]
    for name in names:
        manifest = json.loads((out / f"{name}.json").read_text())
        assert (manifest["epochs_done"], manifest["epochs"]) == (1, 2)
    second = _sweep(grid + train, logs)
    assert second.returncode == 0, second.stdout + second.stderr
    for name in names:
        assert json.loads((out / f"{name}.json").read_text())["epochs_done"] == 2
    direct = subprocess.run([sys.executable, "-m", "fusion_core.train_didfuse", "--profile", "quick", "--epochs", "2",
                             "--max-pairs", "4", "--out", str(tmp_path / "direct"), "--no-progress", "--seed", "1",
                             "--ablation", "exp5"], capture_output=True, text=True, cwd=REPO, timeout=300,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert direct.returncode == 0, direct.stderr
    chunked, whole = _state(out / "didfuse_quick_exp5_seed1.pt"), _state(tmp_path / "direct/didfuse_quick_exp5_seed1.pt")
    assert all(torch.equal(chunked[k], whole[k]) for k in whole)
    other_seed = _state(out / "didfuse_quick_exp5_seed0.pt")
    assert not all(torch.equal(other_seed[k], whole[k]) for k in whole)
