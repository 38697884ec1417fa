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
    """One row per direct child of the main network and of its frozen columns: output shape of a forward pass on a
    ``size``² pair (N = 1), trainable and frozen parameters. The rows sum to the whole network."""
    rows, shapes = [], {}
    watched: list[tuple[str, nn.Module]] = []
    for name, child in model.named_children():
        if isinstance(child, nn.Module) and name in ("attention",):
            watched += [(f"attention.{n}", c) for n, c in child.named_children()]
        elif isinstance(child, nn.Module):
            watched.append((name, child))
    hooks = []
    for name, module in watched:
        def hook(_m, _inputs, output, name=name):
            out = output[0] if isinstance(output, (list, tuple)) else output
            out = out["F_S"] if isinstance(out, dict) else out
            shapes.setdefault(name, "x".join(str(s) for s in out.shape[1:]))
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
