"""SAVF measurements (paper 000). The paper has no table and no number to compare with (spec §6): its Figs. 9–11 are
images absent from the text, so every output here is our own measurement, never a "reproduced" cell.

* :func:`model_summary` — Fig. 2's framework as a model summary: every module of the three networks with its output
  shape from a real forward pass and its trainable / frozen parameter count.
* :func:`attention_metrics` — sub-task 1 on the held-out ``tno_masks20`` pairs (``splits/attention_test.txt``): MAE,
  max F-measure (β² = 0.3) and IoU at 0.5 of F_S against the mask, next to an IR-intensity baseline (the min–max
  normalised IR image used as an attention map), at the size the attention net was trained on.

Nothing here opens an image file (:mod:`fusion_core.data`) or trains (``train.py``).
"""
from __future__ import annotations

from typing import Callable, Sequence

import pandas as pd
import torch
from torch import nn

from ... import data
from ...train import TrainedModel
from .model import PAPER, SAVFNet, load_checkpoint
from .train import PROTOCOLS, read_mask, resize

CONVENTION = "savf"
METRICS = ["EN", "CPBD", "JNB", "VIF", "AG", "SSIM", "MI"]  # Sec. 5.2's six + EN (spec §5.2)
F_BETA2 = 0.3  # the saliency literature's β² of the F-measure
SUBSTITUTES = [
    "no CVS (EVS/SVS aviation) data: private; only the IR-VIS half of the paper is run",
    "attention labels: tno_masks20 salient-target masks (15 train / 5 held out), not the paper's 1800+2522 labelled pairs",
    "main-task training pairs: roadscene221 (221), not the paper's 1800 IR-VIS (+2522 CVS) pairs",
    "enhancement corpus: roadscene221 vis_hr + nir_country52 vis (273 images), not COCO2014 (>70,000)",
    "backbone: VGG16 layout trained by us in the enhancement stage (no ImageNet weights offline); "
    "the reduced protocol uses 1/8 of its widths",
    "test pairs: tno42 without the 20 tno_masks20 scenes (22) and vifb21 (21), not VT821 (RGBT-Saliency)",
    "reduced protocol: 96x96 images, width 16, a few CPU epochs per stage (spec defaults: 256x256, width 64)",
]


# --------------------------------------------------------------------------- Fig. 2 as a model summary

def model_summary(model: SAVFNet, size: int = 64) -> pd.DataFrame:
    """One row per direct child of the main network and of its frozen attention column: output shape(s) of a forward
    pass on a ``size``² pair (N = 1; the backbone's five stages separated by "/"), trainable and frozen parameters.
    The rows sum to the whole network except EnhanceNet's decoder, which the main task does not run."""
    rows, shapes = [], {}
    watched: list[tuple[str, nn.Module]] = []
    for name, child in model.named_children():
        if name == "attention" and child is not None:
            watched += [(f"attention.{n}", c) for n, c in child.named_children()]
        elif name == "enhance":
            watched.append(("enhance (encoder E)", child.encoders[0]))  # the main net uses E only (F_Enhance)
        elif child is not None:
            watched.append((name, child))
    hooks = []
    for name, module in watched:
        def hook(_m, _inputs, output, name=name):
            outs = output if isinstance(output, (list, tuple)) else [output]  # the backbone returns its five stages
            text = " / ".join("x".join(str(s) for s in o.shape[1:]) for o in outs)
            shapes.setdefault(name, text)
        hooks.append(module.register_forward_hook(hook))
    try:
        with torch.inference_mode():
            ir = torch.rand(1, 1, size, size, generator=torch.Generator().manual_seed(0))
            model(ir, ir.flip(-1))
    finally:
        for h in hooks:
            h.remove()
    for name, module in watched:
        total = sum(p.numel() for p in module.parameters())
        trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
        rows.append({"module": name, "class": type(module).__name__, "output (CxHxW)": shapes.get(name, "(not run)"),
                     "trainable": trainable, "frozen": total - trainable})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- sub-task 1: attention detection

def mae(pred: torch.Tensor, label: torch.Tensor) -> float:
    """Mean absolute error between an attention map in [0, 1] and a binary label."""
    return float((pred - label).abs().mean())


def iou(pred: torch.Tensor, label: torch.Tensor, threshold: float = 0.5) -> float:
    """|P ∩ G| / |P ∪ G| with P = pred ≥ threshold (1.0 when both are empty)."""
    p, g = pred >= threshold, label > 0.5
    union = (p | g).sum()
    return 1.0 if union == 0 else float((p & g).sum() / union)


