"""Res2NetFuse experiments (paper 002): Tables I–IV and Figs. 5–11 vs the paper, declared as sources × sets × rules.

Tables II and IV are built from the raw-results engine's per-image CSVs (:mod:`fusion_core.engine`):
``results/res2netfuse/raw/test/<variant>_seed<S>_<rule>.csv``, one per trained model (``single_seed0``: the
paper's Res2NetFuse_1 row; ``many_seed0``: its Res2NetFuse_80000 row) and rule (``l1``, ``mean_code``: the
paper's "mean", the code's soft-max, spec 002 §3.1). Models come from ``train.py``
(:func:`.train.ensure_models`). Table III (reconstruction) is not fusion: :func:`recon_raw` computes it, and
verifies it with the engine's policy (same tolerance, sample and report table).

Profiles (the notebooks' ``profile`` parameter):

* ``full``: trains (or resumes) the paper protocol into ``checkpoints/res2netfuse/`` and computes every missing raw
  file (a file from other weights is stale and recomputed).
* ``eval``: no training; reads the committed checkpoints and raw files and re-fuses the smallest test pair of each
  model (``verify="all"``: every pair) to check that code + checkpoint still reproduce them.
* ``quick``: a 20-iteration model on a 64² crop of the training image, two test pairs cropped to 128², all under
  ``build/quick/``: proves the code path, its numbers mean nothing.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from ... import data, engine
from ...evaluate import crop_images
from ...io import write_csv
from ...train import TrainedModel

PAPER = "res2netfuse"
ROW_LABELS = {"single": "Res2NetFuse_1", "many": "Res2NetFuse_80000"}  # our variant → the paper's row label
RULES = {"l1": "l1", "mean": "mean_code"}  # the paper's rule label → our rule (the code's soft-max "mean")
# Tables II/IV columns in the paper's order (li convention names; SSIM = SSIM_a of Eq. 9, MEF_SSIM = "MS_SSIM").
METRICS = ["SSIM", "EN", "MI", "Qabf", "FMI_dct", "FMI_w", "SCD", "MEF_SSIM"]
EXTRA_METRICS = ["MI_correct"]
CONVENTION = "res2netfuse"
RECON_METRICS = ["SSIM", "PSNR", "MSE"]
QUICK_CROP, QUICK_PAIRS = (128, 128), 2  # the quick profile's evaluation: two test pairs, top-left 128²

SUBSTITUTES = [
    "TNO-20 test pairs = tno40 stems 01-20 (DenseFuse's 20 TNO pairs unavailable)",
    "Res2NetFuse_1 trained on skimage 'camera' (COCO_train2014_000000000086.jpg unavailable)",
    "Res2NetFuse_80000 row = R2N_many: 426 images (flir_train180 ir+vis, nir_country52 vis, 14 skimage photos), "
    "not 80,000 MS-COCO images",
    "COCO-20 reconstruction images = flir_test40 vis 01-20",
]


def crop(profile: str) -> tuple[int, int] | None:
    """The evaluated window of every image: quick's top-left 128², else whole images."""
    return QUICK_CROP if profile == "quick" else None


def test_set(profile: str) -> engine.DataSet:
    """The TNO-20 substitute (``splits/test.txt``); quick: its first two pairs, cropped."""
    if profile == "quick":
        return engine.DataSet.split(PAPER, "test", QUICK_CROP, QUICK_PAIRS)
    return engine.DataSet.split(PAPER, "test")


def test_pairs(profile: str) -> list[data.Pair]:
    return list(test_set(profile).pairs)


def sources(models: Sequence[TrainedModel], device: str = "cpu") -> list[engine.Source]:
    """One source per trained model, with both of the paper's rules."""
    return [dataclasses.replace(engine.method_source(PAPER, weights=m.path, rules=tuple(RULES.values()), device=device),
                                key=m.key, checksum=m.checksum, labels={"variant": m.variant, "seed": m.seed})
            for m in models]


# Table IV's competitors that fusion_core can run (paper row label → registered method); the other rows (JSR, JSRSD,
# DenseFuse, FusionGAN, MSDNet) have no code, weights or fused images offline and stay reported only.
COMPETITOR_METHODS = {"DCHWT": "dchwt"}


