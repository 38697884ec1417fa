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


def raw_results(models: Sequence[TrainedModel], profile: str, out: Path, verify: str | None = "sample",
                device: str = "cpu") -> engine.RawResults:
    """Per-image rows of every model × rule on the test set (quick/full compute what is missing; eval reads and
    re-fuses ``verify``'s sample), with the paper's labels added: ``model`` (row) and ``strategy`` (l1, mean)."""
    computing = profile != "eval"
    result = engine.collect(sources(models, device), [test_set(profile)], list(RULES.values()),
                            metrics=METRICS + EXTRA_METRICS, convention=CONVENTION, out=out, compute=computing,
                            verify=None if computing else verify)
    paper_rule = {ours: label for label, ours in RULES.items()}
    result.rows = result.rows.assign(model=result.rows["variant"].map(ROW_LABELS),
                                     strategy=result.rows["rule"].map(paper_rule))
    return result


def per_run_means(raw: pd.DataFrame, table: str, dataset: str = "TNO-20", model_names=None) -> pd.DataFrame:
    """Long form (table, dataset, method, metric, value) with one value per seed: the mean over images."""
    metrics = [m for m in METRICS + EXTRA_METRICS if m in raw.columns]
    means = raw.groupby(["model", "strategy", "seed"])[metrics].mean().reset_index()
    long = means.melt(id_vars=["model", "strategy", "seed"], value_vars=metrics, var_name="metric")
    names = model_names or {}
    long["method"] = long["model"].map(lambda m: names.get(m, m)) + "/" + long["strategy"]
    return long.assign(table=table, dataset=dataset)[["table", "dataset", "method", "metric", "seed", "value"]]


def strategy_signs(table: pd.DataFrame, model: str) -> tuple[int, int]:
    """Ablation cells l1 − mean for one model: (cells counted, cells with the paper's sign)."""
    from ...report import sign_agreement

    renamed = table[table["method"].str.startswith(model + "/")]
    return sign_agreement(renamed, f"{model}/l1", [f"{model}/mean"])


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