def max_f_measure(pred: torch.Tensor, label: torch.Tensor, beta2: float = F_BETA2, steps: int = 256) -> float:
    r"""$\max_t F_t$, $F = \frac{(1 + \beta^2) P R}{\beta^2 P + R}$ over thresholds $t = k/(steps-1)$ (0 where P = R = 0)."""
    g = label.flatten() > 0.5
    p = pred.flatten()
    best = 0.0
    for k in range(steps):
        hit = p >= k / (steps - 1)
        tp = float((hit & g).sum())
        if tp == 0:
            continue
        precision, recall = tp / float(hit.sum()), tp / float(g.sum())
        best = max(best, (1 + beta2) * precision * recall / (beta2 * precision + recall))
    return best


def ir_baseline(ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
    """The IR-intensity baseline: the IR image min–max normalised per image (hot = attended)."""
    low, high = ir.amin((2, 3), keepdim=True), ir.amax((2, 3), keepdim=True)
    return (ir - low) / (high - low).clamp_min(1e-12)


def attention_predictor(model: TrainedModel | SAVFNet, device: str = "cpu") -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """F_S of an OURS+ model (the frozen attention column of the main checkpoint)."""
    net = model if isinstance(model, SAVFNet) else load_checkpoint(model.path, device, expect="SAVFNet")
    if net.attention is None:
        raise ValueError("an OURS model (savf_noatt) has no attention column")

    def predict(ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return net.attention(ir.to(device), vis.to(device))["F_S"].cpu()
    return predict


def attention_metrics(predictors: dict[str, Callable], pairs: Sequence[data.Pair], size: int) -> pd.DataFrame:
    """Per pair and predictor: MAE, max F (β² = 0.3), IoU at 0.5, on images and masks resized to ``size``²."""
    rows = []
    for pair in pairs:
        images = data.load_pair(pair)
        ir, vis, label = resize(images.ir, size), resize(images.vis, size), resize(read_mask(pair), size, "nearest")
        for name, predict in predictors.items():
            pred = predict(ir, vis)
            rows.append({"pair": pair.name, "predictor": name, "MAE": mae(pred, label),
                         "maxF": max_f_measure(pred, label), "IoU": iou(pred, label)})
    return pd.DataFrame(rows)


def attention_table(model: TrainedModel, profile: str, device: str = "cpu") -> pd.DataFrame:
    """Held-out attention metrics of ``model``'s attention column and of the IR baseline (quick: two pairs)."""
    pairs = data.load_split(PAPER, "attention_test")[:2 if profile == "quick" else None]
    size = PROTOCOLS[model.protocol].attention.size
    return attention_metrics({"savf F_S": attention_predictor(model, device), "IR intensity": ir_baseline}, pairs, size)


def attention_summary(per_pair: pd.DataFrame) -> pd.DataFrame:
    """Mean over the held-out pairs per predictor."""
    return per_pair.groupby("predictor", sort=False)[["MAE", "maxF", "IoU"]].mean().reset_index()


# --------------------------------------------------------------------------- Fig. 1 / Fig. 4: one pair through both variants

def fuse_example(models: Sequence[TrainedModel], pair: data.Pair, crop: int | None = None,
                 device: str = "cpu") -> dict[str, torch.Tensor]:
    """IR, VIS, F_S, OURS, OURS+ and the composite display (spec §2.7) of one pair (``crop``: its top-left crop²)."""
    from .model import composite
    from .train import METHOD_OF_VARIANT

    images = data.load_pair(pair)
    ir, vis = images.ir, images.vis
    if crop is not None:
        ir, vis = ir[..., :crop, :crop], vis[..., :crop, :crop]
    out = {"IR": ir, "VIS": vis}
    nets = {METHOD_OF_VARIANT[m.variant]: load_checkpoint(m.path, device, expect="SAVFNet") for m in models}
    with torch.inference_mode():
        if "savf" in nets:
            from .model import pad_to_multiple
            (ir_p, (h, w)), (vis_p, _) = pad_to_multiple(ir.to(device)), pad_to_multiple(vis.to(device))
            out["F_S"] = nets["savf"].attention(ir_p, vis_p)["F_S"][..., :h, :w].cpu()
            out["OURS+"] = nets["savf"].fuse(ir.to(device), vis.to(device)).cpu()
        if "savf_noatt" in nets:
            out["OURS"] = nets["savf_noatt"].fuse(ir.to(device), vis.to(device)).cpu()
        if "F_S" in out and "OURS" in out:
            out["OURS+ composite"] = composite(out["OURS+"], out["OURS"], out["F_S"])
    return out


def histories(model: TrainedModel) -> dict[str, pd.DataFrame]:
    """The loss history of every stage of ``model``'s run (the attention stage only for OURS+)."""
    from .train import stage_history

    stages = ["enhance"] + (["attention"] if model.variant == "base" else []) + ["main"]
    return {stage: stage_history(model, stage) for stage in stages}


def plot_histories(runs: dict[str, dict[str, pd.DataFrame]], title: str):
    """One panel per stage: the total loss per epoch of each run (OURS+, OURS)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = ["enhance", "attention", "main"]
    fig, axes = plt.subplots(1, 3, figsize=(10, 2.8))
    for ax, stage in zip(axes, stages):
        for label, run in runs.items():
            if stage in run and len(run[stage]):
                ax.plot(run[stage]["epoch"], run[stage]["total"], marker="o", ms=3, label=label)
        ax.set_title(stage), ax.set_xlabel("epoch"), ax.set_ylabel("L_f")
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- Figs. 9 / 10: objective metrics

# The paper's competitors we can run (Sec. 5.3 list ∩ the registered classical methods; "Wavelet" = dwt).
BASELINES = {"CVT": None, "DTCWT": "dtcwt", "GTF": "gtf", "MSVD": "msvd", "LP": "lp", "LPSR": None, "RP": "rp",
             "Wavelet": "dwt", "DSIFT": None, "CBF": "cbf", "JSR": None, "CNN": None, "DL": None, "FZL": None,
             "FusionGAN": None, "IFCNN": None}
QUICK_CROP, QUICK_PAIRS = (128, 128), 2
TEST_ROLES = ("test_tno", "test_vifb")


def test_sets(profile: str) -> list:
    """``test_tno`` (22 pairs) and ``test_vifb`` (21); quick: the first two pairs of each, top-left 128²."""
    from ... import engine

    if profile == "quick":
        return [engine.DataSet.split(PAPER, role, QUICK_CROP, QUICK_PAIRS) for role in TEST_ROLES]
    return [engine.DataSet.split(PAPER, role) for role in TEST_ROLES]


def sources(models: Sequence[TrainedModel], baselines: Sequence[str] | None = None, device: str = "cpu") -> list:
    """One source per trained SAVF model (``savf``: OURS+, ``savf_noatt``: OURS; no fusion rule) and per runnable
    competitor of the paper's list (classical re-implementations, not the authors' MATLAB codes)."""
    import dataclasses

    from ... import engine
    from .train import METHOD_OF_VARIANT

    ours = [dataclasses.replace(engine.method_source(METHOD_OF_VARIANT[m.variant], weights=m.path, device=device),
                                key=m.key, rules=None, labels={"variant": m.variant, "seed": m.seed}) for m in models]
    chosen = [name for name in (baselines if baselines is not None else BASELINES) if BASELINES.get(name)]
    return ours + [engine.method_source(BASELINES[name]) for name in chosen]


# VIFB's released fused images of three learned competitors the paper compares (spec §5.3): vifb21 only.
VIFB_REFERENCES = {"CNN": "CNN", "DL": "DLF", "IFCNN": "IFCNN"}


def vifb_reference_source(name: str):
    """The VIFB benchmark's fused image of ``name`` (``<data root>/../reference/vifb/fused/<stem>_<file>.jpg``), grey
    by BT.601 luma (VIFB fused the colour visible image), cropped like its pair. Labelled "VIFB reference output"."""
    from ... import engine

    folder = data.data_root().parent / "reference" / "vifb" / "fused"

    def fuse(images: data.PairImages, rules) -> dict:
        if images.pair.dataset != "vifb21":
            raise data.DataError(f"{images.pair.name}: VIFB released fused images for vifb21 only")
        fused = data.read_grey(folder / f"{images.pair.stem}_{VIFB_REFERENCES[name]}.jpg")
        h, w = images.ir.shape[-2:]
        return {None: fused[..., :h, :w]}

    return engine.Source(f"vifb_{name}", "images", "files", fuse, None, {"variant": "VIFB reference output"})


def fusion_metrics(models: Sequence[TrainedModel], profile: str, out, verify: str | None = "sample",
                   baselines: Sequence[str] | None = None, device: str = "cpu", references: bool = True):
    """Per-image rows of the convention ``savf`` metrics for every source on both test sets, plus (``references``)
    the VIFB reference outputs on ``test_vifb`` (quick and full compute what is missing; eval reads the committed
    raw files and re-fuses ``verify``'s sample)."""
    from ... import engine

    computing = profile != "eval"
    options = dict(metrics=METRICS, convention=CONVENTION, out=out, compute=computing,
                   verify=None if computing else verify)
    sets = test_sets(profile)
    raw = engine.collect(sources(models, baselines, device), sets, [None], **options)
    if references:
        extra = engine.collect([vifb_reference_source(n) for n in VIFB_REFERENCES], [sets[1]], [None], **options)
        raw = engine.RawResults(pd.concat([raw.rows, extra.rows], ignore_index=True),
                                pd.concat([raw.checks, extra.checks], ignore_index=True), raw.missing + extra.missing)
    return raw


def metrics_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean ± std over the pairs of each test set, per source and metric (OURS / OURS+ named as in the paper)."""
    names = {"base_seed0": "OURS+ (savf)", "noatt_seed0": "OURS (savf_noatt)",
             **{f"vifb_{n}": f"{n} (VIFB reference output)" for n in VIFB_REFERENCES}}
    long = rows.melt(id_vars=["source", "role", "stem"], value_vars=[m for m in METRICS if m in rows], var_name="metric")
    long["method"] = long["source"].map(lambda s: names.get(s, s))
    table = long.groupby(["role", "method", "metric"], sort=False)["value"].agg(["mean", "std", "count"]).reset_index()
    return table.rename(columns={"count": "pairs"})


# --------------------------------------------------------------------------- the claim: attention highlights the target

def target_contrast(image: torch.Tensor, label: torch.Tensor) -> float:
    """Mean intensity inside the labelled target minus outside it (a fused image that "highlights the region of human
    concern" (Sec. 1) raises it)."""
    inside = label > 0.5
    if not inside.any() or inside.all():
        raise ValueError("the label must mark some pixels, not all")
    return float(image[inside].mean() - image[~inside].mean())


def contrast_table(models: Sequence[TrainedModel], profile: str, device: str = "cpu",
                   labels: dict[str, str] | None = None) -> pd.DataFrame:
    """Target contrast (:func:`target_contrast`) of IR, VIS, OURS and OURS+ on the held-out ``tno_masks20`` pairs
    (none of them trained the attention net; the main net trained on roadscene221). Native resolution; quick: the
    first two pairs resized to 64². ``labels``: the image name of each model variant (default: base → OURS+,
    noatt → OURS; an ablation row passes its own)."""
    names = {"base": "OURS+", "noatt": "OURS", **(labels or {})}
    pairs = data.load_split(PAPER, "attention_test")[:2 if profile == "quick" else None]
    nets = {names[m.variant]: load_checkpoint(m.path, device, expect="SAVFNet") for m in models}
    rows = []
    for pair in pairs:
        images, label = data.load_pair(pair), read_mask(pair)
        ir, vis = images.ir, images.vis
        if profile == "quick":
            ir, vis, label = resize(ir, 64), resize(vis, 64), resize(label, 64, "nearest")
        shown = {"IR": ir, "VIS": vis}
        with torch.inference_mode():
            for name, net in nets.items():
                shown[name] = net.fuse(ir.to(device), vis.to(device)).clamp(0, 1).cpu()
        rows += [{"pair": pair.name, "image": name, "target_contrast": target_contrast(img, label)}
                 for name, img in shown.items()]
    return pd.DataFrame(rows)


def plot_metrics(table: pd.DataFrame, role: str, title: str):
    """Fig. 9/10 substitute: one bar chart per metric (mean ± std over the pairs of ``role``), methods in table order."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    part = table[table["role"] == role]
    metrics = [m for m in METRICS if m in set(part["metric"])]
    fig, axes = plt.subplots(1, len(metrics), figsize=(2.2 * len(metrics), 3.0), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        rows = part[part["metric"] == metric]
        colours = ["tab:red" if m.startswith("OURS") else "tab:blue" if "VIFB" in m else "tab:grey" for m in rows["method"]]
        ax.bar(range(len(rows)), rows["mean"], yerr=rows["std"].fillna(0), color=colours, capsize=2)
        ax.set_xticks(range(len(rows)), [m.split(" ")[0] for m in rows["method"]], rotation=90, fontsize=7)
        ax.set_title(metric, fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
