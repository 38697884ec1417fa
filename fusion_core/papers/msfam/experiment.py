"""MSFAM experiments (paper 003): Table 6 (comparison on our test split) and its cost columns, declared as
sources × data sets × rules for the raw-results engine (:mod:`fusion_core.engine`).

Raw files: ``results/msfam/raw/test/<source>[_<rule>].csv``, one row per test pair, keyed by the weights' checksum.
Sources: our MSFAM (``base_seed<S>``: the val-selected stage-2 model), our NestFuse (``nestfuse_seed<S>``), DIDFuse
with the authors' released weights (``didfuse``, rule ``sum`` = their test code) and with our reduced-protocol
weights (``didfuse_ours``), and the classical TIF (``tif``). The other seven methods of Table 6 are the paper's
numbers only ("reported only").

Profiles: ``quick`` trains tiny models under ``build/quick/`` and scores two test pairs cropped to 176×176 (the
metric convention's MS-SSIM needs more than 160 px); ``eval`` reads the committed checkpoints and raw files and
re-fuses the smallest test pair of each source; ``full`` computes what is missing.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd
import torch
from torch.utils.flop_counter import FlopCounterMode

from ... import data, engine, report
from ...train import TrainedModel
from .model import MSFAM, PAPER, NestFuse

CONVENTION = "msfam"
METRICS = ["EN", "MSSIM", "MI", "SCD", "CC", "VIF"]  # Table 6's quality columns, its order
EXTRA_METRICS = ["MI_correct", "CC_mean"]  # the real MI, and CC as Eq. 9's mean (spec §5.2)
QUICK_CROP, QUICK_PAIRS = (176, 176), 2
COST_SIZE = (256, 320)  # H×W of the paper's GFlops (spec §2.6: GMACs at 320×256)
DATASET_LABEL = "TNO+RoadScene"
ROW_LABELS = {"base": "MSFAM", "nestfuse": "NestFuse", "didfuse": "DIDFuse", "didfuse_ours": "DIDFuse (ours)",
              "tif": "TIF"}
REPORTED_ONLY = ["Hybrid_MSD", "NSCT_SR", "U2Fusion", "PMGI", "SEDR", "DenseFuse", "DualBranch"]

SUBSTITUTES = [
    "stage-2 data: roadscene221 + tno40 = 261 pairs (paper: 273 TNO+RoadScene pairs), seeded split 211 train / "
    "24 val / 26 test (splits/*.txt, splits.py)",
    "stage-1 data: the 422 train-split singles (flir_train180 adds none after pixel-hash de-duplication) instead of "
    "FLIR ADAS' 20,177 singles",
    "MSFAM and NestFuse trained by us with the reduced CPU protocol (160x128 images, 106 stage-1 and 53 stage-2 "
    "iterations; paper: 320x256, ~10k + 1.2k) — a labelled substitute for the paper's GPU training",
    "model selection on splits/val.txt (lowest stage-2 loss), never on test",
    "SC net pre-trained on train-split VIS/IR and average/LP/TIF fusions (the paper's 'existing algorithms' unnamed)",
    "NestFuse re-trained by us on the same singles (its MS-COCO weights unavailable)",
    "DIDFuse: the authors' released IJCAI weights, rule 'sum' (their test code); also our reduced-protocol DIDFuse",
    "FPS on this CPU, one thread, at 320x256 (paper: RTX 2080 Ti)",
]


# --------------------------------------------------------------------------- data sets and sources

def test_set(profile: str) -> engine.DataSet:
    """The test split; quick: its first two pairs, top-left 176×176."""
    if profile == "quick":
        return engine.DataSet.split(PAPER, "test", QUICK_CROP, QUICK_PAIRS)
    return engine.DataSet.split(PAPER, "test")


def sources(models: Sequence[TrainedModel], device: str = "cpu", baselines: bool = True) -> list[engine.Source]:
    """One source per trained model (MSFAM ``base_seed<S>``, ``nestfuse_seed<S>``) plus the baselines."""
    ours = []
    for m in models:
        method = "nestfuse" if m.variant == "nestfuse" else "msfam"
        rules = ("nestfuse_avg",) if method == "nestfuse" else ("afb",)
        ours.append(dataclasses.replace(engine.method_source(method, weights=m.path, rules=rules, device=device),
                                        key=m.key, checksum=m.checksum, labels={"variant": m.variant, "seed": m.seed}))
    if not baselines:
        return ours
    from ..didfuse.model import AUTHORS_RULE, REFERENCE_CHECKPOINT

    released = engine.method_source("didfuse", rules=(AUTHORS_RULE,), device=device)
    ours_didfuse = dataclasses.replace(engine.method_source("didfuse", weights=REFERENCE_CHECKPOINT,
                                                            rules=(AUTHORS_RULE,), device=device), key="didfuse_ours")
    return ours + [dataclasses.replace(released, key="didfuse"), ours_didfuse, engine.method_source("tif")]


def row_label(source: str) -> str:
    key = source.rsplit("_seed", 1)[0]
    return ROW_LABELS.get(key, key)


def raw_results(models: Sequence[TrainedModel], profile: str, out: Path, verify: str | None = "sample",
                device: str = "cpu", baselines: bool = True) -> engine.RawResults:
    """Per-pair rows of every source on the test set (quick/full compute what is missing; eval reads and re-fuses
    ``verify``'s sample). Each source runs with its own rule (``afb``, ``nestfuse_avg``, DIDFuse's ``sum``)."""
    computing = profile != "eval"
    parts = [engine.collect([source], [test_set(profile)], list(source.rules or [None]),
                            metrics=METRICS + EXTRA_METRICS, convention=CONVENTION, out=out, compute=computing,
                            verify=None if computing else verify)
             for source in sources(models, device, baselines)]
    rows = [p.rows for p in parts if len(p.rows)]
    checks = [p.checks for p in parts if len(p.checks)]
    return engine.RawResults(pd.concat(rows, ignore_index=True) if rows else parts[0].rows,
                             pd.concat(checks, ignore_index=True) if checks else parts[0].checks,
                             [m for p in parts for m in p.missing])


def table6(raw: pd.DataFrame) -> pd.DataFrame:
    """Table 6's quality columns: mean over the test pairs per source, next to the paper's numbers
    (reported | ours | Δ %); the seven methods we cannot run keep their reported cells only."""
    metrics = [m for m in METRICS + EXTRA_METRICS if m in raw.columns]
    per_run = raw.groupby("source")[metrics].mean().reset_index().melt(id_vars="source", var_name="metric")
    per_run = per_run.assign(table="6", dataset=DATASET_LABEL, method=per_run["source"].map(row_label))
    reported = report.load_reported(PAPER)
    reported = reported[(reported["table"] == "6") & reported["metric"].isin(METRICS)]
    return report.side_by_side(reported, report.summarise(per_run))


# --------------------------------------------------------------------------- cost columns

def gmacs(model: torch.nn.Module, forward: Callable, size: tuple[int, int] = COST_SIZE) -> float:
    """Multiply–accumulates of one fusion of an IR+VIS pair of ``size`` (GMACs = FlopCounterMode's FLOPs / 2,
    the convention of the paper's "GFlops", spec §2.6), counted on the meta device (no arithmetic is done)."""
    with torch.device("meta"):
        twin = type(model)(**getattr(model, "config", {}))
        ir, vis = torch.zeros(1, 1, *size), torch.zeros(1, 1, *size)
        with FlopCounterMode(display=False) as counter:
            forward(twin, ir, vis)
    return counter.get_total_flops() / 2e9


def fps(fuser: Callable, size: tuple[int, int] = COST_SIZE, repeats: int = 3) -> float:
    """Fusions per second of one pair of ``size`` on this CPU (median of ``repeats`` after one warm-up)."""
    ir, vis = torch.rand(1, 1, *size, generator=torch.Generator().manual_seed(0)), torch.rand(1, 1, *size)
    fuser(ir, vis)
    times = []
    for _ in range(repeats):
        tick = time.perf_counter()
        fuser(ir, vis)
        times.append(time.perf_counter() - tick)
    return 1.0 / float(pd.Series(times).median())


def cost_table(fps_repeats: int = 3, with_fps: bool = True) -> pd.DataFrame:
    """Params (M), GMACs at 320×256 and CPU FPS of the networks with their default constructors (untrained
    weights: cost does not depend on the weights), next to the paper's Params / GFlops / FPS cells."""
    from ... import methods
    from ..didfuse.model import AUTHORS_RULE, DIDFuse

    def count(model):
        return sum(p.numel() for p in model.parameters())

    nets = {"MSFAM": (MSFAM(), lambda m, i, v: m(i, v)), "NestFuse": (NestFuse(), lambda m, i, v: m.fuse(i, v)),
            "DIDFuse": (DIDFuse(), lambda m, i, v: m.fuse(i, v, AUTHORS_RULE))}
    rows = []
    for name, (net, forward) in nets.items():
        net.eval()
        row = {"method": name, "Params_M": count(net) / 1e6, "parameters": count(net), "GMACs": gmacs(net, forward)}
        if with_fps:
            def fuser(i, v, net=net, forward=forward):
                with torch.inference_mode():
                    return forward(net, i, v)
            row["FPS_cpu"] = fps(fuser, repeats=fps_repeats)
        rows.append(row)
    if with_fps:
        rows.append({"method": "TIF", "FPS_cpu": fps(methods.build_method("tif"), repeats=fps_repeats)})
    ours = pd.DataFrame(rows)
    reported = report.load_reported(PAPER)
    reported = reported[(reported["table"] == "6") & reported["metric"].isin(["Params_M", "GFlops", "FPS"])]
    wide = reported.pivot(index="method", columns="metric", values="value").add_prefix("paper_").reset_index()
    return ours.merge(wide, on="method", how="left")


def profile_line(profile: str, models: Sequence[TrainedModel], device: str) -> dict:
    protocols = sorted({m.protocol for m in models})
    return {"profile": profile, "models": ", ".join(m.key for m in models) or "none", "device": device,
            "protocol": ", ".join(protocols) or "none",
            "test": f"{len(test_set(profile).pairs)} pairs of splits/test.txt"
                    + (" (176x176 crops)" if profile == "quick" else "")}
