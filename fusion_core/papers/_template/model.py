"""TEMPLATE network: replace with ``<Title>`` (<authors> <year>, spec <NNN>).

Replace this docstring with the paper's figure as a sketch, every paper-vs-code decision (a constructor flag
each, the behaviour that produced the published numbers as default, with the reason) and the parameter count.
The skeleton is the shape DIDFuse and Res2NetFuse share: a shared encoder, a training-free fusion rule on the
features, a decoder. Blocks come from :mod:`fusion_core.nets.blocks`; add one there only when two papers use it.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ...io import torch_load
from ...nets.blocks import ConvNormAct
from ...rules import get_rule

PAPER = "_template"  # in the copy: the folder name, the method name and the <paper>/ prefix of its own rules


class TemplateNet(nn.Module):
    """Encoder 1→16→``channels``, decoder ``channels``→16→1 (3×3, reflect padding): replace with Table/Fig. N."""

    def __init__(self, channels: int = 32):
        super().__init__()
        self.config = {"channels": channels}  # saved in checkpoints, so a checkpoint rebuilds its own network
        self.encoder = nn.Sequential(ConvNormAct(1, 16, padding="reflect", norm="none", act="relu"),
                                     ConvNormAct(16, channels, padding="reflect", norm="none", act="relu"))
        self.decoder = nn.Sequential(ConvNormAct(channels, 16, padding="reflect", norm="none", act="relu"),
                                     ConvNormAct(16, 1, padding="reflect", norm="none", act="sigmoid"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction (what the training loss sees): N×1×H×W in [0, 1] → N×1×H×W."""
        return self.decoder(self.encoder(x))

    def fuse(self, ir: torch.Tensor, vis: torch.Tensor, rule: str = "ave") -> torch.Tensor:
        """Encode both images, merge the features with ``rule`` (this paper's own first), decode."""
        merge = get_rule(rule, paper=PAPER)
        return self.decoder(merge(self.encoder(ir), self.encoder(vis)))


# A rule whose maths is this paper's own is registered as "<name>/<rule>" (a plain name only when the maths is the
# same in every paper, e.g. "sum", "ave" in fusion_core/rules.py); the equation goes in its docstring:
#
# from ...rules import RULES
#
# @RULES.register(f"{PAPER}/max")
# def max_rule(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
#     """Eq. N: element-wise maximum of the two feature maps."""
#     return torch.maximum(a, b)


def load_checkpoint(path: str | Path, device: str = "cpu") -> TemplateNet:
    """A network from a checkpoint written by :func:`fusion_core.train.train` (weights, class, config)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {PAPER} checkpoint not found")
    state = torch_load(path, device)
    if not isinstance(state, dict) or state.get("model_class") != TemplateNet.__name__:
        raise ValueError(f"{path}: not a {TemplateNet.__name__} checkpoint")
    model = TemplateNet(**(state.get("model_config") or {}))
    model.load_state_dict(state["model"])
    return model.to(device).eval()


def build(weights=None, rule=None, device="cpu"):
    """The fusion method: ``weights`` a checkpoint, ``rule`` a rule name (default ``ave``). Returns a Fuser."""
    if weights is None:
        raise ValueError(f"method '{PAPER}' needs --weights (a checkpoint of train.py)")
    model = load_checkpoint(weights, device)

    def fuse(ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return model.fuse(ir, vis, rule or "ave").clamp(0, 1)

    fuse.model = model  # type: ignore[attr-defined]
    return fuse


# In the copy, register the method (``python -m fusion_core methods`` then lists it; see papers/res2netfuse/model.py
# for default weights):
#
# from ...methods import METHODS, describe
#
# describe(PAPER, "learned", "<Author> et al. <year>", rules=("ave", f"{PAPER}/max"))
# METHODS.register(PAPER)(build)
