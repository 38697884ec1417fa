"""AMFE experiments (paper 004), declared as sources × data sets for the raw-results engine.

Table 1: the three TNO FEL sequences (``tno_nato_camp`` 32 frames, ``tno_tree`` 19, ``tno_duine`` 23; all frames,
mean per sequence [A, spec §5.1]), six metrics under the ``amfe`` convention (MI summed in bits, CC averaged,
VIFF, Qabf, SCD, SSIM averaged). Sources: the classical ``cbf`` and ``gtf`` (our ports), ``mfeif`` with the
authors' released journal weights (a reference column, not a reproduction: spec §9.3) and ``amfe`` when a
trained checkpoint exists. JSRSD, FusionGAN and DDcGAN are not run (their paper values are reported only).

Raw files: ``results/amfe/raw/<role>/<source>[_<rule>].csv`` (role = the data set name). Profiles: ``eval`` reads
them and re-fuses the smallest frame of each source × sequence; ``full`` computes what is missing; ``quick``
fuses the first two frames of each sequence cropped to 128² under ``build/quick/`` (its numbers mean nothing).

Table 2 (notebook ``04a``) and Fig. 8 use the 25 TNO pairs ``splits/test_tno25.txt`` (role ``test_tno25``); Figs. 1, 4
and 7 fuse one pair each with every source we run and show a labelled grey tile for each comparison method we do
not run (:func:`comparison_figure`).

The paper's Table 1 has six method headers over five numbers per row: :func:`reported_table1` gives it as
printed (``printed``) or as the spec reads it (``spec``: the fifth number is Ours, DDcGAN's column is missing).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from ... import data as data_module
from ... import engine, report
from ...evaluate import crop_images, quantise
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
    "JSRSD, FusionGAN, DDcGAN: not run (FusionGAN-re and DDcGAN-re retrainings owed); their paper values are "
    "reported only (DDcGAN has none under the spec's reading); grey labelled tiles in Figs. 1, 4, 7",
    "Table 2 and Fig. 8 test set: tno37 001-025 (the paper does not name its 25 TNO pairs; spec 004 §5.1 [A])",
    "AMFE (when present): trained on substitute data (natural-image corpus instead of MS-COCO; RoadScene pairs for "
    "stage 2) with a reduced CPU protocol",
]


def data_sets(profile: str) -> list[engine.DataSet]:
    """The three FEL sequences (all frames); quick: the first two frames of each, top-left 128²."""
    if profile == "quick":
        return [engine.DataSet.named(name, QUICK_CROP, QUICK_FRAMES) for name in SEQUENCES]
    return [engine.DataSet.named(name) for name in SEQUENCES]


def amfe_source(model: TrainedModel, rules: Sequence[str] = (AMFE_RULE,), device: str = "cpu",
                **fields) -> engine.Source:
    """One trained AMFE model as an engine source: key ``amfe_<variant>_seed<S>``, keyed on its weights' checksum
    (``fields``: further :class:`engine.Source` fields, e.g. ``labels``)."""
    return dataclasses.replace(engine.method_source(PAPER, weights=model.path, rules=tuple(rules), device=device),
                               key=f"amfe_{model.key}", checksum=model.checksum, **fields)


def sources(models: Sequence[TrainedModel] = (), device: str = "cpu", mfeif: bool = True) -> list[engine.Source]:
    """CBF, GTF, MFEIF (released weights, rule ``code``) and one AMFE source per trained model."""
    found = [engine.method_source(name, device=device) for name in CLASSICAL]
    if mfeif:
        found.append(engine.method_source("mfeif", rules=(MFEIF_RULE,), device=device))
    found += [amfe_source(m, device=device, labels={"variant": m.variant, "seed": m.seed}) for m in models]
    return found


def raw_results(profile: str, out: Path, models: Sequence[TrainedModel] = (), verify: str | None = "sample",
                device: str = "cpu", mfeif: bool = True,
                sets: Sequence[engine.DataSet] | None = None) -> engine.RawResults:
    """Per-image rows of every source on ``sets`` (default: the three sequences of Table 1; Fig. 8 passes the 25
    TNO pairs) (eval: read + verify; quick/full: compute)."""
    rules = (MFEIF_RULE, AMFE_RULE)
    by_source = []
    for source in sources(models, device, mfeif):
        wanted = None if source.rules is None else tuple(r for r in rules if r in source.rules)
        by_source.append(engine.collect([source], sets or data_sets(profile), wanted or (None,), metrics=METRICS,
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


TEST_SETS = {"table1": "TNO FEL Nato_camp/Tree/Duine, all frames", "tno25": "tno37 001-025 (25 TNO pairs [A])",
             "val": "RoadScene val (21 pairs, never trained on)"}


def profile_line(profile: str, models: Sequence[TrainedModel], device: str, test: str = "table1") -> dict:
    """The run description each table carries (``test``: a key of :data:`TEST_SETS`)."""
    from collections import Counter

    per_variant = Counter(m.variant for m in models)
    return {"profile": profile, "amfe models": ", ".join(m.key for m in models) or "none",
            "protocol": ", ".join(sorted({m.protocol for m in models})) or "none", "device": device,
            "repeats": f"n={max(per_variant.values())} AMFE training(s) per variant shown" if models else "n=0",
            "test": TEST_SETS[test] + (" (2 pairs each, 128x128 crops)" if profile == "quick" else "")}


def setup(profile: str, protocol: str | None, device: str, threads: int, variants: Sequence[str] = ("base",),
          test: str = "table1") -> tuple[list[TrainedModel], dict]:
    """The first code cell of notebooks 04 and 04a (after ``out = report.results_dir(...)``, which must run in the
    notebook itself: it reads the notebook's parameters): torch threads, the models (:func:`train.ensure_models`:
    quick trains ``variants``, eval reads every committed one of them) and the run line of the tables; prints the
    substitutes. Returns (models, run)."""
    from . import train

    torch.set_num_threads(threads)
    models = [m for m in train.ensure_models(profile, protocol, device, variants=variants) if m.variant in variants]
    print("substitutes:")
    for line in SUBSTITUTES:
        print(" -", line)
    return models, profile_line(profile, models, device, test)


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

    source = amfe_source(model, AMFE_RULES, device)
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
        source = amfe_source(m, rules, device)
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


# --------------------------------------------------------------------------- Figs. 1, 4, 7: qualitative comparisons

# The paper's comparison methods we do not run: a labelled grey tile in their place, never a stand-in image.
NOT_BUILT = {"JSRSD": "JSRSD:\nnot implemented\n(Table 1: reported only)",
             "FusionGAN": "FusionGAN:\nnot re-implemented\n(Table 1: reported only)",
             "DDcGAN": "DDcGAN:\nnot re-implemented\n(no paper values)"}
# (data set, stem) of each figure [P for Figs. 4 and 7; A for Fig. 1, spec §5.1: Kaptein_1654 IR/Vis = tno37/032]
FIGURE_PAIRS = {"fig1": ("tno37", "032"), "fig4": ("tno_kaptein_1123", "Kaptein_1123"),
                "fig7": ("tno_marne_04", "Marne_04")}
# Hand-placed boxes (top, left, height, width as fractions of the image; chosen on the sources, never on a fused
# result): Fig. 1 the walking man; Fig. 4 the man in front of the door; Fig. 7 the clouds of the IR sky ("red
# frame", the paper's own box is not given) and the car. Figs. 4/7 add the 64x64 window with the largest visible
# gradient energy (spec §6 default, :func:`busiest_window`).
FIGURE_BOXES = {"fig1": [(0.44, 0.31, 0.42, 0.2, "ur")],
                "fig4": [(0.40, 0.35, 0.32, 0.16, "ul")],
                "fig7": [(0.02, 0.02, 0.26, 0.42, "lr")]}


def figure_pair(name: str, profile: str) -> data_module.PairImages:
    """The pair of a figure (:data:`FIGURE_PAIRS`); quick: its top-left 128²."""
    dataset, stem = FIGURE_PAIRS[name]
    images = data_module.load_pair({p.stem: p for p in data_module.list_pairs(dataset)}[stem])
    return crop_images(images, QUICK_CROP if profile == "quick" else None)


def busiest_window(image: torch.Tensor, size: int = 64) -> tuple[float, float, float, float]:
    """The ``size``² window (stride 1) with the largest sum of squared forward differences, as fractions
    (top, left, height, width) of the image: the spec's default zoom box."""
    import torch.nn.functional as F

    x = image.reshape(1, 1, *image.shape[-2:]).double()
    energy = torch.zeros_like(x)
    energy[..., :, :-1] += (x[..., :, 1:] - x[..., :, :-1]) ** 2
    energy[..., :-1, :] += (x[..., 1:, :] - x[..., :-1, :]) ** 2
    h, w = x.shape[-2:]
    size = min(size, h, w)
    sums = F.avg_pool2d(energy, size, stride=1)[0, 0]
    top, left = divmod(int(torch.argmax(sums)), sums.shape[1])
    return top / h, left / w, size / h, size / w


