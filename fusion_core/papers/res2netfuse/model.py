"""Res2NetFuse (Song, Wu, Li, Sun, Palade, arXiv:2112.14540): a DenseFuse-style auto-encoder whose
encoder ends in a Res2Net block; fusion is a training-free rule between encoder and decoder.

    IR  ─┐                                  ┌─ l1-norm / mean ─┐
         ├─ conv3 1→32 ─ conv3 32→64 ─ φ = c + Res2Net(c) ─────┤            ├─ decoder ─ min–max → uint8
    VIS ─┘   (shared encoder weights)                          └────────────┘   (64→64→32→16→1)

Paper vs the authors' code (spec 002 §2–3), each a flag here with the code's behaviour as default
because it produced the published numbers:

* ``share_branch_convs=True``: the block holds ONE 3×3 conv reused by all six branch applications.
* identity skip around the Res2Net block (φ = c + R(c)), in training and at fusion time.
* inputs are raw intensities in [0, 255]; outputs are min–max stretched per image and truncated to
  uint8 (``postprocess="code"``; ``"clip_round"`` is the plain alternative).
* "mean" fusion is a soft-max over min–max-normalised channel means (``mean_code``); Eq. 7 as printed
  (a ratio of channel means) is ``mean_paper``.

Parameter count with the defaults: 89,617 (encoder 29,456 + decoder 60,161).
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ...io import torch_load
from ...methods import METHODS, DefaultWeights, describe
from ...nets.blocks import ConvNormAct, Res2NetBlock
from ...rules import RULES as RULE_REGISTRY
from ...rules import get_rule

CHANNELS = 64
SCALE = 4
DECODER_CHANNELS = (64, 64, 32, 16, 1)


def _conv(cin: int, cout: int, act: str = "relu", kernel: int = 3) -> ConvNormAct:
    # No normalisation anywhere; every conv has a bias and zero "same" padding.
    return ConvNormAct(cin, cout, kernel, padding="zeros", norm="none", act=act)


class Encoder(nn.Module):
    """conv3 1→32, conv3 32→64, then φ = c + Res2Net(c)."""

    def __init__(self, share_branch_convs: bool = True, scale: int = SCALE):
        super().__init__()
        self.conv1 = _conv(1, 32)
        self.conv2 = _conv(32, CHANNELS)
        self.res2net = Res2NetBlock(CHANNELS, scale=scale, share_branch_convs=share_branch_convs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.conv2(self.conv1(x))
        return c + self.res2net(c)


class Decoder(nn.Module):
    """Four conv3 layers 64→64→32→16→1; the last is linear (no activation, no clamp)."""

    def __init__(self):
        super().__init__()
        pairs = list(zip(DECODER_CHANNELS[:-1], DECODER_CHANNELS[1:]))
        self.layers = nn.Sequential(*[_conv(cin, cout, "relu" if i < len(pairs) - 1 else "identity")
                                      for i, (cin, cout) in enumerate(pairs)])

    def forward(self, phi: torch.Tensor) -> torch.Tensor:
        return self.layers(phi)


class Res2NetFuse(nn.Module):
    """The reconstruction auto-encoder (training) and, with a fusion rule, the fusion network (test)."""

    def __init__(self, share_branch_convs: bool = True, scale: int = SCALE):
        super().__init__()
        self.config = {"share_branch_convs": share_branch_convs, "scale": scale}
        self.encoder = Encoder(share_branch_convs, scale)
        self.decoder = Decoder()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction of ``x`` (N×1×H×W, intensities in [0, 255])."""
        return self.decoder(self.encoder(x))

    def fuse(self, ir: torch.Tensor, vis: torch.Tensor, rule: str = "l1") -> torch.Tensor:
        """Fused image, raw decoder output (N×1×H×W, same scale as the [0, 255] inputs)."""
        return self.decoder(get_rule(rule, paper="res2netfuse")(self.encoder(ir), self.encoder(vis)))


# --------------------------------------------------------------------------- fusion rules (Eqs. 5–8)

