r"""SAVF: *Cross-modal image fusion theory guided by subjective visual attention* (Fang, Zhao, Zhang 2019, spec 000).

The paper gives no layer table (spec §2.0): every width, kernel and depth below is the spec's assumption, and
each is a constructor parameter. Three networks, trained in this order and then frozen (spec §4.2)::

    sub-task 2  EnhanceNet     E: conv3 1→16, dense block 3×(conv3 →16), CAM  |  D: conv3 64→64→32→16→1, sigmoid
    sub-task 1  AttentionNet   per modality: LocalGlobal (Eq. 1) → MSRB×n → CAM → PAM → logits s_k
                               F_S = σ(α·s_a + β·s_b + s_a + s_b), (α, β) = softmax(conv(conv([h_a, h_b])))  (Eq. 7)
    main task   SAVFNet        x_k = F_S ⊙ I_k, e = F_S ⊙ [E(x_a), E(x_b)]                                  (Eq. 8)
                               z = conv3([G(x_a), G(x_b), conv1(e)]) → MSRB×n → CAM
                               z = ReLU(conv3(z) + U_att[h_a, h_b] + U_enh e)    (lateral connections, Eq. 2)
                               F_f = σ(conv3(ReLU(conv3(z))))

``G`` is :class:`LocalGlobalFeatures`: the five stage outputs of a VGG-style backbone (frozen, "green frame" of
Fig. 2), each through a learned 1×1 conv to ``tap_ch`` channels and upsampled (bilinear) to H×W, concatenated
and mixed by a 3×3 conv to ``width`` channels. **Backbone weights.** ImageNet weights are not obtainable offline:
:func:`load_backbone_weights` reads a local torchvision VGG16/VGG19 ``state_dict`` file when one is given
(``backbone_weights``); otherwise the backbone is *trained by us* as a reconstruction auto-encoder on the natural-image
corpus in the enhancement stage (:class:`EnhanceStage`). It is never silently random: every network records where its
backbone came from in ``config["backbone_source"]``, which checkpoints and manifests carry.

Variants: ``attention=True`` is OURS+ (method ``savf``, the base variant); ``attention=False`` is OURS (method
``savf_noatt``): F_S ≡ 1 and no attention lateral. Parameter counts (trainable + frozen) are computed, never
typed in: :func:`parameter_summary`; the unit tests pin them for the spec default and for the reduced width.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ...io import torch_load
from ...methods import METHODS, DefaultWeights, describe
from ...nets.blocks import ConvNormAct, count_parameters

PAPER = "savf"

VGG16 = ((64, 128, 256, 512, 512), (2, 2, 3, 3, 3))  # (stage widths, convs per stage): relu1_2 ... relu5_3
VGG19 = ((64, 128, 256, 512, 512), (2, 2, 4, 4, 4))
BACKBONES = {"vgg16": VGG16, "vgg19": VGG19}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MULTIPLE = 16  # four 2×2 poolings: inputs are reflect-padded to a multiple of 16 (spec §2.1)


def _conv(cin: int, cout: int, kernel: int = 3, act: str = "relu") -> ConvNormAct:
    return ConvNormAct(cin, cout, kernel, padding="zeros", norm="none", act=act)


# --------------------------------------------------------------------------- blocks (spec §2.2–2.4)

class ChannelAttention(nn.Module):
    r"""CAM (SE/RCAN style, spec §2.3): $y = x \cdot \sigma(W_2\,\mathrm{ReLU}(W_1\,\mathrm{GAP}(x)))$,
    $W_1: C \to \max(1, C/r)$, $W_2: C/r \to C$ as 1×1 convs."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.squeeze = nn.Conv2d(channels, hidden, 1)
        self.excite = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = torch.sigmoid(self.excite(torch.relu(self.squeeze(x.mean((2, 3), keepdim=True)))))
        return x * z