def fused_panels(models: Sequence[TrainedModel], images: data_module.PairImages,
                 device: str = "cpu") -> dict[str, torch.Tensor]:
    """The pair fused by every source we run (CBF, GTF, MFEIF released, AMFE per model), on the 8-bit grid."""
    panels = {}
    for source in sources(models[:1], device):
        rule = None if source.rules is None else (MFEIF_RULE if source.method == "mfeif" else AMFE_RULE)
        label = method_label(source.key, rule or engine.NO_RULE)
        panels[label] = quantise(source.fuse(images, [rule])[rule])
    return panels


def comparison_figure(name: str, models: Sequence[TrainedModel], profile: str, device: str = "cpu"):
    """Figs. 1, 4 and 7 with what we can compute: the sources, the methods we run, and a labelled tile for each
    comparison method we do not run. Fig. 1 (teaser): IR, VIS, FusionGAN, DDcGAN, MFEIF, ours, one zoom;
    Figs. 4/7: the paper's grid (IR, VIS, CBF, GTF, JSRSD, FusionGAN, DDcGAN, ours) plus MFEIF, two zooms."""
    from ...report import image_grid, zoom_boxes

    images = figure_pair(name, profile)
    fused = fused_panels(models, images, device)
    learned = {k: v for k, v in fused.items() if k.startswith(("MFEIF", "AMFE"))}
    short = {k: k.replace(" (released journal weights)", "\n(released weights)").replace(
        " (ours, substitute data) ", "\nours ").replace("[", "").replace("]", "") for k in fused}
    boxes = list(FIGURE_BOXES[name])
    if name == "fig1":
        panels = [("IR", images.ir), ("VIS", images.vis), ("FusionGAN", NOT_BUILT["FusionGAN"]),
                  ("DDcGAN", NOT_BUILT["DDcGAN"])] + [(short[k], v) for k, v in learned.items()]
        rows = [panels]
    else:
        boxes.append((*busiest_window(images.vis), "ll"))
        classical = [(short[k], v) for k, v in fused.items() if k not in learned]
        rows = [[("IR", images.ir), ("VIS", images.vis), *classical, ("JSRSD", NOT_BUILT["JSRSD"])],
                [("FusionGAN", NOT_BUILT["FusionGAN"]), ("DDcGAN", NOT_BUILT["DDcGAN"])]
                + [(short[k], v) for k, v in learned.items()]]
    dataset, stem = FIGURE_PAIRS[name]
    what = {"fig1": "Fig. 1 analogue (teaser)", "fig4": "Fig. 4 analogue", "fig7": "Fig. 7 analogue"}[name]
    fig = image_grid([[v for _, v in row] for row in rows], [""] * len(rows), [], cell=2.6,
                     panel_titles=[[t for t, _ in row] for row in rows],
                     title=f"{what}: {dataset}/{stem}" + (" (top-left 128², quick)" if profile == "quick" else ""))
    zoom_boxes(fig, [boxes] * max(len(r) for r in rows))
    return fig