def competitor_sources() -> list[engine.Source]:
    """One source per computable competitor of Table IV (classical re-implementations: no weights, no rule)."""
    return [engine.method_source(method) for method in COMPETITOR_METHODS.values()]


def raw_results(models: Sequence[TrainedModel], profile: str, out: Path, verify: str | None = "sample",
                device: str = "cpu", competitors: bool = False) -> engine.RawResults:
    """Per-image rows of every model × rule on the test set (quick/full compute what is missing; eval reads and
    re-fuses ``verify``'s sample), with the paper's labels added: ``model`` (row) and ``strategy`` (l1, mean).

    ``competitors``: also :data:`COMPETITOR_METHODS` (``model`` = the paper's row label, no strategy); under
    eval their committed raw files are read and re-fused like the models' (:func:`compute_competitors` writes
    them)."""
    computing = profile != "eval"
    collect = dict(metrics=METRICS + EXTRA_METRICS, convention=CONVENTION, out=out, compute=computing,
                   verify=None if computing else verify)
    result = engine.collect(sources(models, device), [test_set(profile)], list(RULES.values()), **collect)
    paper_rule = {ours: label for label, ours in RULES.items()}
    result.rows = result.rows.assign(model=result.rows["variant"].map(ROW_LABELS),
                                     strategy=result.rows["rule"].map(paper_rule))
    if not competitors:
        return result
    extra = engine.collect(competitor_sources(), [test_set(profile)], [None], **collect)
    label = {method: row for row, method in COMPETITOR_METHODS.items()}
    if len(extra.rows):
        extra.rows = extra.rows.assign(model=extra.rows["source"].map(label), strategy=None)
    return engine.merge([result, extra])


def compute_competitors(out: Path | None = None) -> list[Path]:
    """Write the raw files of Table IV's computable competitors on the whole test set (what eval reads), where
    missing; nothing is trained. Returns the files."""
    from ...report import RESULTS_ROOT

    out = Path(out) if out is not None else RESULTS_ROOT / PAPER
    dataset, competitors = test_set("eval"), competitor_sources()
    engine.collect(competitors, [dataset], [None], metrics=METRICS + EXTRA_METRICS, convention=CONVENTION, out=out,
                   compute=True)
    return [engine.raw_path(out, source, dataset.role, None) for source in competitors]


def profile_line(profile: str, models: Sequence[TrainedModel], device: str) -> dict:
    """The run description each table carries: profile, N per variant, the device the run used, protocol, data."""
    counts: dict[str, int] = {}
    for m in models:
        counts[m.variant] = counts.get(m.variant, 0) + 1
    protocols = sorted({m.protocol for m in models})
    return {"profile": profile, "trainings": "; ".join(f"{k} n={v}" for k, v in counts.items()) or "none",
            "device": device, "protocol": ", ".join(protocols) or "none",
            "test": "tno40 01-20 (TNO-20 substitute)" + (" (2 pairs, 128x128 crops)" if profile == "quick" else "")}


def setup(profile: str, threads: int, repeats: int | None, device: str) -> tuple[list[TrainedModel], dict]:
    """The first code cell of notebooks 02–02b (after ``out = report.results_dir(...)``, which must run in the
    notebook itself: it reads the notebook's parameters): torch threads, the models (:func:`train.ensure_models`)
    and the run line of the tables; prints the substitutes. Returns (models, run)."""
    from . import train

    torch.set_num_threads(threads)
    models = train.ensure_models(profile, repeats=repeats, device=device)
    print("substitutes:")
    for line in SUBSTITUTES:
        print(" -", line)
    return models, profile_line(profile, models, device)


def shown(models: Sequence[TrainedModel], seed: int) -> dict[str, TrainedModel]:
    """The model of each variant that single-model figures show: seed ``seed``, else the variant's lowest seed."""
    chosen: dict[str, TrainedModel] = {}
    for model in sorted(models, key=lambda m: (m.seed != seed, m.seed)):
        chosen.setdefault(model.variant, model)
    return {v: chosen[v] for v in ROW_LABELS if v in chosen}


