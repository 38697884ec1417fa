r"""MSFAM (Sensors 2022, 22(10) 3651, spec 003) and the plain NestFuse it is built on (Li et al. 2020, Table 6's
NestFuse column), plus the Semantic Constraint classifier of its stage-2 loss.

    vis ─ encoder ─ E1..E4(vis) ─┐
                                 ├─ AFB_k (k = 1..4; channel then spatial attention) ─ F1..F4 ─ nested decoder ─ F
    ir  ─ encoder ─ E1..E4(ir)  ─┘      (NestFuse: the training-free rule ``msfam/nestfuse_avg`` instead)

* Encoder (weights shared by both images): conv0 1×1 1→16 (+ReLU), then one block per scale, 2×2 max-pool
  between scales, widths ``nb = (64, 112, 160, 208)`` (NestFuse's; spec §2.2). MSFAM's blocks are
  :class:`HINBlock`\ s (HINet's half-instance-normalisation block), NestFuse's are light dense blocks.
* Decoder (spec §2.2 table): UNet++ nest connections of NestFuse light blocks (3×3 in→in/2, 1×1 in/2→out, both
  reflect padding + ReLU), nearest ×2 upsampling reflect-padded to the skip's size (NestFuse's
  ``UpsampleReshape_eval``: any H×W works), a 1×1 64→1 output conv.
* :class:`AttentionFusionBlock` (Eqs. 3–7): channel attention with two 1×1 2C→C convs shared between the pooled
  descriptor and the feature map, then CBAM spatial attention with kernels 7/5/5/3 (shallow → deep).

Every decision the paper leaves open is a constructor argument with the spec's default (README, "decisions"):
``concat_order="vis_first"`` (order of the 2C concat), ``afb_kernels=(7, 5, 5, 3)`` (shallow→deep),
``afb_bias=True``, ``keep_conv0=True``, ``near_skip_only=False`` (full nest connections), ``out_act="relu"``
(NestFuse's ReLU on the output conv), ``fusion="afb"`` (``"conv5x5"``: Table 2's "w/o attention" row;
``"nestfuse_rule"``: Table 1's "Rec" row). HINBlocks use zero padding, the NestFuse layers reflect padding.

Parameter counts with the defaults (tests/test_msfam.py): NestFuse 2,732,761 (spec §2.6); MSFAM 4,220,069
(encoder 1,365,664, AFBs 343,324, decoder 2,511,081; the paper prints 3.8 M, spec §2.6: ±15 % accepted).
The Semantic Constraint net (:class:`SemanticConstraintNet`, 97,890) is not part of the fusion network.

Inference (``build``): images in [0, 1]; the decoder output is min–max normalised per image (the paper's
``(F − min)/(max − min)·255``, here to [0, 1]); NestFuse's output is clamped to [0, 1].
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ...methods import METHODS, DefaultWeights, describe
from ...nets.blocks import ConvNormAct
from ...rules import RULES, get_rule

PAPER = "msfam"
WIDTHS = (64, 112, 160, 208)
STEM_CHANNELS = 16
AFB_KERNELS = (7, 5, 5, 3)
NESTFUSE_EPS = 1e-5  # NestFuse's EPSILON in its fusion rule
CHECKPOINT_DIR = Path(__file__).resolve().parents[3] / "checkpoints" / PAPER


# --------------------------------------------------------------------------- blocks

def conv_layer(cin: int, cout: int, kernel: int, act: str = "relu") -> ConvNormAct:
    """NestFuse's ``ConvLayer``: reflection padding k//2, k×k conv with bias, ReLU."""
    return ConvNormAct(cin, cout, kernel, padding="reflect", norm="none", act=act)