# --------------------------------------------------------------------------- Fig. 6: without / with the discriminator

FIG6_PAIR = "fig4"  # the paper does not name Fig. 6's scene: we use Fig. 4's pair (Kaptein_1123), stated in captions


def gan_models(models: Sequence[TrainedModel], required: bool = False) -> dict[str, TrainedModel]:
    """``{"nogan": ..., "base": ...}`` for the first seed that has both (stage 2 complete), else ``{}`` (an error
    when ``required``)."""
    by_seed: dict[int, dict[str, TrainedModel]] = {}
    for m in models:
        if m.variant in ("base", "nogan"):
            by_seed.setdefault(m.seed, {})[m.variant] = m
    both = [pair for _, pair in sorted(by_seed.items()) if len(pair) == 2]
    if not both and required:
        raise ValueError("Fig. 6 needs the base and nogan models of one seed (both stages complete)")
    return {"nogan": both[0]["nogan"], "base": both[0]["base"]} if both else {}


def fig6(models: Sequence[TrainedModel], profile: str, device: str = "cpu"):
    """Fig. 6 analogue: VIS, IR, ours without and with the discriminator (stage 1 λ = 0 vs 0.1, the same stage-2
    recipe and seed), one pair, two zoom boxes (the person of Fig. 4, and the 64² window of largest visible
    gradient energy; the paper's red and green boxes are not given)."""
    from ...report import image_grid, zoom_boxes

    pair = gan_models(models, required=True)
    images = figure_pair(FIG6_PAIR, profile)
    panels = [("VIS", images.vis), ("IR", images.ir)]
    for variant, title in (("nogan", "ours without discriminator"), ("base", "ours with discriminator")):
        fused = amfe_source(pair[variant], device=device).fuse(images, [AMFE_RULE])[AMFE_RULE]
        panels.append((f"{title}\n[{pair[variant].key}]", quantise(fused)))
    boxes = [FIGURE_BOXES["fig4"][0][:4] + ("ul",), (*busiest_window(images.vis), "ll")]
    dataset, stem = FIGURE_PAIRS[FIG6_PAIR]
    fig = image_grid([[v for _, v in panels]], [""], [], cell=2.8, panel_titles=[[t for t, _ in panels]],
                     title=f"Fig. 6 analogue: {dataset}/{stem} (scene not named by the paper)"
                     + (" (top-left 128², quick)" if profile == "quick" else ""))
    zoom_boxes(fig, [boxes] * len(panels))
    return fig