def per_run_means(raw: pd.DataFrame, table: str, dataset: str = "TNO-20", model_names=None) -> pd.DataFrame:
    """Long form (table, dataset, method, metric, value) with one value per seed: the mean over images."""
    metrics = [m for m in METRICS + EXTRA_METRICS if m in raw.columns]
    keys = ["model", "strategy", "seed"]
    means = raw.reindex(columns=keys + metrics).groupby(keys, dropna=False)[metrics].mean().reset_index()
    long = means.melt(id_vars=keys, value_vars=metrics, var_name="metric")
    names = model_names or {}
    model = long["model"].map(lambda m: names.get(m, m))
    long["method"] = model.where(long["strategy"].isna(), model + "/" + long["strategy"])  # competitors: no rule
    return long.assign(table=table, dataset=dataset)[["table", "dataset", "method", "metric", "seed", "value"]]


def strategy_signs(table: pd.DataFrame, model: str) -> tuple[int, int]:
    """Ablation cells l1 − mean for one model: (cells counted, cells with the paper's sign)."""
    from ...report import sign_agreement

    renamed = table[table["method"].str.startswith(model + "/")]
    return sign_agreement(renamed, f"{model}/l1", [f"{model}/mean"])


PATTERN = {"EN": "l1", "MI": "l1", "Qabf": "l1", "FMI_w": "l1",
           "SSIM": "mean", "FMI_dct": "mean", "SCD": "mean", "MEF_SSIM": "mean"}  # Table II: the rule that wins


def strategy_pattern(table: pd.DataFrame) -> pd.DataFrame:
    """Table II's pattern on our means: per model row and metric, the paper's winning rule (:data:`PATTERN`),
    ours, and whether they agree."""
    ours = table.dropna(subset=["ours_mean"]).pivot(index="method", columns="metric", values="ours_mean")
    rows = []
    for model in ROW_LABELS.values():
        for metric, winner in PATTERN.items():
            ours_winner = "l1" if ours.loc[f"{model}/l1", metric] > ours.loc[f"{model}/mean", metric] else "mean"
            rows.append({"model": model, "metric": metric, "paper_winner": winner, "ours_winner": ours_winner,
                         "holds": ours_winner == winner})
    return pd.DataFrame(rows)


def architecture_table(model: torch.nn.Module | None = None) -> pd.DataFrame:
    """Table I from the instantiated module: every conv with kernel, stride, channels and activation."""
    from ...nets.blocks import ConvNormAct
    from .model import Res2NetFuse

    model = model or Res2NetFuse()
    rows = []
    for name, module in model.named_modules():
        if isinstance(module, ConvNormAct):
            conv = module.conv
            rows.append({"layer": name, "kernel": conv.kernel_size[0], "stride": conv.stride[0],
                         "in": conv.in_channels, "out": conv.out_channels,
                         "activation": type(module.act).__name__.replace("Identity", "none"),
                         "parameters": sum(p.numel() for p in module.parameters())})
    return pd.DataFrame(rows)


def loss_history(model: TrainedModel) -> pd.DataFrame:
    history = model.path.with_name(f"{model.path.stem}_history.csv")
    if not history.is_file():
        raise FileNotFoundError(f"{history}: no loss history next to the checkpoint")
    return pd.read_csv(history)


def reconstruction_metrics(model: TrainedModel, profile: str, images: Sequence[data.Pair] | None = None,
                           postprocess_mode: str = "code") -> pd.DataFrame:
    """Table III: SSIM, PSNR, MSE (on [0, 1]) between each held-out image and its reconstruction, per image.

    The reconstruction is post-processed as the code did (``postprocess_mode="code"``: per-image min–max
    stretch, uint8 truncation) or clipped and rounded (``"clip_round"``, ours: no stretch).
    SSIM is the li convention's MATLAB-style SSIM (Gaussian σ = 1.5, data range 1).
    """
    from ...metrics import score
    from .model import load_checkpoint, postprocess

    net = load_checkpoint(model.path)
    window = crop(profile)
    rows = []
    for pair in recon_images(profile) if images is None else images:
        image = data.read_grey(pair.vis)
        if window is not None:
            image = image[..., : window[0], : window[1]]
        with torch.no_grad():
            recon = postprocess(net(image * 255.0), postprocess_mode)
        mse = float(((recon.double() - image.double()) ** 2).mean())
        ssim = float(score(recon, image, image, ["SSIM"], CONVENTION)["SSIM"][0])
        rows.append({"image": pair.name, "model": ROW_LABELS[model.variant], "seed": model.seed, "SSIM": ssim,
                     "PSNR": 10 * np.log10(1.0 / mse), "MSE": mse})
    return pd.DataFrame(rows)