class LightBlock(nn.Sequential):
    """NestFuse's ``DenseBlock_light``: 3×3 in→in/2 then 1×1 in/2→out (each reflect padding + ReLU)."""

    def __init__(self, cin: int, cout: int):
        super().__init__(conv_layer(cin, cin // 2, 3), conv_layer(cin // 2, cout, 1))


class HINBlock(nn.Module):
    r"""HINet's half-instance-normalisation block (Chen et al. 2021), no down-sampling:

    $y = \mathrm{LReLU}(\mathrm{conv}_2(\mathrm{LReLU}(\mathrm{HIN}(\mathrm{conv}_1 x)))) + \mathrm{conv}_{1\times1}(x)$,
    HIN = InstanceNorm (affine) on the first ``out // 2`` channels, the others unchanged; 3×3 convs with bias and
    zero padding, LeakyReLU slope ``slope``.
    """

    def __init__(self, cin: int, cout: int, slope: float = 0.2):
        super().__init__()
        self.cin, self.half = cin, cout // 2
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm = nn.InstanceNorm2d(self.half, affine=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.identity = nn.Conv2d(cin, cout, 1)
        self.act = nn.LeakyReLU(slope)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.cin:
            raise ValueError(f"HINBlock expects N×{self.cin}×H×W, got {tuple(x.shape)}")
        out = self.conv1(x)
        out = torch.cat([self.norm(out[:, :self.half]), out[:, self.half:]], dim=1)
        out = self.act(self.conv2(self.act(out)))
        return out + self.identity(x)


class AttentionFusionBlock(nn.Module):
    r"""Eqs. 3–7: fuse ``F = cat(a, b)`` (2C channels) into C channels.

    Channel attention (shared 1×1 convs, no hidden layer):
    $F_{CA} = \sigma(W_{max} * \mathrm{GMP}(F)) \otimes (W_{max} * F) + \sigma(W_{avg} * \mathrm{GAP}(F)) \otimes (W_{avg} * F)$.
    Spatial attention: $F_{SA} = \sigma(\mathrm{conv}_{k\times k}([\mathrm{mean}_c F_{CA}, \max_c F_{CA}])) \otimes F_{CA}$.
    """

    def __init__(self, channels: int, kernel: int = 7, bias: bool = True):
        super().__init__()
        if kernel % 2 == 0:
            raise ValueError(f"spatial-attention kernel must be odd, got {kernel}")
        self.channels = channels
        self.conv_max = nn.Conv2d(2 * channels, channels, 1, bias=bias)
        self.conv_avg = nn.Conv2d(2 * channels, channels, 1, bias=bias)
        self.spatial = nn.Conv2d(2, 1, kernel, padding=kernel // 2, bias=bias)

    def channel_attention(self, f: torch.Tensor) -> torch.Tensor:
        m_max = torch.sigmoid(self.conv_max(f.amax((-2, -1), keepdim=True)))
        m_avg = torch.sigmoid(self.conv_avg(f.mean((-2, -1), keepdim=True)))
        return m_max * self.conv_max(f) + m_avg * self.conv_avg(f)

    def spatial_map(self, f_ca: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([f_ca.mean(1, keepdim=True), f_ca.amax(1, keepdim=True)], dim=1)
        return torch.sigmoid(self.spatial(pooled))

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if a.shape != b.shape or a.ndim != 4 or a.shape[1] != self.channels:
            raise ValueError(f"AFB({self.channels}) expects two N×{self.channels}×H×W tensors, got "
                             f"{tuple(a.shape)} and {tuple(b.shape)}")
        f_ca = self.channel_attention(torch.cat([a, b], dim=1))
        return self.spatial_map(f_ca) * f_ca


class ConvFusion(nn.Module):
    """Table 2's "w/o attention" fusion: one 5×5 conv 2C→C (bias, zero padding 2), no activation (spec §7)."""

    def __init__(self, channels: int, kernel: int = 5):
        super().__init__()
        self.conv = nn.Conv2d(2 * channels, channels, kernel, padding=kernel // 2)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([a, b], dim=1))


def upsample_to(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Nearest ×2, then reflection padding (floor left/top, ceil right/bottom) to ``like``'s H×W."""
    up = F.interpolate(x, scale_factor=2, mode="nearest")
    dh, dw = like.shape[-2] - up.shape[-2], like.shape[-1] - up.shape[-1]
    if dh or dw:
        pad = (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2)
        up = F.pad(up, pad, mode="reflect" if max(pad) < min(up.shape[-2:]) else "replicate")
    return up


class NestDecoder(nn.Module):
    """UNet++ decoder of NestFuse without deep supervision (spec §2.2 table); ``near_skip_only`` keeps only the
    adjacent skip of each node (x1_2 = D[x1_1, up x2_1], x1_3 = D[x1_2, up x2_2], ...)."""

    def __init__(self, nb: Sequence[int] = WIDTHS, near_skip_only: bool = False, out_act: str = "relu"):
        super().__init__()
        a, b, c, d = nb
        near = near_skip_only
        self.near_skip_only = near
        self.x1_1 = LightBlock(a + b, a)
        self.x2_1 = LightBlock(b + c, b)
        self.x3_1 = LightBlock(c + d, c)
        self.x1_2 = LightBlock((1 if near else 2) * a + b, a)
        self.x2_2 = LightBlock((1 if near else 2) * b + c, b)
        self.x1_3 = LightBlock((1 if near else 3) * a + b, a)
        self.out = conv_layer(a, 1, 1, act={"relu": "relu", "none": "identity", "sigmoid": "sigmoid"}[out_act])

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        f1, f2, f3, f4 = feats
        x1_1 = self.x1_1(torch.cat([f1, upsample_to(f2, f1)], 1))
        x2_1 = self.x2_1(torch.cat([f2, upsample_to(f3, f2)], 1))
        x3_1 = self.x3_1(torch.cat([f3, upsample_to(f4, f3)], 1))
        if self.near_skip_only:
            x1_2 = self.x1_2(torch.cat([x1_1, upsample_to(x2_1, f1)], 1))
            x2_2 = self.x2_2(torch.cat([x2_1, upsample_to(x3_1, f2)], 1))
            x1_3 = self.x1_3(torch.cat([x1_2, upsample_to(x2_2, f1)], 1))
        else:
            x1_2 = self.x1_2(torch.cat([f1, x1_1, upsample_to(x2_1, f1)], 1))
            x2_2 = self.x2_2(torch.cat([f2, x2_1, upsample_to(x3_1, f2)], 1))
            x1_3 = self.x1_3(torch.cat([f1, x1_1, x1_2, upsample_to(x2_2, f1)], 1))
        return self.out(x1_3)


class Encoder(nn.Module):
    """conv0 1×1 1→16 (optional), then one block per scale with 2×2 max-pool between scales."""

    def __init__(self, block: str = "hin", nb: Sequence[int] = WIDTHS, keep_conv0: bool = True):
        super().__init__()
        make = {"hin": HINBlock, "light": LightBlock}[block]
        self.conv0 = conv_layer(1, STEM_CHANNELS, 1) if keep_conv0 else nn.Identity()
        widths = [STEM_CHANNELS if keep_conv0 else 1, *nb]
        self.blocks = nn.ModuleList(make(cin, cout) for cin, cout in zip(widths[:-1], widths[1:]))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.ndim != 4 or x.shape[1] != 1:
            raise ValueError(f"encoder expects N×1×H×W images, got {tuple(x.shape)}")
        feats, h = [], self.conv0(x)
        for k, block in enumerate(self.blocks):
            h = block(h if k == 0 else F.max_pool2d(h, 2))
            feats.append(h)
        return feats


# --------------------------------------------------------------------------- the networks

FUSIONS = ("afb", "conv5x5", "nestfuse_rule")
STAGES = ("all", "stage1", "stage2")


class MSFAM(nn.Module):
    """HIN encoder + per-scale fusion + nested decoder. ``stage`` sets what trains (spec §2.5): ``stage1`` encoder
    and decoder (no fusion), ``stage2`` fusion blocks (lr) and decoder (lr × ``decoder_lr_scale``), encoder frozen."""

    def __init__(self, nb: Sequence[int] = WIDTHS, afb_kernels: Sequence[int] = AFB_KERNELS, fusion: str = "afb",
                 concat_order: str = "vis_first", afb_bias: bool = True, keep_conv0: bool = True,
                 near_skip_only: bool = False, out_act: str = "relu", stage: str = "all",
                 decoder_lr_scale: float = 0.5, nestfuse_pool: str = "avg"):
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"fusion '{fusion}' is not one of {FUSIONS}")
        if concat_order not in ("vis_first", "ir_first"):
            raise ValueError(f"concat_order '{concat_order}' is not 'vis_first' or 'ir_first'")
        if len(nb) != 4 or len(afb_kernels) != 4:
            raise ValueError(f"four scales expected, got widths {tuple(nb)} and kernels {tuple(afb_kernels)}")
        self.config = {"nb": list(nb), "afb_kernels": list(afb_kernels), "fusion": fusion, "concat_order": concat_order,
                       "afb_bias": afb_bias, "keep_conv0": keep_conv0, "near_skip_only": near_skip_only,
                       "out_act": out_act, "stage": stage, "decoder_lr_scale": decoder_lr_scale,
                       "nestfuse_pool": nestfuse_pool}
        self.concat_order, self.fusion_kind, self.decoder_lr_scale = concat_order, fusion, decoder_lr_scale
        self.encoder = Encoder("hin", nb, keep_conv0)
        if fusion == "afb":
            self.fusion = nn.ModuleList(AttentionFusionBlock(c, k, afb_bias) for c, k in zip(nb, afb_kernels))
        elif fusion == "conv5x5":
            self.fusion = nn.ModuleList(ConvFusion(c) for c in nb)
        else:
            self.fusion = nn.ModuleList()
            self.rule = get_rule(f"nestfuse_{nestfuse_pool}", paper=PAPER)
        self.decoder = NestDecoder(nb, near_skip_only, out_act)
        self.set_stage(stage)

    def set_stage(self, stage: str) -> None:
        if stage not in STAGES:
            raise ValueError(f"stage '{stage}' is not one of {STAGES}")
        self.stage = self.config["stage"] = stage
        for p in self.encoder.parameters():
            p.requires_grad_(stage != "stage2")
        for p in self.fusion.parameters():
            p.requires_grad_(stage != "stage1")

    def optimizer_groups(self, lr: float) -> list[dict]:
        """Adam parameter groups (read by :func:`fusion_core.train.restore`): stage 2 gives the decoder
        ``decoder_lr_scale`` × lr (the paper's 50 %) and the frozen encoder none."""
        if self.stage == "stage2":
            return [{"params": list(self.fusion.parameters()), "lr": lr},
                    {"params": list(self.decoder.parameters()), "lr": lr * self.decoder_lr_scale}]
        return [{"params": [p for p in self.parameters() if p.requires_grad], "lr": lr}]

    def train(self, mode: bool = True) -> "MSFAM":
        super().train(mode)
        if self.stage == "stage2":
            self.encoder.eval()  # frozen (spec §2.5 assumption; InstanceNorm keeps no running statistics anyway)
        return self

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.encoder(x)

    def fuse_features(self, f_vis: Sequence[torch.Tensor], f_ir: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        if self.fusion_kind == "nestfuse_rule":
            return [self.rule(i, v) for v, i in zip(f_vis, f_ir)]
        first, second = (f_vis, f_ir) if self.concat_order == "vis_first" else (f_ir, f_vis)
        return [block(a, b) for block, a, b in zip(self.fusion, first, second)]

    def decode(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.decoder(feats)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Stage 1: decoder(encoder(x)), no fusion."""
        return self.decode(self.encode(x))

    def forward(self, ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
        """The raw fused output (what the stage-2 loss sees): N×1×H×W."""
        if ir.shape != vis.shape:
            raise ValueError(f"ir {tuple(ir.shape)} and vis {tuple(vis.shape)} differ in shape")
        return self.decode(self.fuse_features(self.encode(vis), self.encode(ir)))


class NestFuse(nn.Module):
    """The plain NestFuse auto-encoder (light-block encoder and decoder, no deep supervision): trained to
    reconstruct single images, it fuses with a training-free rule at each scale (``rule``)."""

    def __init__(self, nb: Sequence[int] = WIDTHS, out_act: str = "relu"):
        super().__init__()
        self.config = {"nb": list(nb), "out_act": out_act}
        self.encoder = Encoder("light", nb, keep_conv0=True)
        self.decoder = NestDecoder(nb, False, out_act)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.reconstruct(x)

    def fuse(self, ir: torch.Tensor, vis: torch.Tensor, rule: str = "nestfuse_avg") -> torch.Tensor:
        merge = get_rule(rule, paper=PAPER)
        return self.decoder([merge(i, v) for i, v in zip(self.encoder(ir), self.encoder(vis))])


class SemanticConstraintNet(nn.Module):
    """§3.5: four conv layers + one FC, sigmoid outputs (p_vis, p_ir). Internals not stated (spec §2.4 assumption):
    4 × (conv 3×3 stride 2 → BatchNorm → LeakyReLU 0.2), channels 16/32/64/128, global average pool, FC 128→2."""

    def __init__(self, channels: Sequence[int] = (16, 32, 64, 128)):
        super().__init__()
        self.config = {"channels": list(channels)}
        widths = [1, *channels]
        self.features = nn.Sequential(*[ConvNormAct(a, b, 3, padding="zeros", norm="batch", act="lrelu", stride=2)
                                        for a, b in zip(widths[:-1], widths[1:])])
        self.fc = nn.Linear(widths[-1], 2)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).mean((-2, -1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(p_vis, p_ir) per image: N×2 probabilities."""
        return torch.sigmoid(self.logits(x))


# --------------------------------------------------------------------------- NestFuse's fusion rule

def _nestfuse_rule(a: torch.Tensor, b: torch.Tensor, pool: str) -> torch.Tensor:
    if a.shape != b.shape or a.ndim != 4:
        raise ValueError(f"two N×C×H×W feature maps of one shape expected, got {tuple(a.shape)} and {tuple(b.shape)}")
    pooled = {"avg": lambda x: x.mean((-2, -1), keepdim=True), "max": lambda x: x.amax((-2, -1), keepdim=True)}[pool]
    pa, pb = pooled(a), pooled(b)
    channel = (pa / (pa + pb + NESTFUSE_EPS)) * a + (pb / (pa + pb + NESTFUSE_EPS)) * b
    ea, eb = torch.exp(a.mean(1, keepdim=True)), torch.exp(b.mean(1, keepdim=True))
    spatial = (ea / (ea + eb + NESTFUSE_EPS)) * a + (eb / (ea + eb + NESTFUSE_EPS)) * b
    return 0.5 * (channel + spatial)


@RULES.register(f"{PAPER}/nestfuse_avg")
def nestfuse_avg(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    r"""NestFuse's rule (``attention_avg``): ½(channel + spatial).
    Channel: $w_a^c = \bar a^c / (\bar a^c + \bar b^c + 10^{-5})$ with $\bar x^c$ the global average of channel c;
    spatial: $w_a = e^{s_a} / (e^{s_a} + e^{s_b} + 10^{-5})$ with $s$ the channel mean at each pixel."""
    return _nestfuse_rule(a, b, "avg")


@RULES.register(f"{PAPER}/nestfuse_max")
def nestfuse_max(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """NestFuse's rule with global max pooling for the channel weights (``attention_max``)."""
    return _nestfuse_rule(a, b, "max")


# --------------------------------------------------------------------------- checkpoints and methods

MODEL_CLASSES = {"MSFAM": MSFAM, "NestFuse": NestFuse, "SemanticConstraintNet": SemanticConstraintNet}


def load_checkpoint(path: str | Path, device: str = "cpu", expect: str | None = None) -> nn.Module:
    """A network from a checkpoint written by :func:`fusion_core.train.train` (class, config, weights)."""
    from ...train import load_network

    return load_network(path, MODEL_CLASSES, device, expect, label=PAPER)


def minmax(x: torch.Tensor) -> torch.Tensor:
    """The paper's output normalisation per image: (F − min)/(max − min), here to [0, 1] (a flat image → 0)."""
    flat = x.flatten(1)
    low, high = flat.min(1).values.view(-1, 1, 1, 1), flat.max(1).values.view(-1, 1, 1, 1)
    return (x - low) / (high - low).clamp_min(1e-12)


DEFAULT_PROTOCOL = "reduced"


def default_weights(kind: str) -> DefaultWeights:
    name = f"msfam_{DEFAULT_PROTOCOL}_seed0_best.pt" if kind == "msfam" else f"nestfuse_{DEFAULT_PROTOCOL}_seed0.pt"
    variant = "base" if kind == "msfam" else kind
    obtain = (f"`python -m fusion_core.papers.msfam.train --protocol {DEFAULT_PROTOCOL} --variant {variant} "
              "--threads 1` retrains it, or pass --weights")
    why = ("the MSFAM authors released no code or weights" if kind == "msfam"
           else "NestFuse's released MS-COCO weights are not available offline")
    return DefaultWeights(CHECKPOINT_DIR / name, f"the repository's {DEFAULT_PROTOCOL}-protocol CPU training, seed 0, "
                                                 f"stored in float16 (a labelled substitute: {why})", obtain)


def build_msfam(weights=None, rule=None, device="cpu"):
    """MSFAM (encoder → fusion → decoder → min–max); ``weights`` a checkpoint of ``train.py``. The rule is the
    network's own fusion (its config ``fusion``): ``afb`` (the paper's), ``conv5x5`` (Table 2 "w/o attention") or
    ``nestfuse_rule`` (Table 1 "Rec"); a rule the checkpoint was not made with is an error."""
    if rule not in (None, *FUSIONS):
        raise ValueError(f"method 'msfam' fuses with the network's own fusion; --rule takes one of {FUSIONS}")
    path = weights or default_weights("msfam").path
    model = load_checkpoint(path, device, expect="MSFAM")
    if rule is not None and rule != model.fusion_kind:
        raise ValueError(f"{path}: its network fuses with '{model.fusion_kind}', not --rule '{rule}'")

    def fuse(ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return minmax(model(ir, vis))

    fuse.model = model  # type: ignore[attr-defined]
    return fuse


def build_nestfuse(weights=None, rule=None, device="cpu"):
    """NestFuse (re-trained by us) with ``rule`` ∈ {nestfuse_avg (default), nestfuse_max}; output clamped to [0, 1]."""
    model = load_checkpoint(weights or default_weights("nestfuse").path, device, expect="NestFuse")
    rule = rule or "nestfuse_avg"
    get_rule(rule, paper=PAPER)  # unknown names fail here, before any image

    def fuse(ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return model.fuse(ir, vis, rule).clamp(0, 1)

    fuse.model = model  # type: ignore[attr-defined]
    return fuse


describe("msfam", "learned", "MSFAM, Sensors 2022", rules=FUSIONS, colour="Y fused + min-max stretch, CbCr kept",
         default_weights=lambda: default_weights("msfam"))
METHODS.register("msfam")(build_msfam)
describe("nestfuse", "learned", "Li et al. 2020 (NestFuse), re-trained", rules=("nestfuse_avg", "nestfuse_max"),
         default_weights=lambda: default_weights("nestfuse"))
METHODS.register("nestfuse")(build_nestfuse)