def fig6_metrics(models: Sequence[TrainedModel], profile: str, out: Path, verify: str | None = "sample",
                 device: str = "cpu") -> tuple[pd.DataFrame, engine.RawResults]:
    """The measurable side of Fig. 6's claim: the six metrics of ours without vs with the discriminator on the 25
    TNO pairs (mean and std over pairs per variant, and with − without). eval: read + verify; else compute."""
    pair = gan_models(models, required=True)
    raw = engine.collect([amfe_source(m, device=device) for m in pair.values()], [tno25(profile)], (AMFE_RULE,),
                         metrics=METRICS, convention=CONVENTION, out=out, compute=profile != "eval",
                         verify=verify if profile == "eval" else None)
    variant = {f"amfe_{m.key}": v for v, m in pair.items()}
    long = raw.rows.assign(variant=raw.rows["source"].map(variant)).melt(
        id_vars=["variant", "stem"], value_vars=METRICS, var_name="metric")
    stats = long.groupby(["metric", "variant"], sort=False)["value"].agg(["mean", "std", "count"]).unstack("variant")
    table = pd.DataFrame({"metric": METRICS})
    for v in ("nogan", "base"):
        table[f"{v}_mean"] = [stats.at[m, ("mean", v)] for m in METRICS]
        table[f"{v}_std"] = [stats.at[m, ("std", v)] for m in METRICS]
    table["with_minus_without"] = table["base_mean"] - table["nogan_mean"]
    table["n"] = [int(stats.at[m, ("count", "base")]) for m in METRICS]
    return table, raw