def recon_images(profile: str) -> list[data.Pair]:
    """The COCO-20 substitute (``splits/recon_test.txt``, visible images only); quick: the first two."""
    return data.load_split(PAPER, "recon_test")[: QUICK_PAIRS if profile == "quick" else None]


def recon_raw(models: Sequence[TrainedModel], profile: str, out: Path, verify: str | None = "sample",
              postprocess_mode: str = "code") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Table III per-image rows (``raw/recon_<row>_seed<S>[_<mode>].csv``) and the verification table.

    quick/full: computed where the file is missing or holds other images; eval: read, and the engine's policy
    re-computes the sample (the smallest image, or all) and compares with :func:`fusion_core.engine.check_row`.
    """
    frames, checks = [], []
    for model in models:
        suffix = "" if postprocess_mode == "code" else f"_{postprocess_mode}"
        path = Path(out) / "raw" / f"recon_{ROW_LABELS[model.variant]}_seed{model.seed}{suffix}.csv"
        images = recon_images(profile)
        if profile == "eval":
            if not path.is_file():
                raise FileNotFoundError(f"{path}: no committed raw results; run profile='full'")
            stored = pd.read_csv(path)
            sample = engine.DataSet("recon_test", tuple(images)).sample(verify) if verify else []
            by_image = stored.set_index("image")
            for _, fresh in reconstruction_metrics(model, profile, sample, postprocess_mode).iterrows():
                checks.append(engine.check_row(model.key, "recon_test", postprocess_mode, fresh["image"], fresh,
                                               by_image.loc[fresh["image"]], RECON_METRICS))
        elif path.is_file() and list(pd.read_csv(path)["image"]) == [p.name for p in images]:
            stored = pd.read_csv(path)
        else:
            stored = reconstruction_metrics(model, profile, postprocess_mode=postprocess_mode)
            write_csv(path, stored)
        frames.append(stored)
    return pd.concat(frames, ignore_index=True), pd.DataFrame(checks, columns=engine.CHECK_COLUMNS)


RECON_ROWS = {"Res2NetFuse_1": "Res2NetFuseRecons_1", "Res2NetFuse_80000": "Res2NetFuseRecons_80000"}  # Table III


def recon_runs(recon: pd.DataFrame) -> pd.DataFrame:
    """Table III long form: one value per (row, seed, metric), the mean over the images."""
    runs = (recon.groupby(["model", "seed"])[RECON_METRICS].mean().reset_index()
            .melt(id_vars=["model", "seed"], var_name="metric").assign(table="III", dataset="COCO-20"))
    runs["method"] = runs["model"].map(RECON_ROWS)
    return runs


# --------------------------------------------------------------------------- figures

COMPETITORS = [("DCHWT", "dchwt"), ("JSR", None), ("JSRSD", None), ("DenseFuse", None), ("FusionGAN", None),
               ("MSDNet l1", None), ("MSDNet mean", None)]  # Figs 7-9 panels (c)-(i): our re-implementation or None


def plot_losses(histories: dict[int, pd.DataFrame], title: str):
    """Fig. 6: L_pixel, L_ssim and their sum per iteration (log scale), one line per seed; the dashed line at
    iteration 200 is where the paper calls the single-image model stable."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    for ax, key, label in zip(axes, ["pixel", "ssim", "total"], ["(a) L_pixel", "(b) L_ssim", "(c) total"]):
        for seed, history in histories.items():
            ax.plot(history["epoch"], history[key], lw=0.7, alpha=0.8, label=f"seed {seed}")
        ax.axvline(200, ls="--", c="0.5")
        ax.set_yscale("log"), ax.set_xlabel("iteration"), ax.set_title(label)
    axes[-1].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def _fuse(source: engine.Source, images: data.PairImages, rule: str) -> torch.Tensor:
    return source.fuse(images, [rule])[rule]