def l1_rule(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    r"""Eqs. 5–6: $w_i = \|\phi_i\|_1 / \sum_k \|\phi_k\|_1$ per pixel across channels, no window;
    where both norms are 0 the weights are ½ (our assumption; the code would give NaN)."""
    na, nb = a.abs().sum(1, keepdim=True), b.abs().sum(1, keepdim=True)
    total = na + nb
    wa = torch.where(total > 0, na / total.clamp_min(1e-12), torch.full_like(total, 0.5))
    return wa * a + (1 - wa) * b


def mean_code_rule(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The code's "mean": channel means, min–max normalised per image, then soft-max (+1e-5)."""
    def normalised_mean(phi):
        m = phi.mean(1, keepdim=True)
        flat = m.flatten(1)
        low, high = flat.min(1).values.view(-1, 1, 1, 1), flat.max(1).values.view(-1, 1, 1, 1)
        return (m - low) / (high - low + 1e-5)

    ea, eb = torch.exp(normalised_mean(a)), torch.exp(normalised_mean(b))
    denom = ea + eb + 1e-5
    return (ea / denom) * a + (eb / denom) * b


def mean_paper_rule(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    r"""Eq. 7 as printed: $w_i = M(\phi_i) / \sum_k M(\phi_k)$ with M the channel mean (+1e-12)."""
    ma, mb = a.mean(1, keepdim=True), b.mean(1, keepdim=True)
    denom = ma + mb + 1e-12
    return (ma / denom) * a + (mb / denom) * b


def add_rule(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """f = φ₁ + φ₂ (the code's default argument; not evaluated in the paper)."""
    return a + b


RULES = {"l1": l1_rule, "mean_code": mean_code_rule, "mean_paper": mean_paper_rule, "add": add_rule}
for _name, _rule in RULES.items():
    RULE_REGISTRY.register(f"res2netfuse/{_name}")(_rule)  # this paper's maths: ``res2netfuse/l1`` is not ``didfuse/l1``


# --------------------------------------------------------------------------- post-processing

def postprocess(output: torch.Tensor, mode: str = "code") -> torch.Tensor:
    """Network output → [0, 1] image on the 8-bit grid.

    ``code``: per image (O − min)/(max − min + 1e-5), ×255, truncated to an integer (the authors'
    ``astype(uint8)``); ``clip_round``: O/255 clipped to [0, 1] and rounded to 8 bits.
    """
    if mode == "code":
        flat = output.flatten(1)
        low, high = flat.min(1).values.view(-1, 1, 1, 1), flat.max(1).values.view(-1, 1, 1, 1)
        return torch.floor((output - low) / (high - low + 1e-5) * 255.0) / 255.0
    if mode == "clip_round":
        return torch.round(output.clamp(0, 255)) / 255.0
    raise ValueError(f"postprocess mode '{mode}' is not 'code' or 'clip_round'")


# --------------------------------------------------------------------------- checkpoints and the method

def load_checkpoint(path: str | Path, device: str = "cpu") -> Res2NetFuse:
    """A Res2NetFuse from one of our training checkpoints (``fusion_core.train`` format)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: Res2NetFuse checkpoint not found")
    try:
        state = torch_load(path, device)
    except Exception as exc:
        raise ValueError(f"{path}: not a readable torch checkpoint ({exc.__class__.__name__})") from None
    if not isinstance(state, dict) or state.get("model_class") != "Res2NetFuse":
        raise ValueError(f"{path}: not a Res2NetFuse checkpoint (holds {state.get('model_class') if isinstance(state, dict) else type(state).__name__})")
    model = Res2NetFuse(**(state.get("model_config") or {}))
    model.load_state_dict(state["model"])
    return model.to(device).eval()


DEFAULT_WEIGHTS = Path(__file__).resolve().parents[3] / "checkpoints" / "res2netfuse" / "r2n_1_seed0.pt"


def default_weights() -> DefaultWeights:
    """Seed 0 of Res2NetFuse_1 (the paper's one-image training, our CPU run): the authors released no weights."""
    return DefaultWeights(DEFAULT_WEIGHTS, "the repository's Res2NetFuse_1 checkpoint, seed 0 (the authors "
                                           "released no weights)")


describe("res2netfuse", "learned", "Song et al. 2021", rules=tuple(RULES),
         colour="Y fused + min-max stretch, CbCr kept", default_weights=default_weights)


@METHODS.register("res2netfuse")
def build(weights=None, rule=None, device="cpu"):
    """Res2NetFuse with ``rule`` ∈ {l1, mean_code, mean_paper, add} (default l1); ``weights``
    defaults to the committed single-image model."""
    rule = rule or "l1"
    if rule not in RULES:
        raise ValueError(f"unknown res2netfuse rule '{rule}'; known: {', '.join(RULES)}")
    model = load_checkpoint(weights or DEFAULT_WEIGHTS, device)

    def fuse(ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return postprocess(model.fuse(ir * 255.0, vis * 255.0, rule))

    fuse.model = model  # type: ignore[attr-defined]
    return fuse