class PositionAttention(nn.Module):
    r"""PAM (DANet position attention, spec §2.4) on features average-pooled to ``pool``×``pool``:

    $A = \mathrm{softmax}(Q^\top K) \in \mathbb{R}^{N\times N}$ with $Q, K = $ 1×1 convs $C \to C/8$, $V$ 1×1 $C\to C$;
    $y = x + \gamma \cdot \mathrm{up}(V A^\top)$, γ learnable, initialised to 0 (full resolution would need an
    $HW \times HW$ matrix: 65536² at 256²)."""

    def __init__(self, channels: int, pool: int = 32):
        super().__init__()
        inner = max(1, channels // 8)
        self.pool = pool
        self.query, self.key = nn.Conv2d(channels, inner, 1), nn.Conv2d(channels, inner, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        small = F.adaptive_avg_pool2d(x, (min(self.pool, h), min(self.pool, w)))
        q = self.query(small).flatten(2)  # N×C'×P
        k = self.key(small).flatten(2)
        v = self.value(small).flatten(2)  # N×C×P
        attn = torch.softmax(q.transpose(1, 2) @ k, dim=-1)  # N×P×P
        out = (v @ attn.transpose(1, 2)).view(n, c, *small.shape[-2:])
        return x + self.gamma * F.interpolate(out, size=(h, w), mode="bilinear", align_corners=False)


class SpatialAttention(nn.Module):
    r"""CBAM spatial attention (the cheap ``pam="cbam"`` option): $y = x\cdot\sigma(\mathrm{conv}_{7\times7}
    ([\mathrm{mean}_c x, \max_c x]))$."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, 7, padding=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.conv(torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1)))


SPATIAL_ATTENTION = {"danet32": PositionAttention, "cbam": SpatialAttention}


class MSRB(nn.Module):
    r"""Multi-scale residual block (MSRN, spec §2.2), no normalisation, stride 1:

    $S_1 = \mathrm{ReLU}(c^3(M))$, $P_1 = \mathrm{ReLU}(c^5(M))$; $S_2 = \mathrm{ReLU}(c^3([S_1, P_1]))$,
    $P_2 = \mathrm{ReLU}(c^5([P_1, S_1]))$; $y = M + c^1([S_2, P_2])$ (widths C, C, 2C, 2C, 4C→C)."""

    def __init__(self, channels: int):
        super().__init__()
        c = channels
        self.s1, self.p1 = _conv(c, c, 3), _conv(c, c, 5)
        self.s2, self.p2 = _conv(2 * c, 2 * c, 3), _conv(2 * c, 2 * c, 5)
        self.fuse = _conv(4 * c, c, 1, act="identity")

    def forward(self, m: torch.Tensor) -> torch.Tensor:
        s1, p1 = self.s1(m), self.p1(m)
        s2, p2 = self.s2(torch.cat([s1, p1], 1)), self.p2(torch.cat([p1, s1], 1))
        return m + self.fuse(torch.cat([s2, p2], 1))


# --------------------------------------------------------------------------- backbone and Eq. 1

class VGGBackbone(nn.Module):
    """VGG-style feature extractor: stages of 3×3 conv+ReLU separated by 2×2 max-pooling; returns the five stage
    outputs (relu1_2, relu2_2, relu3_x, relu4_x, relu5_x). A grey image is repeated to 3 channels and ImageNet-normalised
    so that torchvision ImageNet weights load unchanged (:func:`load_backbone_weights`)."""

    def __init__(self, widths: Sequence[int] = VGG16[0], depths: Sequence[int] = VGG16[1]):
        super().__init__()
        if len(widths) != 5 or len(depths) != 5:
            raise ValueError(f"a VGG backbone has five stages, got widths {widths} and depths {depths}")
        self.widths = tuple(widths)
        self.stages = nn.ModuleList()
        cin = 3
        for width, depth in zip(widths, depths):
            layers = []
            for _ in range(depth):
                layers += [nn.Conv2d(cin, width, 3, padding=1), nn.ReLU(inplace=False)]
                cin = width
            self.stages.append(nn.Sequential(*layers))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, grey: torch.Tensor) -> list[torch.Tensor]:
        if grey.ndim != 4 or grey.shape[1] != 1:
            raise ValueError(f"VGGBackbone expects N×1×H×W grey images, got shape {tuple(grey.shape)}")
        x = (grey.expand(-1, 3, -1, -1) - self.mean) / self.std
        taps = []
        for i, stage in enumerate(self.stages):
            if i:
                x = F.max_pool2d(x, 2)
            x = stage(x)
            taps.append(x)
        return taps


def load_backbone_weights(backbone: VGGBackbone, path: str | Path) -> VGGBackbone:
    """Load a torchvision VGG ``state_dict`` (keys ``features.<i>.weight``; a full model's ``state_dict`` works too)
    into ``backbone``, conv by conv in order; shapes must match (the spec-default widths)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: backbone weights file not found")
    state = torch_load(path)
    convs = sorted({int(k.split(".")[1]) for k in state if k.startswith("features.") and k.endswith(".weight")})
    ours = [m for m in backbone.modules() if isinstance(m, nn.Conv2d)]
    if len(convs) < len(ours):
        raise ValueError(f"{path}: {len(convs)} conv layers under 'features.', the backbone has {len(ours)}")
    for index, conv in zip(convs, ours):
        weight, bias = state[f"features.{index}.weight"], state[f"features.{index}.bias"]
        if weight.shape != conv.weight.shape:
            raise ValueError(f"{path}: features.{index}.weight is {tuple(weight.shape)}, "
                             f"the backbone needs {tuple(conv.weight.shape)}")
        conv.weight.data.copy_(weight)
        conv.bias.data.copy_(bias)
    return backbone


class LocalGlobalFeatures(nn.Module):
    r"""Eq. 1: $F_{low} = [t_1, \mathrm{up}(t_2)]$, $F_{high} = [\mathrm{up}(t_3), \mathrm{up}(t_4), \mathrm{up}(t_5)]$
    with $t_i = \mathrm{ReLU}(\mathrm{conv}^{1\times1}_i(P^i))$ ("+"/"Σ" read as channel concatenation, "UPS" as bilinear
    upsampling to H×W); output $\mathrm{ReLU}(\mathrm{conv}^{3\times3}([F_{low}, F_{high}]))$, ``width`` channels.
    ``use_global=False`` drops stages 3–5 (the "−global" ablation). The backbone is the caller's (shared, frozen)."""

    def __init__(self, backbone_widths: Sequence[int], tap_ch: int = 32, width: int = 64, use_global: bool = True):
        super().__init__()
        self.use_global = use_global
        used = backbone_widths if use_global else backbone_widths[:2]
        self.taps = nn.ModuleList(_conv(c, tap_ch, 1) for c in used)
        self.mix = _conv(tap_ch * len(used), width, 3)

    def forward(self, stage_outputs: Sequence[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        maps = []
        for tap, feature in zip(self.taps, stage_outputs):
            t = tap(feature)
            maps.append(t if t.shape[-2:] == size else F.interpolate(t, size=size, mode="bilinear", align_corners=False))
        return self.mix(torch.cat(maps, 1))


def _frozen(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        p.requires_grad_(False)
    return module.eval()


def pad_to_multiple(x: torch.Tensor, multiple: int = MULTIPLE) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad bottom/right to a multiple of ``multiple``; returns the padded tensor and the original H, W."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, (h, w)


# --------------------------------------------------------------------------- sub-task 2: enhancement (spec §2.6)

class DenseBlock(nn.Module):
    """``layers`` × (conv3 → ``growth`` + ReLU), each fed the concatenation of the input and all earlier outputs."""

    def __init__(self, channels: int, growth: int = 16, layers: int = 3):
        super().__init__()
        self.convs = nn.ModuleList(_conv(channels + i * growth, growth) for i in range(layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = torch.cat([x, conv(x)], 1)
        return x


class EnhanceNet(nn.Module):
    """The stacked auto-encoder of sub-task 2: ``stacks`` × (encoder E, decoder D); E's output (64 channels with the
    defaults) of the first stack is F_Enhance of Eq. 8."""

    def __init__(self, growth: int = 16, stacks: int = 1):
        super().__init__()
        feat = growth * 4
        self.encoders = nn.ModuleList(nn.Sequential(_conv(1, growth), DenseBlock(growth, growth, 3),
                                                    ChannelAttention(feat)) for _ in range(stacks))
        self.decoders = nn.ModuleList(nn.Sequential(_conv(feat, feat), _conv(feat, feat // 2), _conv(feat // 2, feat // 4),
                                                    _conv(feat // 4, 1, act="sigmoid")) for _ in range(stacks))
        self.channels = feat

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoders[0](x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for encoder, decoder in zip(self.encoders, self.decoders):
            x = decoder(encoder(x))
        return x


class BackboneDecoder(nn.Module):
    """Trains a backbone without ImageNet weights: Eq. 1 features of the backbone → conv3 → conv3 → sigmoid image."""

    def __init__(self, backbone_widths: Sequence[int], tap_ch: int, width: int):
        super().__init__()
        self.features = LocalGlobalFeatures(backbone_widths, tap_ch, width)
        self.out = nn.Sequential(_conv(width, width // 2), _conv(width // 2, 1, act="sigmoid"))

    def forward(self, stage_outputs: Sequence[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        return self.out(self.features(stage_outputs, size))


# --------------------------------------------------------------------------- configuration

DEFAULT_CONFIG = {  # spec §2 and §9 "Suggested notebook parameters"
    "backbone": "vgg16", "backbone_scale": 1.0, "width": 64, "tap_ch": 32, "n_msrb": 2, "pam": "danet32",
    "enh_growth": 16, "enh_stacks": 1, "cam_reduction": 16, "use_global": True, "lateral": True,
    # main-network-only switches for the ablation notebook 05a (the frozen sub-task columns keep what they were
    # trained with): CAM after the MSRBs, Eq. 1's global stages 3-5, the F_S⊙F_Enhance input (and its lateral)
    "main_cam": True, "main_global": True, "main_enhance": True,
}


def model_config(**overrides) -> dict:
    """The spec defaults with ``overrides``; unknown keys are an error (a typo would silently change the network)."""
    unknown = set(overrides) - set(DEFAULT_CONFIG) - {"attention", "backbone_source"}
    if unknown:
        raise ValueError(f"unknown SAVF settings {sorted(unknown)}; known: {sorted(DEFAULT_CONFIG)}")
    config = {**DEFAULT_CONFIG, **overrides}
    if config["backbone"] not in BACKBONES:
        raise ValueError(f"backbone '{config['backbone']}' is not one of {sorted(BACKBONES)}")
    if config["pam"] not in SPATIAL_ATTENTION:
        raise ValueError(f"pam '{config['pam']}' is not one of {sorted(SPATIAL_ATTENTION)}")
    return config


def backbone_widths(config: dict) -> tuple[int, ...]:
    """Stage widths: the VGG widths × ``backbone_scale`` (1.0 = VGG; the CPU protocols use 1/8)."""
    widths, _ = BACKBONES[config["backbone"]]
    return tuple(max(4, int(round(w * config["backbone_scale"]))) for w in widths)


def build_backbone(config: dict) -> VGGBackbone:
    return VGGBackbone(backbone_widths(config), BACKBONES[config["backbone"]][1])


# --------------------------------------------------------------------------- stage networks

class EnhanceStage(nn.Module):
    """What the enhancement stage trains: EnhanceNet, and the backbone with a reconstruction decoder unless the
    backbone came from a weights file (``train_backbone=False``; it is then frozen and left out of the loss)."""

    def __init__(self, train_backbone: bool = True, **settings):
        super().__init__()
        self.config = {**model_config(**settings), "train_backbone": train_backbone}
        self.enhance = EnhanceNet(self.config["enh_growth"], self.config["enh_stacks"])
        self.backbone = build_backbone(self.config)
        self.backbone_decoder = BackboneDecoder(backbone_widths(self.config), self.config["tap_ch"], self.config["width"]) \
            if train_backbone else None
        if not train_backbone:
            _frozen(self.backbone)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {"enhanced": self.enhance(x)}
        if self.backbone_decoder is not None:
            out["backbone"] = self.backbone_decoder(self.backbone(x), tuple(x.shape[-2:]))
        return out


class AttentionNet(nn.Module):
    """Sub-task 1 (spec §2.5): per-modality attention logits from shared weights, fused by the learned Eq. 7 rule."""

    def __init__(self, **settings):
        super().__init__()
        self.config = model_config(**settings)
        c, width = self.config, self.config["width"]
        self.backbone = _frozen(build_backbone(c))
        self.features = LocalGlobalFeatures(backbone_widths(c), c["tap_ch"], width, c["use_global"])
        self.body = nn.Sequential(*[MSRB(width) for _ in range(c["n_msrb"])], ChannelAttention(width, c["cam_reduction"]),
                                  SPATIAL_ATTENTION[c["pam"]](width))
        self.head = nn.Sequential(_conv(width, width // 2), _conv(width // 2, 1, 1, act="identity"))
        self.weights = nn.Sequential(_conv(2 * width, width), _conv(width, 2, 3, act="identity"))

    def train(self, mode: bool = True):
        super().train(mode)
        self.backbone.eval()  # frozen: no dropout/BN here, but keep the contract explicit
        return self

    def hidden(self, image: torch.Tensor) -> torch.Tensor:
        """h_k: the modality's attention features (``width`` channels, H×W); also the main net's lateral input."""
        return self.body(self.features(self.backbone(image), tuple(image.shape[-2:])))

    def forward(self, ir: torch.Tensor, vis: torch.Tensor) -> dict[str, torch.Tensor]:
        r"""Eq. 7 (cleaned, spec §3): $F_S = \sigma(\alpha s_a + \beta s_b + (s_a + s_b))$, (α, β) a per-pixel softmax
        ("nonlinear and sum" rule, learned). Returns ``F_S`` (N×1×H×W in [0, 1]), ``s_a``, ``s_b``, ``h_a``, ``h_b``."""
        h_a, h_b = self.hidden(ir), self.hidden(vis)
        s_a, s_b = self.head(h_a), self.head(h_b)
        w = torch.softmax(self.weights(torch.cat([h_a, h_b], 1)), dim=1)
        fused = torch.sigmoid(w[:, :1] * s_a + w[:, 1:] * s_b + s_a + s_b)
        return {"F_S": fused, "s_a": s_a, "s_b": s_b, "h_a": h_a, "h_b": h_b}


class SAVFNet(nn.Module):
    """The main fusion network N (spec §2.7) with its frozen sub-task columns (backbone, EnhanceNet, AttentionNet).

    ``attention=True``: OURS+ (Eq. 8 gating by F_S and the attention lateral); ``False``: OURS (F_S ≡ 1, no
    attention column). ``lateral=False`` drops the Eq. 2 lateral connections (the "−lateral" ablation);
    ``main_cam``, ``main_global``, ``main_enhance`` = False drop the main network's CAM, the global stages 3–5 of its
    Eq. 1 features, and its F_S⊙F_Enhance input with the enhancement lateral (ablations of the main network only).
    Call :meth:`load_subtasks` before training; the frozen columns are part of the state dict, so one checkpoint
    fuses on its own.
    """

    def __init__(self, attention: bool = True, backbone_source: str = "unset", **settings):
        super().__init__()
        self.config = {**model_config(**settings), "attention": attention, "backbone_source": backbone_source}
        c, width = self.config, self.config["width"]
        self.backbone = _frozen(build_backbone(c))
        self.enhance = _frozen(EnhanceNet(c["enh_growth"], c["enh_stacks"]))
        self.attention = _frozen(AttentionNet(**{k: c[k] for k in DEFAULT_CONFIG})) if attention else None
        enh = 2 * self.enhance.channels
        self.features = LocalGlobalFeatures(backbone_widths(c), c["tap_ch"], width, c["use_global"] and c["main_global"])
        self.enh_in = _conv(enh, width, 1) if c["main_enhance"] else None
        self.stem = _conv((3 if c["main_enhance"] else 2) * width, width, 3)
        cam = ChannelAttention(width, c["cam_reduction"]) if c["main_cam"] else nn.Identity()
        self.body = nn.Sequential(*[MSRB(width) for _ in range(c["n_msrb"])], cam)
        self.lateral_conv = nn.Conv2d(width, width, 3, padding=1)
        self.lateral_att = nn.Conv2d(2 * width, width, 1) if attention and c["lateral"] else None
        self.lateral_enh = nn.Conv2d(enh, width, 1) if c["lateral"] and c["main_enhance"] else None
        self.out = nn.Sequential(_conv(width, width // 2), _conv(width // 2, 1, act="sigmoid"))

    def train(self, mode: bool = True):
        super().train(mode)
        for frozen in (self.backbone, self.enhance, self.attention):
            if frozen is not None:
                frozen.eval()
        return self

    def load_subtasks(self, enhance_stage: EnhanceStage | None, attention: AttentionNet | None) -> "SAVFNet":
        """Copy the trained sub-task weights into the frozen columns (backbone from the enhancement stage)."""
        if enhance_stage is not None:
            self.enhance.load_state_dict(enhance_stage.enhance.state_dict())
            self.backbone.load_state_dict(enhance_stage.backbone.state_dict())
        if self.attention is not None:
            if attention is None:
                raise ValueError("SAVFNet(attention=True) needs the trained AttentionNet")
            self.attention.load_state_dict(attention.state_dict())
        return self

    def attention_map(self, ir: torch.Tensor, vis: torch.Tensor) -> dict[str, torch.Tensor] | None:
        return None if self.attention is None else self.attention(ir, vis)

    def forward(self, ir: torch.Tensor, vis: torch.Tensor, attention: torch.Tensor | None = None) -> torch.Tensor:
        r"""Eq. 8: $F_f = N(F_S \odot I_a, F_S \odot I_b, F_S \odot [E(F_S\odot I_a), E(F_S\odot I_b)])$, N×1×H×W in [0, 1].

        ``attention`` overrides F_S (N×1×H×W in [0, 1]); OURS uses F_S ≡ 1. H and W must be multiples of 16
        (:meth:`fuse` pads)."""
        if ir.shape != vis.shape or ir.ndim != 4 or ir.shape[1] != 1:
            raise ValueError(f"SAVFNet needs two N×1×H×W images of one shape, got {tuple(ir.shape)} and {tuple(vis.shape)}")
        size = tuple(ir.shape[-2:])
        att = self.attention(ir, vis) if self.attention is not None else None
        gate = attention if attention is not None else (att["F_S"] if att is not None else torch.ones_like(ir))
        x_a, x_b = gate * ir, gate * vis
        g_a, g_b = self.features(self.backbone(x_a), size), self.features(self.backbone(x_b), size)
        if self.enh_in is not None:
            e = gate * torch.cat([self.enhance.encode(x_a), self.enhance.encode(x_b)], 1)
            z = self.body(self.stem(torch.cat([g_a, g_b, self.enh_in(e)], 1)))
        else:
            z = self.body(self.stem(torch.cat([g_a, g_b], 1)))
        z = self.lateral_conv(z)
        if self.lateral_att is not None and att is not None:
            z = z + self.lateral_att(torch.cat([att["h_a"], att["h_b"]], 1))
        if self.lateral_enh is not None:
            z = z + self.lateral_enh(e)
        return self.out(torch.relu(z))

    def fuse(self, ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
        """Fused image at any size: reflect-padded to a multiple of 16, cropped back."""
        (ir_p, (h, w)), (vis_p, _) = pad_to_multiple(ir), pad_to_multiple(vis)
        return self(ir_p, vis_p)[..., :h, :w]


def composite(fused_plus: torch.Tensor, fused_plain: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
    r"""Display mode "composite" (spec §2.7): $F_S \odot F^{OURS+} + (1 - F_S) \odot F^{OURS}$."""
    return attention * fused_plus + (1 - attention) * fused_plain


def parameter_summary(model: nn.Module) -> dict[str, tuple[int, int]]:
    """(trainable, frozen) parameters of each direct child; the counts the unit tests pin."""
    rows = {}
    for name, child in model.named_children():
        if child is None:
            continue
        total = sum(p.numel() for p in child.parameters())
        rows[name] = (count_parameters(child), total - count_parameters(child))
    return rows


# --------------------------------------------------------------------------- checkpoints and the methods

CLASSES = {cls.__name__: cls for cls in (EnhanceStage, AttentionNet, SAVFNet)}


def load_checkpoint(path: str | Path, device: str = "cpu", expect: str | None = None) -> nn.Module:
    """A network from a checkpoint of :func:`fusion_core.train.train` (class name and config inside)."""
    from ...train import load_network

    return load_network(path, CLASSES, device, expect, label="SAVF")


CHECKPOINT_DIR = Path(__file__).resolve().parents[3] / "checkpoints" / PAPER
DEFAULT_FILES = {"savf": "savf_reduced_seed0.pt", "savf_noatt": "savf_reduced_noatt_seed0.pt"}


def _default(method: str):
    def default_weights() -> DefaultWeights:
        return DefaultWeights(CHECKPOINT_DIR / DEFAULT_FILES[method],
                              "the repository's reduced-protocol CPU training, seed 0 (the authors released no "
                              "code or weights; backbone trained by us, no ImageNet weights)")
    return default_weights


def _builder(method: str, attention: bool):
    def build(weights=None, rule=None, device="cpu"):
        if rule is not None:
            raise ValueError(f"method '{method}' has no fusion rule to choose (the rule is learned, Eq. 7–8)")
        path = Path(weights) if weights is not None else CHECKPOINT_DIR / DEFAULT_FILES[method]
        if weights is None and not path.is_file():
            raise FileNotFoundError(f"{path}: no committed default weights for '{method}' yet; train them with "
                                    "python -m fusion_core.papers.savf.train --protocol reduced, or pass --weights")
        model = load_checkpoint(path, device, expect="SAVFNet")
        if model.config["attention"] != attention:
            raise ValueError(f"{path}: a {'OURS+' if model.config['attention'] else 'OURS'} checkpoint, "
                             f"method '{method}' needs {'OURS+' if attention else 'OURS'}")

        def fuse(ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
            with torch.inference_mode():
                return model.fuse(ir, vis).clamp(0, 1)

        fuse.model = model  # type: ignore[attr-defined]
        return fuse

    build.__doc__ = f"SAVF {'OURS+ (with attention)' if attention else 'OURS (no attention)'}: ``weights`` a SAVFNet checkpoint."
    return build


describe("savf", "learned", "Fang et al. 2019 (OURS+)", default_weights=_default("savf"))
describe("savf_noatt", "learned", "Fang et al. 2019 (OURS)", default_weights=_default("savf_noatt"))
METHODS.register("savf")(_builder("savf", True))
METHODS.register("savf_noatt")(_builder("savf_noatt", False))