def qualitative_figure(number: int, pair: data.Pair, model: TrainedModel, profile: str, device: str = "cpu"):
    """Figs 7-9: (a) IR, (b) VIS, (c)-(i) the paper's competitors (our classical re-implementation where one
    exists, labelled "ours-reimpl.", else a grey placeholder), (j)/(k) ``model`` with l1 and mean."""
    from ...fuse import fuse_images
    from ...methods import build_method, method_names
    from ...report import image_grid

    available, source = set(method_names()), sources([model], device)[0]
    images = crop_images(data.load_pair(pair), crop(profile))
    row, titles = [images.ir, images.vis], ["(a) IR", "(b) VIS"]
    for (label, name), letter in zip(COMPETITORS, "cdefghi"):
        if name in available:
            row.append(fuse_images(build_method(name), images))
            titles.append(f"({letter}) {label} ours-reimpl.")
        else:
            row.append(f"{label}\nnot reproduced:\nbaseline unavailable offline")
            titles.append(f"({letter}) {label}")
    for (label, rule), letter in zip(RULES.items(), "jk"):
        row.append(_fuse(source, images, rule))
        titles.append(f"({letter}) Res2NetFuse {label}")
    return image_grid([row[:6], row[6:]], ["", ""], [], cell=2.4, panel_titles=[titles[:6], titles[6:]],
                      title=f"Fig. {number}: group {number - 6} ({pair.name}, {profile} profile)")


def colour_figure(model: TrainedModel, profile: str, title: str, device: str = "cpu"):
    """Fig. 11: VIS to YCbCr (the code; the paper says YUV), Y fused with IR by ``model`` (l1), CbCr re-attached;
    rows IR, VIS, fused; the pairs of ``splits/colour.txt``."""
    from ...report import image_grid

    source, pairs = sources([model], device)[0], data.load_split(PAPER, "colour")
    rows: list[list] = [[], [], []]
    for pair in pairs:
        images = crop_images(data.load_pair(pair), crop(profile))
        rows[0].append(images.ir)
        rows[1].append(data.to_uint8(images.vis, images.cbcr) / 255.0)
        rows[2].append(data.to_uint8(_fuse(source, images, RULES["l1"]), images.cbcr) / 255.0)
    return image_grid(rows, ["(a) IR", "(b) VIS", "(c) fused"], [p.name for p in pairs], title=title)


def recon_examples_figure(models: dict[str, TrainedModel], profile: str, title: str, count: int = 3):
    """Table III examples: the first ``count`` held-out images and each model's reconstruction (the code's
    post-processing)."""
    from ...report import image_grid
    from .model import load_checkpoint, postprocess

    nets = [load_checkpoint(m.path) for m in models.values()]
    window, rows = crop(profile), []
    shown_images = data.load_split(PAPER, "recon_test")[:count]
    for pair in shown_images:
        image = data.read_grey(pair.vis)
        image = image if window is None else image[..., :window[0], :window[1]]
        with torch.no_grad():
            rows.append([image] + [postprocess(net(image * 255.0)) for net in nets])
    labels = {"single": "Res2NetFuse_1", "many": "R2N_many (80000 substitute)"}
    return image_grid(rows, [p.name for p in shown_images], ["input", *(labels[v] for v in models)], title=title)


# --------------------------------------------------------------------------- command line

def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog=f"python -m fusion_core.papers.{PAPER}.experiment",
                                     description="competitors: raw files of Table IV's computable competitors "
                                                 f"({', '.join(COMPETITOR_METHODS)}) on the 20 test pairs, where "
                                                 "missing (what the eval profile reads); trains nothing")
    sub = parser.add_subparsers(dest="command", required=True)
    competitors = sub.add_parser("competitors")
    competitors.add_argument("--out", default=None, help="results folder (default: results/res2netfuse)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    for path in compute_competitors(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
