"""AMFE experiments (paper 004), declared as sources × data sets for the raw-results engine.

Table 1: the three TNO FEL sequences (``tno_nato_camp`` 32 frames, ``tno_tree`` 19, ``tno_duine`` 23; all frames,
mean per sequence [A, spec §5.1]), six metrics under the ``amfe`` convention (MI summed in bits, CC averaged,
VIFF, Qabf, SCD, SSIM averaged). Sources: the classical ``cbf`` and ``gtf`` (our ports), ``mfeif`` with the
authors' released journal weights (a reference column, not a reproduction: spec §9.3) and ``amfe`` when a
trained checkpoint exists. JSRSD, FusionGAN and DDcGAN are not implemented in the repository (no columns).

Raw files: ``results/amfe/raw/<role>/<source>[_<rule>].csv`` (role = the data set name). Profiles: ``eval`` reads
them and re-fuses the smallest frame of each source × sequence; ``full`` computes what is missing; ``quick``
fuses the first two frames of each sequence cropped to 128² under ``build/quick/`` (its numbers mean nothing).

The paper's Table 1 has six method headers over five numbers per row: :func:`reported_table1` gives it as
printed (``printed``) or as the spec reads it (``spec``: the fifth number is Ours, DDcGAN's column is missing).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import pandas as pd
import torch

from ... import engine, report
from ...train import TrainedModel

PAPER = "amfe"
CONVENTION = "amfe"
METRICS = ["MI", "CC", "VIF", "Qabf", "SCD", "SSIM"]  # Table 1's rows, in the paper's order
SEQUENCES = {"tno_nato_camp": "Nato", "tno_tree": "Tree", "tno_duine": "Duine"}  # data set → the paper's label
CLASSICAL = ("cbf", "gtf")
MFEIF_RULE = "code"
AMFE_RULE = "softmax_channel"
QUICK_CROP, QUICK_FRAMES = (128, 128), 2
# Table 1 as printed has 6 headers over 5 numbers; the spec reads the 5th as Ours (spec 004 §6).
PRINTED_TO_SPEC = {"CBF": "CBF", "GTF": "GTF", "JSD": "JSRSD", "FG": "FusionGAN", "DD": "Ours"}
OUR_LABELS = {"cbf": "CBF", "gtf": "GTF", f"mfeif/{MFEIF_RULE}": "MFEIF (released journal weights)",
              f"amfe/{AMFE_RULE}": "AMFE (ours, substitute data)"}

SUBSTITUTES = [
    "CBF and GTF: the repository's Python ports (VIFB-validated), not the authors' runs",
    "MFEIF column: the authors' later journal model with its released weights (JinyuanLiu-CV/MFEIF default.pth), "
    "not the conference paper's network",
    "JSRSD, FusionGAN, DDcGAN: not implemented, no columns",
    "AMFE (when present): trained on substitute data (natural-image corpus instead of MS-COCO; RoadScene pairs for "
    "stage 2) with a reduced CPU protocol",
]


def data_sets(profile: str) -> list[engine.DataSet]:
    """The three FEL sequences (all frames); quick: the first two frames of each, top-left 128²."""
    if profile == "quick":
        return [engine.DataSet.named(name, QUICK_CROP, QUICK_FRAMES) for name in SEQUENCES]
    return [engine.DataSet.named(name) for name in SEQUENCES]


def sources(models: Sequence[TrainedModel] = (), device: str = "cpu", mfeif: bool = True) -> list[engine.Source]:
    """CBF, GTF, MFEIF (released weights, rule ``code``) and one AMFE source per trained model."""
    found = [engine.method_source(name, device=device) for name in CLASSICAL]
    if mfeif:
        found.append(engine.method_source("mfeif", rules=(MFEIF_RULE,), device=device))
    found += [dataclasses.replace(engine.method_source(PAPER, weights=m.path, rules=(AMFE_RULE,), device=device),
                                  key=f"amfe_{m.key}", checksum=m.checksum,
                                  labels={"variant": m.variant, "seed": m.seed}) for m in models]
    return found


def raw_results(profile: str, out: Path, models: Sequence[TrainedModel] = (), verify: str | None = "sample",
                device: str = "cpu", mfeif: bool = True) -> engine.RawResults:
    """Per-frame rows of every source on the three sequences (eval: read + verify; quick/full: compute)."""
    rules = (MFEIF_RULE, AMFE_RULE)
    by_source = []
    for source in sources(models, device, mfeif):
        wanted = None if source.rules is None else tuple(r for r in rules if r in source.rules)
        by_source.append(engine.collect([source], data_sets(profile), wanted or (None,), metrics=METRICS,
                                        convention=CONVENTION, out=out, compute=profile != "eval",
                                        verify=verify if profile == "eval" else None))
    rows = pd.concat([r.rows for r in by_source], ignore_index=True)
    checks = pd.concat([r.checks for r in by_source], ignore_index=True)
    return engine.RawResults(rows, checks, [m for r in by_source for m in r.missing])


def method_label(source: str, rule: str) -> str:
    """The column label of a source key (``cbf``, ``mfeif``, ``amfe_<variant>_seed<S>``) and rule."""
    method = "amfe" if source.startswith("amfe_") else source
    base = method if rule in (engine.NO_RULE, None) else f"{method}/{rule}"
    label = OUR_LABELS.get(base, base)
    return label if method != "amfe" else f"{label} [{source.removeprefix('amfe_')}]"


def table1(rows: pd.DataFrame) -> pd.DataFrame:
    """Long table: (dataset = the paper's sequence label, method, metric) → mean over the frames, frame count."""
    long = rows.melt(id_vars=["source", "rule", "role", "stem"], value_vars=METRICS, var_name="metric")
    long["dataset"] = long["role"].map(SEQUENCES)
    long["method"] = [method_label(s, r) for s, r in zip(long["source"], long["rule"])]
    out = long.groupby(["dataset", "method", "metric"], sort=False)["value"].agg(ours="mean", frames="count")
    return out.reset_index().assign(table="1")


def wide(table: pd.DataFrame, value: str = "ours") -> pd.DataFrame:
    """Rows (sequence, metric) in the paper's order, one column per method."""
    frame = table.pivot_table(index=["dataset", "metric"], columns="method", values=value, sort=False)
    order = pd.MultiIndex.from_product([list(SEQUENCES.values()), METRICS], names=["dataset", "metric"])
    return frame.reindex(order)


def reported_table1(reading: str = "printed") -> pd.DataFrame:
    """The paper's Table 1 wide: ``printed`` (the headers CBF, GTF, JSD, FG, DD over the five numbers) or
    ``spec`` (relabelled CBF, GTF, JSRSD, FusionGAN, Ours; DDcGAN has no numbers)."""
    if reading not in ("printed", "spec"):
        raise ValueError(f"reading '{reading}' is not 'printed' or 'spec'")
    reported = report.load_reported(PAPER)
    reported = reported[reported["table"] == "1"].copy()
    if reading == "spec":
        reported["method"] = reported["method"].map(PRINTED_TO_SPEC)
    frame = reported.pivot_table(index=["dataset", "metric"], columns="method", values="value", sort=False)
    order = pd.MultiIndex.from_product([list(SEQUENCES.values()), METRICS], names=["dataset", "metric"])
    columns = list(PRINTED_TO_SPEC) if reading == "printed" else list(PRINTED_TO_SPEC.values())
    return frame.reindex(order)[columns]


def best_of_row(frame: pd.DataFrame) -> pd.Series:
    """The column with the largest value of each row (every metric here is larger-is-better)."""
    return frame.idxmax(axis=1)


# --------------------------------------------------------------------------- architecture and comparisons

SPEC_PARAMETERS = {"extractor": 41_776, "attention": 196_288, "decoder": 78_769, "discriminator": 388_097}


def architecture_table() -> pd.DataFrame:
    """Parameters per module of AMFE (default configuration), its discriminator and MFEIF, next to spec §2."""
    from ...nets.blocks import count_parameters
    from .mfeif import MFEIF
    from .model import AMFE, Discriminator

    net, journal = AMFE(), MFEIF()
    rows = [("AMFE", "extractor", count_parameters(net.extractor)),
            ("AMFE", "attention", count_parameters(net.attention)),
            ("AMFE", "decoder", count_parameters(net.decoder)),
            ("AMFE", "discriminator", count_parameters(Discriminator())),
            ("MFEIF (journal)", "extractor", count_parameters(journal.ext)),
            ("MFEIF (journal)", "attention", count_parameters(journal.att)),
            ("MFEIF (journal)", "constructor", count_parameters(journal.con))]
    frame = pd.DataFrame(rows, columns=["network", "module", "parameters"])
    frame["spec"] = [SPEC_PARAMETERS.get(m) if n == "AMFE" else None for n, m in zip(frame["network"], frame["module"])]
    return frame


def against_paper(table: pd.DataFrame) -> pd.DataFrame:
    """Our CBF/GTF next to the paper's, and every learned column of ours next to the paper's fifth number (the
    spec's "Ours"): (sequence, metric) rows, ``<ours> | paper <column> | Δ%``."""
    ours = wide(table)
    paper = reported_table1("spec")
    out = pd.DataFrame(index=ours.index)
    for column in ours.columns:
        reference = column if column in ("CBF", "GTF") else "Ours"
        out[column] = ours[column]
        out[f"paper {reference} ({column})"] = paper[reference]
        out[f"delta % ({column})"] = 100.0 * (ours[column] - paper[reference]) / paper[reference].abs()
    return out


def profile_line(profile: str, models: Sequence[TrainedModel], device: str) -> dict:
    """The run description each table carries."""
    return {"profile": profile, "amfe models": ", ".join(m.key for m in models) or "none",
            "protocol": ", ".join(sorted({m.protocol for m in models})) or "none", "device": device,
            "test": "TNO FEL Nato_camp/Tree/Duine, all frames" + (" (2 frames each, 128x128 crops)"
                                                                   if profile == "quick" else "")}


def loss_history(model: TrainedModel) -> pd.DataFrame:
    """Both stages' per-epoch losses of a trained model (``stage`` column), from the histories beside it."""
    stage1 = model.path.with_name(model.path.name.replace("_seed", "_stage1_seed")).with_suffix("")
    frames = []
    for stage, stem in ((1, stage1.name), (2, model.path.stem)):
        path = model.path.with_name(f"{stem}_history.csv")
        if path.is_file():
            frames.append(pd.read_csv(path).assign(stage=stage))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


# --------------------------------------------------------------------------- spec §8 #5: the fusion_norm guard

GUARD_METRICS = ["MI", "Qabf", "SSIM"]


def guard_data_set(profile: str) -> engine.DataSet:
    """RoadScene ``val`` (21 pairs, never trained on); quick: its first two pairs, top-left 128²."""
    if profile == "quick":
        return engine.DataSet.split(PAPER, "val", QUICK_CROP, QUICK_FRAMES)
    return engine.DataSet.split(PAPER, "val")


def fusion_norm_guard(model: TrainedModel, profile: str, out: Path, verify: str | None = "sample",
                      device: str = "cpu") -> tuple[pd.DataFrame, engine.RawResults]:
    """Spec §8 #5: Eq. 3's three normalisations (and w/o A) of one trained model on RoadScene ``val``, mean of
    MI, Qabf, SSIM per rule, and ``flag`` = softmax_channel's Qabf below half of ``none``'s (then the spec asks to
    report it and use the val-best rule, recorded as a deviation)."""
    from .model import RULES as AMFE_RULES

    source = dataclasses.replace(engine.method_source(PAPER, weights=model.path, rules=AMFE_RULES, device=device),
                                 key=f"amfe_{model.key}", checksum=model.checksum)
    raw = engine.collect([source], [guard_data_set(profile)], AMFE_RULES, metrics=GUARD_METRICS,
                         convention=CONVENTION, out=out, compute=profile != "eval",
                         verify=verify if profile == "eval" else None)
    means = raw.rows.groupby("rule", sort=False)[GUARD_METRICS].mean().reindex(list(AMFE_RULES))
    means["flag"] = False
    if {"softmax_channel", "none"} <= set(means.index):
        half_of_none = 0.5 * means.loc["none", "Qabf"]
        means.loc["softmax_channel", "flag"] = bool(means.loc["softmax_channel", "Qabf"] < half_of_none)
    return means, raw


# --------------------------------------------------------------------------- Table 2: the module ablations

TABLE2_ROWS = {("base", AMFE_RULE): "Ours", ("base", "no_attention"): "Ours w/o A", ("woD", AMFE_RULE): "Ours w/o D",
               ("woS", AMFE_RULE): "Ours w/o S"}  # (variant, rule) → the paper's row label


def tno25(profile: str) -> engine.DataSet:
    """The 25 TNO pairs (``splits/test_tno25.txt``) of Table 2 [A]; quick: the first two, top-left 128²."""
    if profile == "quick":
        return engine.DataSet.split(PAPER, "test_tno25", QUICK_CROP, QUICK_FRAMES)
    return engine.DataSet.split(PAPER, "test_tno25")


def table2(models: Sequence[TrainedModel], profile: str, out: Path, verify: str | None = "sample",
           device: str = "cpu") -> tuple[pd.DataFrame, engine.RawResults]:
    """Table 2 rows we can build from ``models`` (w/o A reuses base with the rule ``no_attention``): mean over
    the 25 pairs of each row, next to the paper's (``report.side_by_side``; seeds averaged)."""
    frames, raws = [], []
    for m in models:
        rules = tuple(r for (v, r) in TABLE2_ROWS if v == m.variant)
        if not rules:
            continue
        source = dataclasses.replace(engine.method_source(PAPER, weights=m.path, rules=rules, device=device),
                                     key=f"amfe_{m.key}", checksum=m.checksum)
        raw = engine.collect([source], [tno25(profile)], rules, metrics=METRICS, convention=CONVENTION, out=out,
                             compute=profile != "eval", verify=verify if profile == "eval" else None)
        raws.append(raw)
        long = raw.rows.melt(id_vars=["rule", "stem"], value_vars=METRICS, var_name="metric")
        long["method"] = [TABLE2_ROWS[(m.variant, r)] for r in long["rule"]]
        frames.append(long.groupby(["method", "metric"], sort=False)["value"].mean().reset_index().assign(seed=m.seed))
    reported = report.load_reported(PAPER)
    reported = reported[reported["table"] == "2"]
    if not frames:
        return report.side_by_side(reported, pd.DataFrame(columns=report.KEYS + ["ours_mean", "ours_std", "n"])), \
            engine.RawResults(pd.DataFrame(), pd.DataFrame(columns=engine.CHECK_COLUMNS), [])
    runs = pd.concat(frames, ignore_index=True).assign(table="2", dataset=reported["dataset"].iloc[0])
    rows = pd.concat([r.rows for r in raws], ignore_index=True)
    checks = pd.concat([r.checks for r in raws], ignore_index=True)
    return report.side_by_side(reported, report.summarise(runs)), engine.RawResults(
        rows, checks, [x for r in raws for x in r.missing])


# --------------------------------------------------------------------------- Fig. 3: the edge-guided attention

FIG3_PAIR = "tno37/032"  # Kaptein_1654 (IR/Vis) [A, spec §5.1: the teaser pair]


def _stretch(x: torch.Tensor) -> torch.Tensor:
    """Min–max to [0, 1] for display only."""
    low, high = x.min(), x.max()
    return (x - low) / (high - low) if high > low else torch.zeros_like(x)


def attention_figure(model: TrainedModel, profile: str, device: str = "cpu"):
    """Fig. 3 analogue: per source, the image, S(G(u)) (Eqs. 1–2), the channel mean of W and the fused result;
    maps min–max stretched for display. Quick: top-left 128²."""
    from ... import data
    from .model import build, edge_map

    dataset, stem = FIG3_PAIR.split("/")
    images = data.load_pair({p.stem: p for p in data.list_pairs(dataset)}[stem])
    ir, vis = images.ir, images.vis
    if profile == "quick":
        ir, vis = ir[..., :QUICK_CROP[0], :QUICK_CROP[1]], vis[..., :QUICK_CROP[0], :QUICK_CROP[1]]
    fuser = build(weights=model.path, rule=AMFE_RULE, device=device)
    with torch.inference_mode():
        net = fuser.model
        w_ir = net.attention(ir.to(device)).mean(1, keepdim=True)
        w_vis = net.attention(vis.to(device)).mean(1, keepdim=True)
        fused = fuser(ir.to(device), vis.to(device))
    rows = [[ir, _stretch(edge_map(ir)), _stretch(w_ir.cpu()), fused.cpu()],
            [vis, _stretch(edge_map(vis)), _stretch(w_vis.cpu()), fused.cpu()]]
    return report.image_grid(rows, ["IR", "VIS"], ["source u", "S(G(u)) (Eqs. 1-2)", "mean_c W (stretched)",
                                                   "fused F"],
                             title=f"Fig. 3 analogue: edge-guided attention, {FIG3_PAIR} (Kaptein_1654), "
                                   f"AMFE {model.key} ({model.protocol} protocol)")


# --------------------------------------------------------------------------- Fig. 5: GAN vs no-GAN stage 1

def stage1_histories(checkpoint_dir: Path, protocol: str, seed: int = 0) -> dict[str, pd.DataFrame]:
    """The stage-1 loss histories of ``base`` (with discriminator) and ``nogan`` (λ = 0) that exist."""
    from .train import checkpoint_name

    found = {}
    for variant in ("base", "nogan"):
        path = Path(checkpoint_dir) / f"{checkpoint_name(protocol, variant, seed, stage=1)}_history.csv"
        if path.is_file():
            found[variant] = pd.read_csv(path)
    return found


def fig5(histories: dict[str, pd.DataFrame], title: str):
    """Fig. 5 analogue: L_pixel + γ L_SSIM (``recon``, the part both runs share) per epoch, GAN vs no GAN."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    labels = {"base": "with discriminator (λ = 0.1)", "nogan": "without discriminator (λ = 0)"}
    for variant, history in histories.items():
        ax.plot(history["epoch"], history["recon"], marker="o", ms=3, label=f"{labels[variant]}, {len(history)} epochs")
    ax.set_xlabel("epoch")
    ax.set_ylabel("L_pixel + γ L_SSIM")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
