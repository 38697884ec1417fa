r"""AMFE (paper 004, anonymised conference paper "Learning attention guided deep multi-scale feature ensemble for
infrared and visible image fusion"; spec ``../shared/specs/spec_004.md`` §2): the network, its edge operator, its
fusion rules and the method ``amfe``. The authors' journal model MFEIF lives in :mod:`.mfeif`.

::

    I_ir ─┬─ Ext ─ f_ir, {s_ir^k} ─────────────┐
          └─ S∘G ─ Att ─ W_ir ──────────┐        │
                                         ├─ Eq. 3: softmax(f_ir⊙W_ir + f_vis⊙W_vis) ─ Dec(+ Σ skips, Eq. 4) ─ F
          ┌─ S∘G ─ Att ─ W_vis ─────────┘        │
    I_vis ┴─ Ext ─ f_vis, {s_vis^k} ────────────┘

* Ext (§2.2): conv 1→16, then three paths fed by it; path d's first conv is dilated by d (receptive field
  3/5/7), the next two plain; dense connection (each layer sees the concatenation of all earlier outputs, growth 16)
  so a path ends with 64 channels; f^e = Σ_d w_d h_d with ``path_weights`` (1, 1, 1) ("sum the different dilated
  feature maps"). Skip features s^k = Σ_d h_d^{(k)} at depth k = 2, 3, 4 (32, 48, 64 channels).
* S∘G (Eqs. 1–2): per-pixel forward-difference gradient magnitude, then a 2×2 running max (:func:`edge_map`).
* Att (Fig. 3): three conv pairs (plain 3×3 + ReLU, then 3×3 dilated by 2) 1→32→32→64→128→64→32, 1×1 head to
  ``att_out`` = 64 weights per pixel.
* Eq. 3: z = f_ir⊙W_ir + f_vis⊙W_vis, then ``fusion_norm`` (the rule): softmax over channels (literal),
  softmax over the two modalities, or none.
* Dec (§2.3, Eq. 4): ConvTranspose 3×3 stride 1, 64→64→48→32→1, ReLU, the summed skips (IR + VIS) added after
  the ReLU of the layer of matching width (``skip_order="symmetric"``); linear output, clamped to [0, 1] at fusion.

Every gap of the paper is a constructor parameter with the spec's default (spec §8): ``norm`` ("none" | "batch"),
``extractor_connect`` ("dense" | "sequential" [C] | "plain" = the w/o-D ablation, one undilated path),
``path_weights``, ``att_input`` ("edge" | "image_plus_edge" [C]), ``att_out`` (64 | 1 [C]), ``skips``
(False = the w/o-S ablation), ``skip_order`` ("symmetric" | "literal" Eq. 4 as printed), ``skip_fuse`` ("sum" |
"mean"), ``edge_variant`` ("paper" | "mfeif_code"). The w/o-A ablation needs no network change: rule ``no_attention``.

Parameter counts (default): extractor 41,776, attention 196,288, decoder 78,769 → AMFE 316,833; the stage-1
discriminator (FusionGAN's, spec §2.7) 388,993 (the spec's 388,097 leaves out the 896 BatchNorm scale/shift
parameters).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ...data import DataError
from ...methods import METHODS, DefaultWeights, describe
from ...nets.blocks import ConvNormAct

PAPER = "amfe"
FEATURES = 64  # f^e channels [P]
STEM = 16  # C1 output channels [P]
FUSION_NORMS = ("softmax_channel", "softmax_modality", "none")
RULES = FUSION_NORMS + ("no_attention",)  # --rule: Eq. 3's normalisation, or the w/o-A ablation (W = 1)
DEFAULT_RULE = "softmax_channel"


# --------------------------------------------------------------------------- the edge operator (Eqs. 1–2)

def _check_image(x: torch.Tensor, what: str = "image") -> None:
    if x.ndim != 4 or x.shape[1] != 1:
        raise ValueError(f"{what}: expected N×1×H×W, got shape {tuple(x.shape)}")


def gradient_magnitude(u: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    r"""Eq. 1 per pixel: $G(u)_i = \sqrt{(u_i - u_{a(i)})^2 + (u_i - u_{b(i)})^2 + \epsilon}$.

    a(i), b(i): the right and lower neighbours (forward differences); replicate border, so the last column's
    horizontal and the last row's vertical difference are 0. ``eps`` > 0 only where a gradient flows through
    (the loss): √ has an infinite slope at 0.
    """
    _check_image(u)
    padded = F.pad(u, (0, 1, 0, 1), mode="replicate")
    dh = u - padded[..., :-1, 1:]
    dv = u - padded[..., 1:, :-1]
    return torch.sqrt(dh.square() + dv.square() + eps)


def enhance_edges(g: torch.Tensor) -> torch.Tensor:
    r"""Eq. 2: $S(G)_{ij} = \max(G_{ij}, G_{i+1,j}, G_{i,j+1}, G_{i+1,j+1})$, a 2×2 max filter, stride 1, with
    the bottom row and right column replicated so the map keeps its m×n size."""
    return F.max_pool2d(F.pad(g, (0, 1, 0, 1), mode="replicate"), 2, 1)


def edge_map(u: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    """The "enhanced edge map" S(G(u)) the attention network reads (range [0, √2] for u in [0, 1])."""
    return enhance_edges(gradient_magnitude(u, eps))


def edge_map_mfeif(u: torch.Tensor) -> torch.Tensor:
    r"""The journal code's edge map: central differences $\tfrac12(u_{x+1} - u_{x-1})$ (kornia
    ``spatial_gradient(..., "diff")``, normalised, replicate border), magnitude, then a 3×3 max filter (stride 1,
    padding 1)."""
    from kornia.filters import spatial_gradient

    _check_image(u)
    grad = spatial_gradient(u, "diff", normalized=True)
    magnitude = torch.sqrt(grad[:, :, 0].square() + grad[:, :, 1].square())
    return F.max_pool2d(magnitude, 3, 1, 1)


EDGE_VARIANTS = {"paper": edge_map, "mfeif_code": edge_map_mfeif}


# --------------------------------------------------------------------------- extractor (§2.1)

def _conv(cin: int, cout: int, norm: str, dilation: int = 1, act: str = "relu") -> ConvNormAct:
    # Zero "same" padding (padding = dilation), bias on, ReLU after every conv [A].
    return ConvNormAct(cin, cout, 3, padding="zeros", norm=norm, act=act, dilation=dilation)


class DilatedPath(nn.Module):
    """One of the three paths: layer 1 dilated by ``dilation``, layers 2–3 plain.

    ``dense``: layer k sees concat[x0, y1, …, y_{k−1}] and adds 16 channels (outputs at depth 2/3/4: 32/48/64);
    ``sequential``: 16→32→48→64 without concatenation (the journal code's path).
    """

    def __init__(self, dilation: int, connect: str = "dense", norm: str = "none"):
        super().__init__()
        self.connect = connect
        if connect == "dense":
            self.layers = nn.ModuleList([_conv(STEM, STEM, norm, dilation), _conv(2 * STEM, STEM, norm),
                                         _conv(3 * STEM, STEM, norm)])
        elif connect == "sequential":
            self.layers = nn.ModuleList([_conv(STEM, 2 * STEM, norm, dilation), _conv(2 * STEM, 3 * STEM, norm),
                                         _conv(3 * STEM, 4 * STEM, norm)])
        else:
            raise ValueError(f"path connection '{connect}' is not 'dense' or 'sequential'")

    def forward(self, x0: torch.Tensor) -> list[torch.Tensor]:
        """The features at depths 2, 3, 4 (32, 48, 64 channels)."""
        out, x = [], x0
        for layer in self.layers:
            x = torch.cat([x, layer(x)], 1) if self.connect == "dense" else layer(x)
            out.append(x)
        return out


class Extractor(nn.Module):
    r"""C1 then the paths; returns $f^e = \sum_d w_d h_d$ and the skips $s^k = \sum_d h_d^{(k)}$, k = 2, 3, 4.

    ``connect="plain"`` (ablation w/o D): a single sequential path with dilation 1.
    """

    def __init__(self, connect: str = "dense", path_weights: Sequence[float] = (1.0, 1.0, 1.0),
                 norm: str = "none"):
        super().__init__()
        self.stem = _conv(1, STEM, norm)
        if connect == "plain":
            self.paths = nn.ModuleList([DilatedPath(1, "sequential", norm)])
            path_weights = (1.0,)
        else:
            self.paths = nn.ModuleList([DilatedPath(d, connect, norm) for d in (1, 2, 3)])
        if len(path_weights) != len(self.paths):
            raise ValueError(f"{len(path_weights)} path weights for {len(self.paths)} paths")
        self.path_weights = tuple(float(w) for w in path_weights)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        _check_image(x, "extractor input")
        x0 = self.stem(x)
        depths = [path(x0) for path in self.paths]  # per path: [depth 2, depth 3, depth 4]
        skips = [sum(d[k] for d in depths) for k in range(3)]
        features = sum(w * d[2] for w, d in zip(self.path_weights, depths))
        return features, skips


# --------------------------------------------------------------------------- attention (Fig. 3)

class EdgeAttention(nn.Module):
    """Three (3×3 + ReLU, 3×3 dilated by 2) pairs 1→32→32→64→128→64→32 and a 1×1 head to ``out`` weights."""

    def __init__(self, out: int = FEATURES, att_input: str = "edge", edge_variant: str = "paper"):
        super().__init__()
        if att_input not in ("edge", "image_plus_edge"):
            raise ValueError(f"att_input '{att_input}' is not 'edge' or 'image_plus_edge'")
        if edge_variant not in EDGE_VARIANTS:
            raise ValueError(f"edge_variant '{edge_variant}' is not one of {sorted(EDGE_VARIANTS)}")
        if out not in (1, FEATURES):
            raise ValueError(f"att_out must be 1 or {FEATURES}, got {out}")
        self.att_input, self.edge_variant = att_input, edge_variant
        widths = [(1, 32, 32), (32, 64, 128), (128, 64, 32)]
        layers: list[nn.Module] = []
        for a, b, c in widths:
            layers += [nn.Conv2d(a, b, 3, padding=1), nn.ReLU(), nn.Conv2d(b, c, 3, padding=2, dilation=2)]
        self.body = nn.Sequential(*layers)
        self.head = nn.Conv2d(32, out, 1)

    def inputs(self, u: torch.Tensor) -> torch.Tensor:
        edges = EDGE_VARIANTS[self.edge_variant](u)
        return edges if self.att_input == "edge" else u + edges

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(self.inputs(u)))


# --------------------------------------------------------------------------- fusion (Eq. 3)

def attention_fusion(f_ir: torch.Tensor, f_vis: torch.Tensor, w_ir: torch.Tensor, w_vis: torch.Tensor,
                     norm: str = DEFAULT_RULE) -> torch.Tensor:
    r"""Eq. 3. ``softmax_channel``: $f^a = \mathrm{softmax}_c(f_{ir} \odot W_{ir} + f_{vis} \odot W_{vis})$;
    ``softmax_modality``: $[\tilde W_{ir}, \tilde W_{vis}] = \mathrm{softmax}_{m}([W_{ir}, W_{vis}])$,
    $f^a = f_{ir}\tilde W_{ir} + f_{vis}\tilde W_{vis}$; ``none``: the sum z itself. W broadcasts when it has
    one channel."""
    if f_ir.shape != f_vis.shape:
        raise ValueError(f"feature shapes differ: {tuple(f_ir.shape)} and {tuple(f_vis.shape)}")
    if norm == "softmax_modality":
        weights = torch.softmax(torch.stack([w_ir, w_vis]), 0)
        return f_ir * weights[0] + f_vis * weights[1]
    z = f_ir * w_ir + f_vis * w_vis
    if norm == "softmax_channel":
        return torch.softmax(z, 1)
    if norm == "none":
        return z
    raise ValueError(f"fusion_norm '{norm}' is not one of {FUSION_NORMS}")


# --------------------------------------------------------------------------- reconstruction (§2.3, Eq. 4)

class Decoder(nn.Module):
    """ConvTranspose2d(3, stride 1, padding 1) layers; each of the first three adds a skip after its ReLU.

    ``symmetric``: 64→64 (+s⁴) →48 (+s³) →32 (+s²) →1; ``literal`` (Eq. 4 as printed, conv-k → dconv-(k−1)):
    64→32 (+s²) →48 (+s³) →64 (+s⁴) →1.
    """

    def __init__(self, skip_order: str = "symmetric", norm: str = "none"):
        super().__init__()
        if skip_order not in ("symmetric", "literal"):
            raise ValueError(f"skip_order '{skip_order}' is not 'symmetric' or 'literal'")
        widths = (64, 64, 48, 32) if skip_order == "symmetric" else (64, 32, 48, 64)
        self.skip_index = (2, 1, 0) if skip_order == "symmetric" else (0, 1, 2)  # into [s², s³, s⁴]
        self.layers = nn.ModuleList()
        for cin, cout in zip(widths[:-1], widths[1:]):
            self.layers.append(nn.Sequential(nn.ConvTranspose2d(cin, cout, 3, 1, 1),
                                             nn.BatchNorm2d(cout) if norm == "batch" else nn.Identity(), nn.ReLU()))
        self.out = nn.ConvTranspose2d(widths[-1], 1, 3, 1, 1)

    def forward(self, f: torch.Tensor, skips: list[torch.Tensor] | None) -> torch.Tensor:
        x = f
        for layer, k in zip(self.layers, self.skip_index):
            x = layer(x)
            if skips is not None:
                x = x + skips[k]
        return self.out(x)


# --------------------------------------------------------------------------- the network

class AMFE(nn.Module):
    """Extractor + edge-guided attention + feature-compensation decoder (one set of weights for IR and VIS)."""

    def __init__(self, norm: str = "none", extractor_connect: str = "dense",
                 path_weights: Sequence[float] = (1.0, 1.0, 1.0), att_input: str = "edge", att_out: int = FEATURES,
                 edge_variant: str = "paper", skips: bool = True, skip_order: str = "symmetric",
                 skip_fuse: str = "sum"):
        super().__init__()
        if norm not in ("none", "batch"):
            raise ValueError(f"norm '{norm}' is not 'none' or 'batch'")
        if skip_fuse not in ("sum", "mean"):
            raise ValueError(f"skip_fuse '{skip_fuse}' is not 'sum' or 'mean'")
        self.config = {"norm": norm, "extractor_connect": extractor_connect, "path_weights": list(path_weights),
                       "att_input": att_input, "att_out": att_out, "edge_variant": edge_variant, "skips": skips,
                       "skip_order": skip_order, "skip_fuse": skip_fuse}
        self.extractor = Extractor(extractor_connect, path_weights, norm)
        self.attention = EdgeAttention(att_out, att_input, edge_variant)
        self.decoder = Decoder(skip_order, norm)
        self.skips, self.skip_fuse = skips, skip_fuse

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Stage 1 (auto-encoder): Dec(f^e, s^k) of one image, no attention, no fusion layer."""
        features, skips = self.extractor(x)
        return self.decoder(features, skips if self.skips else None)

    forward = reconstruct

    def fuse(self, ir: torch.Tensor, vis: torch.Tensor, rule: str = DEFAULT_RULE) -> torch.Tensor:
        """Eq. 3 then Eq. 4: the raw (unclamped) fused image."""
        return self.fuse_rules(ir, vis, [rule])[rule]

    def fuse_rules(self, ir: torch.Tensor, vis: torch.Tensor, rules) -> dict[str, torch.Tensor]:
        """The fused image of each rule, encoding the pair (extractor, attention) once."""
        unknown = [r for r in rules if r not in RULES]
        if unknown:
            raise ValueError(f"unknown amfe rule(s) {unknown}; known: {', '.join(RULES)}")
        if ir.shape != vis.shape:
            raise ValueError(f"ir {tuple(ir.shape)} and vis {tuple(vis.shape)} differ in shape")
        f_ir, s_ir = self.extractor(ir)
        f_vis, s_vis = self.extractor(vis)
        scale = 0.5 if self.skip_fuse == "mean" else 1.0
        skips = [scale * (a + b) for a, b in zip(s_ir, s_vis)] if self.skips else None
        weights = None
        out = {}
        for rule in rules:
            if rule == "no_attention":  # w/o A: W_ir = W_vis = 1, then the default normalisation
                fused = attention_fusion(f_ir, f_vis, torch.ones_like(f_ir), torch.ones_like(f_vis), DEFAULT_RULE)
            else:
                weights = weights or (self.attention(ir), self.attention(vis))
                fused = attention_fusion(f_ir, f_vis, weights[0], weights[1], rule)
            out[rule] = self.decoder(fused, skips)
        return out


class Discriminator(nn.Module):
    """FusionGAN's discriminator (spec §2.7): 3×3 stride-2 convs 1→32 (LReLU 0.2) →64→128→256 (BN, LReLU),
    global average pool, Linear(256→1), no sigmoid (least-squares GAN)."""

    def __init__(self):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(1, 32, 3, 2, 1), nn.LeakyReLU(0.2)]
        for cin, cout in ((32, 64), (64, 128), (128, 256)):
            layers += [nn.Conv2d(cin, cout, 3, 2, 1), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2)]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(256, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_image(x, "discriminator input")
        return self.head(self.body(x).mean((2, 3)))


class AMFEStage1(nn.Module):
    """What stage 1 trains: the network (extractor + decoder are used) and the discriminator beside it."""

    def __init__(self, discriminator: bool = True, **network):
        super().__init__()
        self.config = {"discriminator": discriminator, **network}
        self.net = AMFE(**network)
        self.disc = Discriminator() if discriminator else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.reconstruct(x)


# --------------------------------------------------------------------------- checkpoints and the method

MODEL_CLASSES = {"AMFE": AMFE, "AMFEStage1": AMFEStage1}


def load_checkpoint(path: str | Path, device: str = "cpu") -> AMFE:
    """The AMFE network of a checkpoint written by :func:`fusion_core.train.train` (stage 1 or stage 2)."""
    from ...train import load_network

    model = load_network(path, MODEL_CLASSES, device, label="AMFE")
    return model.net if isinstance(model, AMFEStage1) else model


CHECKPOINT_DIR = Path(__file__).resolve().parents[3] / "checkpoints" / PAPER
DEFAULT_WEIGHTS = CHECKPOINT_DIR / "amfe_reduced_seed0.pt"


def default_weights() -> DefaultWeights:
    """Seed 0 of the reduced CPU protocol (the paper released no weights)."""
    return DefaultWeights(DEFAULT_WEIGHTS, "the repository's AMFE checkpoint, reduced CPU protocol, seed 0 "
                                           "(the paper released no weights)")


def build(weights=None, rule=None, device="cpu"):
    """AMFE with ``rule`` ∈ {softmax_channel (Eq. 3), softmax_modality, none, no_attention (w/o A)}; ``weights``
    a checkpoint of ``train.py`` (default :func:`default_weights`). Output clamped to [0, 1]."""
    rule = rule or DEFAULT_RULE
    if rule not in RULES:
        raise ValueError(f"unknown amfe rule '{rule}'; known: {', '.join(RULES)}")
    model = load_checkpoint(weights if weights is not None else DEFAULT_WEIGHTS, device)

    def fuse(ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return model.fuse(ir, vis, rule).clamp(0, 1)

    def fuse_rules(ir: torch.Tensor, vis: torch.Tensor, rules) -> dict[str, torch.Tensor]:
        with torch.inference_mode():
            return {r: f.clamp(0, 1) for r, f in model.fuse_rules(ir, vis, list(rules)).items()}

    fuse.model = model  # type: ignore[attr-defined]
    fuse.fuse_rules = fuse_rules  # type: ignore[attr-defined]  (engine.method_source: one encoding per pair)
    return fuse


describe(PAPER, "learned", "AMFE (paper 004, anonymised; year not stated)", rules=RULES, default_weights=default_weights)
METHODS.register(PAPER)(build)
