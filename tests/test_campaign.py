"""The GPU campaign script: packing within the device tool's return limits, and a CPU dry run of every step."""
from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch

from fusion_core import campaign

REPO = Path(__file__).resolve().parents[1]


def test_packing_splits_into_parts_under_the_limit_and_keeps_to_the_return_budget(tmp_path, monkeypatch):
    monkeypatch.setattr(campaign, "REPO", tmp_path)
    monkeypatch.setattr(campaign, "ARCHIVE_LIMIT", 3000)
    files = tmp_path / "src"
    files.mkdir()
    for i in range(5):
        (files / f"w{i}.pt").write_bytes(torch.randint(0, 255, (2000,), dtype=torch.uint8).numpy().tobytes())
    (files / "w0.resume.pt").write_bytes(b"r" * 10)
    out = tmp_path / "out"
    out.mkdir()
    budget = {"files": 3, "bytes": 10**6}
    names, size, left = campaign.pack(out, "01_x", [files], budget)
    assert names == ["01_x.part1.tar.gz", "01_x.part2.tar.gz", "01_x.part3.tar.gz"] and budget["files"] == 0
    assert sorted(p.name for p in out.iterdir()) == names  # no partial files left behind
    with tarfile.open(out / names[0]) as tar:
        assert tar.getnames() == ["src/w0.pt"]  # stored relative to the repository root
    assert left[-1] == "src/w0.resume.pt" and len(left) == 3  # resume states go last, so they are left out first


def test_the_plan_lists_the_steps_in_priority_order():
    names = [s.name for s in campaign.STEPS]
    assert names[:3] == ["didfuse_train", "didfuse_raw", "cuda_timings"]
    assert "travels:" in campaign.plan()


@pytest.mark.slow
def test_cpu_dry_run_of_the_whole_campaign_packs_every_step(didfuse_training_pairs, tmp_path):
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "fusion_core.campaign", str(out), "--tiny"], cwd=REPO,
                            capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((out / "campaign.json").read_text())
    assert [s["step"] for s in report["steps"]] == [s.name for s in campaign.STEPS]
    assert all(s["status"] == "done" for s in report["steps"]), report
    archives = {s["step"]: out / s["archives"][0] for s in report["steps"]}
    with tarfile.open(archives["didfuse_train"]) as tar:
        names = tar.getnames()
        tar.extractall(tmp_path / "back", filter="data")
    checkpoint = "work/checkpoints/didfuse/didfuse_quick_seed90.pt"  # a tiny run works under OUT/work
    # the dry run leaves the quick notebooks' checkpoints alone (they take every complete model they find)
    assert not list((REPO / "build" / "quick" / "checkpoints" / "didfuse").glob("*_seed9[01]*"))
    assert checkpoint in names and checkpoint.replace(".pt", ".json") in names
    assert not any(n.endswith(".resume.pt") for n in names)  # finished runs travel as weights only
    from fusion_core.methods import build_method

    fuser = build_method("didfuse", weights=tmp_path / "back" / checkpoint)
    assert fuser(torch.rand(1, 1, 32, 32), torch.rand(1, 1, 32, 32)).shape == (1, 1, 32, 32)
    with tarfile.open(archives["didfuse_raw"]) as tar:
        assert any(n.endswith("base_seed90_sal-cam.csv") for n in tar.getnames())
    with tarfile.open(archives["cuda_timings"]) as tar:
        assert {Path(n).name for n in tar.getnames()} >= {"metrics_speed.csv", "fuse_fps.csv"}