# --------------------------------------------------------------------------- Fig. 8: mean and variance on 25 pairs

def fig8_stats(rows: pd.DataFrame) -> pd.DataFrame:
    """Per method and metric over the 25 pairs: mean, variance (ddof = 0, as the caption says), std, n."""
    long = rows.melt(id_vars=["source", "rule", "stem"], value_vars=METRICS, var_name="metric")
    long["method"] = [method_label(s, r) for s, r in zip(long["source"], long["rule"])]
    grouped = long.groupby(["method", "metric"], sort=False)["value"]
    stats = grouped.agg(mean="mean", var=lambda v: float(np.var(v, ddof=0)), std=lambda v: float(np.std(v)),
                        n="count").reset_index()
    return stats.assign(metric=pd.Categorical(stats["metric"], METRICS)).sort_values(
        ["metric", "method"], kind="stable").assign(metric=lambda f: f["metric"].astype(str)).reset_index(drop=True)


def fig8(stats: pd.DataFrame, title: str):
    """Six panels (one per metric): a marker at each method's mean, a line of ± the variance (the caption's
    "length of lines means variance")."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(dict.fromkeys(stats["method"]))
    short = [m.split(" (")[0] + (" " + m.split("[")[1].rstrip("]") if "[" in m else "") for m in methods]
    fig, axes = plt.subplots(2, 3, figsize=(10, 5.6))
    for ax, metric in zip(axes.flat, METRICS):
        cells = stats[stats["metric"] == metric].set_index("method").reindex(methods)
        x = np.arange(len(methods))
        ax.errorbar(x, cells["mean"], yerr=cells["var"], fmt="o", capsize=4, color="tab:blue")
        ax.set_xticks(x, short, rotation=20, fontsize=7, ha="right")
        ax.set_title(metric, fontsize=9)
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- claims and fidelity

def table1_cells(table: pd.DataFrame) -> pd.DataFrame:
    """Table 1 cells we reproduce, long: our CBF/GTF against the paper's CBF/GTF and each AMFE model against the
    paper's fifth number (spec reading "Ours"), ``reported | ours_mean | delta_pct``. The MFEIF column is a
    reference (another network, the authors' weights), not a reproduction: it is left out of these cells."""
    ours, paper = wide(table), reported_table1("spec")
    rows = []
    for column in ours.columns:
        if column.startswith("MFEIF"):
            continue
        reference = column if column in ("CBF", "GTF") else "Ours"
        for (dataset, metric), value in ours[column].items():
            rows.append({"table": "1", "dataset": dataset, "method": column, "metric": metric,
                         "reported": paper.at[(dataset, metric), reference], "ours_mean": value})
    frame = pd.DataFrame(rows, columns=report.KEYS + ["reported", "ours_mean"])
    frame["delta_pct"] = 100.0 * (frame["ours_mean"] - frame["reported"]) / frame["reported"].abs()
    return frame


def claim_best(frame: pd.DataFrame, where: str) -> pd.DataFrame:
    """The paper's "ours is best on all six metrics" on our columns: for each learned column, in how many rows of
    ``frame`` (rows: cells, columns: methods, larger is better) it beats every classical column we run (CBF, GTF),
    and whether it is the largest of all our columns."""
    classical = [c for c in frame.columns if c in ("CBF", "GTF")]
    rows = []
    for column in frame.columns:
        if column in classical:
            continue
        beats = (frame[column].values[:, None] > frame[classical].values).all(axis=1)
        largest = (frame.idxmax(axis=1) == column)
        rows.append({"claim": "ours best on all six metrics", "where": where, "column": column,
                     "rows": int(len(frame)), "beats_cbf_gtf": int(beats.sum()), "best_of_ours": int(largest.sum()),
                     "holds": bool(beats.all())})
    return pd.DataFrame(rows)


def claim_gan(curves: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Fig. 5's "the GAN scheme decreases faster and reaches a lower loss": over the epochs both stage-1 runs
    have, how often the run with the discriminator has the lower L_pixel + γ L_SSIM, and at the last such epoch."""
    if set(curves) != {"base", "nogan"}:
        return pd.DataFrame([{"claim": "GAN lowers the reconstruction loss", "epochs_compared": 0,
                              "gan_lower": 0, "last_epoch": None, "gan_last": None, "nogan_last": None,
                              "holds": None}])
    both = curves["base"][["epoch", "recon"]].merge(curves["nogan"][["epoch", "recon"]], on="epoch",
                                                    suffixes=("_gan", "_nogan"))
    lower = both["recon_gan"] < both["recon_nogan"]
    last = both.iloc[-1]
    return pd.DataFrame([{"claim": "GAN lowers the reconstruction loss", "epochs_compared": int(len(both)),
                          "gan_lower": int(lower.sum()), "last_epoch": int(last["epoch"]),
                          "gan_last": float(last["recon_gan"]), "nogan_last": float(last["recon_nogan"]),
                          "holds": bool(lower.sum() * 2 > len(both) and last["recon_gan"] < last["recon_nogan"])}])


TABLE2_ABLATIONS = ["Ours w/o D", "Ours w/o A", "Ours w/o S"]


def claim_table2(table: pd.DataFrame) -> pd.DataFrame:
    """Table 2's ordering: per ablation row, the metrics on which Ours is above it, in the paper and in ours (the
    paper's text: w/o A has the higher CC, "the other five metrics all decline significantly without it")."""
    rows = []
    for ablation in TABLE2_ABLATIONS:
        cells = table[table["method"].isin(["Ours", ablation])].pivot(index="metric", columns="method",
                                                                     values=["reported", "ours_mean"])
        paper_above = cells[("reported", "Ours")] > cells[("reported", ablation)]
        built = cells[("ours_mean", ablation)].notna().all() and cells[("ours_mean", "Ours")].notna().all()
        ours_above = cells[("ours_mean", "Ours")] > cells[("ours_mean", ablation)]
        rows.append({"claim": "Table 2 ordering: Ours above the ablation", "ablation": ablation,
                     "paper_metrics_above": ", ".join(m for m in METRICS if paper_above.get(m, False)),
                     "ours_metrics_above": ", ".join(m for m in METRICS if ours_above.get(m, False)) if built
                     else "not trained (owed)",
                     "same_metrics": bool((paper_above == ours_above).all()) if built else None})
    return pd.DataFrame(rows)


# The Table 2 variants not trained yet, and the commands that train them (the reduced CPU protocol of the
# committed base model; each about 40 minutes of one thread on the shared 2-core machine: stage 1 ~15, stage 2
# ~24). Stage 1 must be retrained for both: w/o D changes the extractor, and w/o S's decoder has no skip inputs,
# so neither can reuse the base auto-encoder (spec §7).
OWED_TRAININGS = {
    "Ours w/o D": "python -m fusion_core.papers.amfe.train --protocol reduced --variant woD --seed 0 --threads 1",
    "Ours w/o S": "python -m fusion_core.papers.amfe.train --protocol reduced --variant woS --seed 0 --threads 1",
}
