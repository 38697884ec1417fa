"""MSFAM experiments (paper 003): Table 6 (comparison on our test split) and its cost columns, declared as
sources × data sets × rules for the raw-results engine (:mod:`fusion_core.engine`).

Raw files: ``results/msfam/raw/test/<source>[_<rule>].csv``, one row per test pair, keyed by the weights' checksum
(models whose weights are not committed, the ablation rows other than ``base``: ``raw_uncommitted/test/``).
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
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from ... import data, engine, report
from ...train import TrainedModel
from . import train
from .model import MSFAM, PAPER, NestFuse
from .train import VARIANTS, WEIGHT_SETTINGS, weights_variant

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
    ours = [variant_source(m, device) for m in models]
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
             for source in sources(table6_models(models, profile), device, baselines)]
    rows = [p.rows for p in parts if len(p.rows)]
    if profile == "eval":  # a Table 6 column whose checkpoint is not committed: its raw file as it is (none now)
        rows += [r for r in (uncommitted_rows(v, out, profile) for v in TABLE6_VARIANTS
                             if v not in COMMITTED_VARIANTS) if r is not None]
    checks = [p.checks for p in parts if len(p.checks)]
    return engine.RawResults(pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(),
                             pd.concat(checks, ignore_index=True) if checks
                             else pd.DataFrame(columns=engine.CHECK_COLUMNS),
                             [m for p in parts for m in p.missing])


def table6_models(models: Sequence[TrainedModel], profile: str) -> list[TrainedModel]:
    """The models whose checkpoints Table 6 fuses with: under ``eval`` the committed variants only, so that a
    checkpoint trained locally does not change what eval computes from one machine to the next."""
    return [m for m in models if profile != "eval" or m.variant in COMMITTED_VARIANTS]


def uncommitted_table6(out: Path, profile: str) -> list[str]:
    """Table 6's variants read under ``eval`` from their committed raw files (checkpoint not committed, not
    re-fused)."""
    if profile != "eval":
        return []
    return [v for v in TABLE6_VARIANTS if v not in COMMITTED_VARIANTS and uncommitted_rows(v, out, profile) is not None]


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


# --------------------------------------------------------------------------- Tables 1-5: the ablations

# Each table's rows: (the paper's row label, our variant); the first row is the table's full model, the one the
# ablation signs (full − row) compare against. Table 1 "Rec and Fusion" = Table 2 "w/ attention" = Table 3 ✘✘
# (spec §7): one model, ``baseline``. Tables 4-5 (α2, β) reuse ``base`` for (0.84, 2).
ABLATIONS: dict[str, list[tuple[str, str]]] = {
    "1": [("Rec and Fusion", "baseline"), ("Rec", "rec"), ("Fusion", "fusion_only")],
    "2": [("w/ attention", "baseline"), ("w/o attention", "conv5x5")],
    "3": [("P+C", "base"), ("baseline", "baseline"), ("P", "p_only"), ("C", "c_only")],
    "4": [(f"alpha2={a:g},beta={b:g}", weights_variant(a, b)) for a, b in WEIGHT_SETTINGS if a == 1.0],
    "5": [(f"alpha2={a:g},beta={b:g}", weights_variant(a, b)) for a, b in sorted(WEIGHT_SETTINGS) if b == 2.0],
}
SIGNED_TABLES = ("1", "2", "3")  # ablations with a full model; Tables 4-5 are weight sweeps (spec §10: curves)
# Each network's own fusion (every other variant: afb)
FUSION_RULE = {"rec": "nestfuse_rule", "conv5x5": "conv5x5", "nestfuse": "nestfuse_avg"}
# Committed checkpoints: Table 6's trained columns, the base model and NestFuse (float16, xz: 7.0 and 4.5 MB). The raw
# files of any other variant trained here live in raw_uncommitted/ and say so in every row (tree budget: 7 MB per
# MSFAM); eval cannot re-fuse them.
COMMITTED_VARIANTS = ("base", "nestfuse")
TABLE6_VARIANTS = ("base", "nestfuse")  # the trained columns of Table 6
UNCOMMITTED_DIR = "raw_uncommitted"
UNCOMMITTED_NOTE = ("checkpoint not committed (repository tree budget): rows measured once on the machine that "
                    "trained it; eval cannot re-fuse them")
ABLATION_SUBSTITUTES = [
    "ablation models: the reduced CPU protocol, one seed (paper: one run per cell on a GPU); a row without a "
    "model of ours is listed as owed with its command",
    "Table 1 'Rec': the stage-1 auto-encoder with NestFuse's attention_avg rule (spec §7 T1-Rec); 'Rec and "
    "Fusion' = Table 2 'w/ attention' = Table 3 baseline: stage 2 with L1 + beta*equal-weight MS-SSIM (spec §3)",
]


def fusion_rule(variant: str) -> str:
    return FUSION_RULE.get(variant, "afb")


def variant_source(model: TrainedModel, device: str = "cpu") -> engine.Source:
    """An MSFAM variant as an engine source: its own fusion as the rule; an uncommitted one writes to
    ``raw_uncommitted/`` with :data:`UNCOMMITTED_NOTE` in every row."""
    rule = fusion_rule(model.variant)
    method = "nestfuse" if model.variant == "nestfuse" else "msfam"
    source = engine.method_source(method, weights=model.path, rules=(rule,), device=device)
    labels = {"variant": model.variant, "seed": model.seed}
    if model.variant not in COMMITTED_VARIANTS:
        return dataclasses.replace(source, key=model.key, checksum=model.checksum, raw_dir=UNCOMMITTED_DIR,
                                   labels={**labels, "checkpoint": UNCOMMITTED_NOTE})
    return dataclasses.replace(source, key=model.key, checksum=model.checksum, labels=labels)


def owed_command(variant: str) -> str:
    return (f"python -m fusion_core.papers.msfam.train --protocol reduced --variant {variant} --threads 1 && "
            f"python -m fusion_core.papers.msfam.experiment score --variants {variant}")


def uncommitted_rows(variant: str, out: Path, profile: str) -> pd.DataFrame | None:
    """The committed rows of an uncommitted variant (seed 0), or None when it has no complete raw file."""
    path = Path(out) / UNCOMMITTED_DIR / "test" / f"{variant}_seed0_{fusion_rule(variant)}.csv"
    return engine.complete_rows(path, test_set(profile).pairs, None, METRICS + EXTRA_METRICS, CONVENTION)


@dataclasses.dataclass
class Ablation:
    rows: pd.DataFrame  # per-pair raw rows of every variant we have
    checks: pd.DataFrame  # re-fused values (engine.CHECK_COLUMNS)
    skipped: pd.DataFrame  # variant, reason: rows eval could not re-fuse
    owed: pd.DataFrame  # variant, command: rows we do not have


def ablation_raw(table: str, profile: str, out: Path, verify: str | None = "sample", device: str = "cpu",
                 progress: bool = False) -> Ablation:
    """Raw rows of one ablation table's variants on the test set. quick/full: train what is missing (quick: tiny
    models in build/quick; full: the reduced protocol) and compute missing raw files. eval: the committed model's
    raw file (re-fusing ``verify``'s sample), the uncommitted variants' files as they are (verification skipped,
    with the reason), every other row owed with its command."""
    return variants_raw(list(dict.fromkeys(v for _, v in ABLATIONS[table])), profile, out, verify, device, progress)


def variants_raw(variants: Sequence[str], profile: str, out: Path, verify: str | None = "sample",
                 device: str = "cpu", progress: bool = False) -> Ablation:
    """:func:`ablation_raw` for a list of variants."""
    protocol, folder = train.plan(profile)
    if profile != "eval":
        train.ensure_models(profile, variants, 1, progress, device)
    models = {m.variant: m for m in train.discover(folder, protocol, variants) if m.seed == 0}
    frames, checks, skipped, owed = [], [], [], []
    for variant in variants:
        if profile == "eval" and variant not in COMMITTED_VARIANTS:
            rows = uncommitted_rows(variant, out, profile)
            if rows is None:
                owed.append({"variant": variant, "command": owed_command(variant)})
            else:
                frames.append(rows)
                skipped.append({"variant": variant, "reason": UNCOMMITTED_NOTE})
            continue
        if variant not in models:
            owed.append({"variant": variant, "command": owed_command(variant)})
            continue
        computing = profile != "eval"
        part = engine.collect([variant_source(models[variant], device)], [test_set(profile)], [fusion_rule(variant)],
                              metrics=METRICS + EXTRA_METRICS, convention=CONVENTION, out=out, compute=computing,
                              verify=None if computing else verify)
        if len(part.rows):
            frames.append(part.rows)
        else:
            owed.append({"variant": variant, "command": owed_command(variant)})
        if len(part.checks):
            checks.append(part.checks)
    return Ablation(pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(),
                    pd.concat(checks, ignore_index=True) if checks else pd.DataFrame(columns=engine.CHECK_COLUMNS),
                    pd.DataFrame(skipped, columns=["variant", "reason"]),
                    pd.DataFrame(owed, columns=["variant", "command"]))


def ablation_table(table: str, raw: pd.DataFrame) -> pd.DataFrame:
    """reported | ours | Δ % for one of Tables 1-5: ours = the mean over the test pairs of each row's variant."""
    labels = ABLATIONS[table]
    reported = report.load_reported(PAPER)
    reported = reported[(reported["table"] == table) & reported["metric"].isin(METRICS)]
    if raw.empty:
        ours = pd.DataFrame(columns=report.KEYS + ["ours_mean", "ours_std", "n"])
    else:
        means = raw.groupby("variant")[METRICS].mean()
        records = [{"table": table, "dataset": DATASET_LABEL, "method": label, "metric": metric,
                    "value": means.at[variant, metric]}
                   for label, variant in labels if variant in means.index for metric in METRICS]
        ours = report.summarise(pd.DataFrame(records)) if records else pd.DataFrame(
            columns=report.KEYS + ["ours_mean", "ours_std", "n"])
    out = report.side_by_side(reported, ours)
    out["variant"] = out["method"].map(dict(labels))
    order = {label: i for i, (label, _) in enumerate(labels)}
    return out.sort_values(["method", "metric"], key=lambda c: c.map(order) if c.name == "method" else
                           c.map({m: i for i, m in enumerate(METRICS)})).reset_index(drop=True)


def ablation_signs(table: str, frame: pd.DataFrame) -> tuple[int, int]:
    """(total, agree) of the signs of (full − row) between the paper and ours, Tables 1-3 only."""
    if table not in SIGNED_TABLES:
        return (0, 0)
    labels = [label for label, _ in ABLATIONS[table]]
    return report.sign_agreement(frame, labels[0], labels[1:])


def ablation_wide(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per table row: ours | reported per metric (what the notebooks print)."""
    have = frame.dropna(subset=["ours_mean"])
    if have.empty:
        return pd.DataFrame()
    wide = have.pivot(index="method", columns="metric", values="ours_mean").reindex(columns=METRICS)
    return wide.reindex([m for m in dict.fromkeys(frame["method"]) if m in wide.index])


ABLATION_OUTPUTS = {  # table -> (file stem in results/msfam, the caption's title)
    "1": ("table1_stages", "Table 1 (multi-stage training)"),
    "2": ("table2_attention", "Table 2 (attention in the fusion blocks)"),
    "3": ("table3_loss", "Table 3 (Pull-Push loss and Semantic Constraint)"),
}


def write_ablation(table: str, profile: str, out: Path, verify: str | None = "sample",
                   device: str = "cpu") -> tuple[pd.DataFrame, Ablation]:
    """Notebooks 03a-03c: one ablation table's raw rows (:func:`ablation_raw`), its reported | ours | Δ % table, the
    owed rows and the eval verification, written to ``out``; prints what nbval guards. Returns (table, raw)."""
    from ... import checks

    stem, title = ABLATION_OUTPUTS[table]
    result = ablation_raw(table, profile, out, verify, device)
    frame = ablation_table(table, result.rows)
    run = {"profile": profile, "device": device, "protocol": "quick" if profile == "quick" else "reduced",
           "repeats": 1, "test": f"{len(test_set(profile).pairs)} pairs of splits/test.txt"}
    report.write_table(frame, out, stem, f"{title}: ours on the test split of roadscene221+tno40 next to the "
                       f"paper's numbers; rows without ours_mean are owed (see {stem}_owed)", run)
    report.write_table(result.owed, out, f"{stem}_owed", f"Table {table}: rows without a model of ours and the "
                       "commands that make them", run)
    if len(result.checks) or len(result.skipped):
        report.write_table(result.checks, out, f"{stem}_verification", "Eval profile: re-fused pairs vs committed "
                           "raw results", run)
        report.write_table(result.skipped, out, f"{stem}_verification_skipped", "Eval profile: raw files not "
                           "re-fused, and why", run)
    print("rows with ours:", sorted(frame.dropna(subset=["ours_mean"])["method"].unique()))
    print("owed:", list(result.owed["variant"]) or "none")
    print("verification skipped:", [f"{r.variant}: {r.reason}" for r in result.skipped.itertuples()] or "none")
    if len(result.checks):
        print("re-fused values within tolerance:", int(result.checks["ok"].sum()), "/", len(result.checks))
    print("outside the possible range:", checks.out_of_range(frame.dropna(subset=["ours_mean"]), "ours_mean") or "none")
    return frame, result


def ablation_fidelity(table: str, frame: pd.DataFrame, profile: str, out: Path, part: str) -> dict:
    """The sign check of one ablation table and its fidelity part (written unless ``quick``); prints both."""
    total, agree = ablation_signs(table, frame)
    print(f"signs agreeing: {agree} / {total}")
    summary = report.fidelity(frame, SUBSTITUTES + ABLATION_SUBSTITUTES, (total, agree))
    if profile != "quick":
        report.write_fidelity(out, summary, part=part)
    print({k: v for k, v in summary.items() if k != "substitutes"})
    return summary


NOISE_VARIANT = "rerun"  # base's stage 2 trained again with another stage-2 seed: the noise floor of Tables 2-5


def ablation_effects(table: str, rows: pd.DataFrame, profile: str, out: Path, device: str = "cpu") -> pd.DataFrame:
    """One ablation table per pair: each row − the table's full model (:func:`report.paired_effects` on the test
    pairs), next to the stage-2 noise floor ``rerun − base`` (the same recipe trained twice; NaN while ``rerun`` is
    owed). Written as ``<table stem>_paired``."""
    labels = {variant: label for label, variant in ABLATIONS[table]}
    floor = variants_raw(["base", NOISE_VARIANT], profile, out, verify=None, device=device).rows
    noise = None
    if len(floor) and {"base", NOISE_VARIANT} <= set(floor["variant"]):
        rerun = report.paired_effects(floor, METRICS, "base", {NOISE_VARIANT: "re-run"})
        noise = rerun.set_index("metric")["mean_diff"]
    effects = report.paired_effects(rows, METRICS, ABLATIONS[table][0][1], labels, noise=noise)
    if noise is None:
        effects = effects.assign(noise=float("nan"), beyond_noise=None)
    stem, title = ABLATION_OUTPUTS[table]
    report.write_table(effects, out, f"{stem}_paired", f"{title}: per test pair, each row − the table's first row "
                       f"(mean, std, d_z, pairs above), against the noise floor rerun − base (base's stage 2 trained "
                       f"again with another seed)", {"profile": profile, "device": device, "repeats": 1})
    return effects


def score_local(variants: Sequence[str], device: str = "cpu") -> list[str]:
    """Raw files for the complete ``reduced`` checkpoints of ``variants`` found in ``checkpoints/msfam/``
    (computed where missing, nothing trained): what an eval run of the ablation notebooks reads."""
    out = report.results_dir(PAPER, "full")
    done = []
    for model in train.discover(train.CHECKPOINT_DIR, "reduced", variants):
        engine.collect([variant_source(model, device)], [test_set("full")], [fusion_rule(model.variant)],
                       metrics=METRICS + EXTRA_METRICS, convention=CONVENTION, out=out, compute=True, verify=None)
        done.append(model.key)
    return done


# --------------------------------------------------------------------------- Tables 4-5 as a notebook sweep

SWEEP_NOTEBOOK = "03d_msfam_tables4_5_weights.ipynb"


def sweep_commands(profile: str, logs: Path) -> list[list[str]]:
    """The two ``fusion_core sweep --notebook`` runs that execute notebook 03d once per (α2, β) of Tables 4 and 5
    (``-p sweep false``: each execution scores its one setting; the default run aggregates)."""
    import sys

    notebook = data.REPO_ROOT / "notebooks" / SWEEP_NOTEBOOK
    base = [sys.executable, "-m", "fusion_core", "sweep", "--notebook", str(notebook), "--profile", profile,
            "--parallel", "1", "--threads", "1", "--no-progress", "-p", "sweep", "false"]
    return [base + ["--logs", str(logs / "table4"), "-p", "alpha2", "1.0", "-p", "beta", "1.0,2.0,3.0"],
            base + ["--logs", str(logs / "table5"), "-p", "alpha2", "0.5,0.84", "-p", "beta", "2.0"]]


def run_sweep(profile: str, logs: Path) -> pd.DataFrame:
    """Run :func:`sweep_commands` (papermill executions, one per setting) and return every setting's
    ``weights_setting`` row from the sweeps' tidy ``sweep_results.csv`` (status, folder, α2, β, metrics)."""
    import subprocess

    frames = []
    for command in sweep_commands(profile, logs):
        done = subprocess.run(command, cwd=data.REPO_ROOT, capture_output=True, text=True)
        results = Path(command[command.index("--logs") + 1]) / "sweep_results.csv"
        if done.returncode not in (0, 75) or not results.is_file():
            raise RuntimeError(f"sweep failed ({done.returncode}): {' '.join(command)}\n{done.stdout[-2000:]}"
                               f"\n{done.stderr[-2000:]}")
        frame = pd.read_csv(results)
        frames.append(frame[frame["sweep_table"] == "weights_setting"])
    return pd.concat(frames, ignore_index=True)


def setting_row(alpha2: float, beta: float, raw: pd.DataFrame) -> pd.DataFrame:
    """One execution of notebook 03d: the (α2, β) setting's variant and its means (NaN when owed)."""
    variant = weights_variant(alpha2, beta)
    row = {"alpha2": float(alpha2), "beta": float(beta), "variant": variant,
           "pairs": int(raw["stem"].nunique()) if len(raw) else 0}
    for metric in METRICS:
        row[metric] = float(raw[metric].mean()) if len(raw) else float("nan")
    return pd.DataFrame([row])


def weights_tables(sweep: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Tables 4 and 5 (reported | ours | Δ %) from the sweep's rows (one per executed setting)."""
    per_setting = sweep.drop_duplicates(subset=["alpha2", "beta"], keep="last")
    tables = {}
    for table in ("4", "5"):
        labels = dict(ABLATIONS[table])
        reported = report.load_reported(PAPER)
        reported = reported[(reported["table"] == table) & reported["metric"].isin(METRICS)]
        records = []
        for row in per_setting.itertuples(index=False):
            label = f"alpha2={row.alpha2:g},beta={row.beta:g}"
            if label in labels and pd.notna(getattr(row, "EN")):
                records += [{"table": table, "dataset": DATASET_LABEL, "method": label, "metric": m,
                             "value": getattr(row, m)} for m in METRICS]
        ours = report.summarise(pd.DataFrame(records)) if records else pd.DataFrame(
            columns=report.KEYS + ["ours_mean", "ours_std", "n"])
        frame = report.side_by_side(reported, ours)
        frame["variant"] = frame["method"].map(labels)
        tables[table] = frame.sort_values(["method", "metric"]).reset_index(drop=True)
    return tables


# --------------------------------------------------------------------------- Table 7

def table7() -> pd.DataFrame:
    """Table 7 (GFLV2 on KAIST) as reported; ours: data not available (KAIST and a pretrained detector are not
    among the project's data), so nothing is computed."""
    reported = report.load_reported(PAPER)
    reported = reported[reported["table"] == "7"]
    wide = reported.pivot(index="method", columns="metric", values="value")
    wide = wide.reindex([m for m in dict.fromkeys(reported["method"])])[["AP", "APS", "APM", "APL"]]
    return wide.reset_index().assign(ours="data not available (KAIST, GFLV2 weights)")


# --------------------------------------------------------------------------- figures

FIGURE_SCENES = {7: ("tno40/38", "man in doorway"), 8: ("tno40/16", "Kaptein_1123, substitute for 'ship'"),
                 9: ("tno40/20", "bunker")}
FIG6_SCENE = ("tno40/16", "Kaptein_1123, substitute for the paper's ship scene")
# Table 6's methods in the paper's order: (label, what we run or None: reported only)
FIGURE_METHODS = [("Hybrid_MSD", None), ("TIF", "tif"), ("NSCT_SR", None), ("U2Fusion", None), ("PMGI", None),
                  ("SEDR", None), ("DenseFuse", None), ("DIDFuse", "didfuse"), ("DualBranch", None),
                  ("NestFuse", "nestfuse"), ("DIDFuse (ours)", "didfuse_ours"), ("MSFAM (ours)", "base")]


def _pair(name: str) -> data.Pair:
    dataset, stem = name.split("/")
    return next(p for p in data.list_pairs(dataset) if p.stem == stem)


def figure_images(scene: str, profile: str) -> data.PairImages:
    images = data.load_pair(_pair(scene))
    from ...evaluate import crop_images
    return crop_images(images, QUICK_CROP if profile == "quick" else None)


def qualitative_figure(number: int, models: Sequence[TrainedModel], profile: str, boxes: Sequence,
                       device: str = "cpu"):
    """Figs 7-9: IR, VIS and Table 6's methods on one scene, the same zoom ``boxes`` on every panel. Methods we
    cannot run are grey tiles saying why (reported only, or checkpoint not committed); ours are labelled."""
    from ...report import image_grid, zoom_boxes

    scene, label = FIGURE_SCENES[number]
    images = figure_images(scene, profile)
    by_key = {s.key.rsplit("_seed", 1)[0]: s for s in sources(models, device)}
    panels, titles = [images.ir, images.vis], ["(a) IR", "(b) VIS"]
    for (name, key), letter in zip(FIGURE_METHODS, "cdefghijklmn"):
        if key is None:
            panels.append(f"{name}\nreported only:\nnot run offline")
        elif key not in by_key:
            panels.append(f"{name}\ncheckpoint not\ncommitted (tree budget)")
        else:
            source = by_key[key]
            panels.append(source.fuse(images, list(source.rules or [None]))[(source.rules or [None])[0]])
        titles.append(f"({letter}) {name}")
    half = (len(panels) + 1) // 2
    fig = image_grid([panels[:half], panels[half:]], ["", ""], [], cell=2.3,
                     panel_titles=[titles[:half], titles[half:]],
                     title=f"Fig. {number} equivalent: {scene} ({label}), {profile} profile; boxes enlarged in "
                           "the corners")
    zoom_boxes(fig, [list(boxes)] * half)
    return fig


def attention_maps(model: torch.nn.Module, ir: torch.Tensor, vis: torch.Tensor) -> dict[str, list[torch.Tensor]]:
    """Fig. 6's tensors per scale k = 1..4: channel means of |E_k(vis)|, |E_k(ir)|, |AFB_k output| and the AFB's
    spatial attention map M_SA (Eq. 7), each H_k×W_k, from one forward pass of ``model`` (an AFB MSFAM)."""
    if getattr(model, "fusion_kind", None) != "afb":
        raise ValueError("attention maps need an MSFAM with attention fusion blocks (fusion='afb')")
    with torch.inference_mode():
        f_vis, f_ir = model.encode(vis), model.encode(ir)
        first, second = (f_vis, f_ir) if model.concat_order == "vis_first" else (f_ir, f_vis)
        maps = {"vis": [], "ir": [], "afb": [], "spatial": []}
        for block, a, b, v, i in zip(model.fusion, first, second, f_vis, f_ir):
            f_ca = block.channel_attention(torch.cat([a, b], dim=1))
            m_sa = block.spatial_map(f_ca)
            maps["vis"].append(v.abs().mean(1)[0])
            maps["ir"].append(i.abs().mean(1)[0])
            maps["afb"].append((m_sa * f_ca).abs().mean(1)[0])
            maps["spatial"].append(m_sa[0, 0])
    return maps


HEAT_PERCENTILES = (1.0, 99.0)  # the zero-padded HIN convs light up the feature maps' borders: a plain min-max
# would spend the colour range on the frame, so the maps are stretched between these percentiles and clipped


def _heat(x: torch.Tensor, size: tuple[int, int]):
    """Upsampled (bilinear) to ``size``, stretched between :data:`HEAT_PERCENTILES` (clipped), 'jet': H×W×3."""
    import matplotlib
    import numpy as np

    up = F.interpolate(x[None, None].float(), size=size, mode="bilinear", align_corners=False)[0, 0].numpy()
    low, high = np.percentile(up, HEAT_PERCENTILES)
    norm = np.clip((up - low) / max(high - low, 1e-12), 0, 1)
    return matplotlib.colormaps["jet"](norm)[..., :3]


def attention_figure(model_path: Path, profile: str, device: str = "cpu"):
    """Fig. 6 equivalent: for each AFB scale, heat maps of the visible and infrared encoder features, the AFB
    output (channel means of absolute activations, stretched 1st-99th percentile, 'jet') and the AFB's spatial
    attention map, with the sources and the fused image on top. Real tensors of the model at ``model_path``."""
    from ...report import image_grid
    from .model import load_checkpoint, minmax

    scene, label = FIG6_SCENE
    images = figure_images(scene, profile)
    model = load_checkpoint(model_path, device, expect="MSFAM")
    ir, vis = images.ir.to(device), images.vis.to(device)
    maps = attention_maps(model, ir, vis)
    with torch.inference_mode():
        fused = minmax(model(ir, vis)).cpu()
    size = tuple(images.ir.shape[-2:])
    rows = [[images.ir, images.vis, fused, None]]
    rows += [[_heat(maps[k][s].cpu(), size) for k in ("vis", "ir", "afb", "spatial")] for s in range(4)]
    scales = [f"scale {s + 1} (k={k}×{k})" for s, k in enumerate(model.config["afb_kernels"])]
    fig = image_grid(rows, ["sources / fused", *scales],
                     ["|E_k(vis)|", "|E_k(ir)|", "|AFB_k output|", "spatial attention M_SA"], cell=2.6,
                     panel_titles=[["IR", "VIS", "MSFAM fused", ""]] + [["|E_k(vis)|", "|E_k(ir)|", "|AFB_k out|",
                                                                         "M_SA (Eq. 7)"]] * 4,
                     title=f"Fig. 6 equivalent: {scene} ({label}), {profile} profile, model {model_path.name}")
    return fig, {k: [tuple(t.shape) for t in v] for k, v in maps.items()}


# --------------------------------------------------------------------------- command line

def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog=f"python -m fusion_core.papers.{PAPER}.experiment",
                                     description="score: raw files of the locally trained reduced ablation models "
                                                 "and NestFuse (what the notebooks read under eval); trains nothing")
    sub = parser.add_subparsers(dest="command", required=True)
    score = sub.add_parser("score")
    score.add_argument("--variants", required=True, help="comma-separated variants of train.VARIANTS")
    score.add_argument("--device", default="cpu")
    score.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    variants = [v for v in args.variants.split(",") if v]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown MSFAM variants {unknown}")
    done = score_local(variants, args.device)
    print("scored:", done or "none (no complete reduced checkpoint of these variants)")
    return 0 if len(done) == len(variants) else 1


if __name__ == "__main__":
    raise SystemExit(main())
