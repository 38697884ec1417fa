r"""DIDFuse (Zhao et al., "When Image Decomposition Meets Deep Learning", TNNLS submission; IJCAI 2020).

A dual-stream auto-encoder (spec 001 §2). The shared encoder maps an image to two skip features
(f1, f2) and to a *base* map B and a *detail* map D (both tanh, 64 channels, full resolution); the
decoder reconstructs the image from cat[B, D] with the two skips concatenated back in::

    x ─ conv1 ─ f1 ─ conv2 ─ f2 ─┬─ conv3 ─ B ─┐
                 │            │  └─ conv4 ─ D ─┴─ cat ─ conv5 ─ cat(·, f2) ─ conv6 ─ cat(·, f1) ─ conv7 ─ x̂
                 │            └───────────────────────────────┘                     │
                 └──────────────────────────────────────────────────────────────────┘

Every layer is padding → 3×3 conv → BatchNorm → activation (Table I). conv6 and conv7 take **128**
channels: the text concatenates the skips and the released weights have shape (64, 128, 3, 3) and
(1, 128, 3, 3); Table I's 64 is the no-skip ablation (spec A1). BN is also in conv7 (spec A2).

At test time both images are encoded, the four feature tensors are merged by a fusion rule
(:mod:`fusion_core.rules`, registered below as ``didfuse/<name>``; the paper's final layer is ``sal+cam``, the authors' released IJCAI
outputs use ``sum``) and the merged features are decoded (BN in eval mode).

Example::

    >>> import torch
    >>> model = DIDFuse().eval()
    >>> ir, vis = torch.rand(1, 1, 64, 64), torch.rand(1, 1, 64, 64)
    >>> model.fuse(ir, vis, "ave").shape
    torch.Size([1, 1, 64, 64])
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from ... import data
from ...data import DataError
from ...io import torch_load
from ...methods import METHODS, DefaultWeights, describe
from ...nets.blocks import ConvNormAct
from ...rules import (RULES, Rule, fuse_features, get_rule, l1_attention, saliency_attention,
                      weighted_average, with_channel_attention)

# ----------------------------------------------------------------------------- hyperparameters
CHANNELS = 64  # feature maps of every hidden layer (Table I)
KERNEL = 3
PAPER_RULE = "sal+cam"  # the paper's final fusion layer (Table III, used in Tables IV-V)
AUTHORS_RULE = "sum"  # the IJCAI test code's rule; reproduces the released fused images
PARAMETERS = 260_935  # trainable parameters of the full model (counted from the released weights)
RELEASED_FILES = ("Encoder_weight_IJCAI.pkl", "Decoder_weight_IJCAI.pkl")


class Features(NamedTuple):
    """Encoder output: skips f1, f2 and the base / detail maps (``None`` where an ablation removes them)."""

    f1: torch.Tensor
    f2: torch.Tensor
    base: torch.Tensor | None
    detail: torch.Tensor | None


SKIP_FIELDS = ("f1", "f2")


class Encoder(nn.Module):
    """conv1 (reflect, PReLU) → conv2 (PReLU) → {conv3 → B, conv4 → D} (tanh), conv3 ∥ conv4 on f2."""

    def __init__(self, channels: int = CHANNELS, base: bool = True, detail: bool = True):
        super().__init__()
        if not (base or detail):
            raise ValueError("the encoder needs the base map, the detail map or both")
        self.conv1 = ConvNormAct(1, channels, KERNEL, padding="reflect", act="prelu")
        self.conv2 = ConvNormAct(channels, channels, KERNEL, act="prelu")
        self.conv3 = ConvNormAct(channels, channels, KERNEL, act="tanh") if base else None  # base B
        self.conv4 = ConvNormAct(channels, channels, KERNEL, act="tanh") if detail else None  # detail D

    def forward(self, x: torch.Tensor) -> Features:
        if x.ndim != 4 or x.shape[1] != 1:
            raise ValueError(f"DIDFuse encodes grey images N×1×H×W, got shape {tuple(x.shape)}")
        f1 = self.conv1(x)
        f2 = self.conv2(f1)
        base = self.conv3(f2) if self.conv3 is not None else None
        detail = self.conv4(f2) if self.conv4 is not None else None
        return Features(f1, f2, base, detail)


class Decoder(nn.Module):
    """conv5(cat[B, D]) → conv6(cat[·, f2]) → conv7(cat[·, f1]) (reflect, sigmoid) → x̂."""

    def __init__(self, channels: int = CHANNELS, maps: int = 2, skips: bool = True):
        super().__init__()
        self.skips = skips
        wide = 2 * channels if skips else channels
        self.conv5 = ConvNormAct(maps * channels, channels, KERNEL, act="prelu")
        self.conv6 = ConvNormAct(wide, channels, KERNEL, act="prelu")
        self.conv7 = ConvNormAct(wide, 1, KERNEL, padding="reflect", act="sigmoid")

    def forward(self, features: Features) -> torch.Tensor:
        maps = [m for m in (features.base, features.detail) if m is not None]  # B channel-first
        x = self.conv5(torch.cat(maps, dim=1))
        x = self.conv6(torch.cat([x, features.f2], dim=1) if self.skips else x)
        return self.conv7(torch.cat([x, features.f1], dim=1) if self.skips else x)


class DIDFuse(nn.Module):
    """Encoder + decoder; ``forward`` reconstructs one image, ``fuse`` merges two through a rule.

    ``base``/``detail``/``skips`` switch off parts for the Table IV ablations (Exp. 1, 2/4, 5).
    """

    def __init__(self, channels: int = CHANNELS, base: bool = True, detail: bool = True, skips: bool = True):
        super().__init__()
        self.config = dict(channels=channels, base=base, detail=detail, skips=skips)
        self.encoder = Encoder(channels, base, detail)
        self.decoder = Decoder(channels, maps=int(base) + int(detail), skips=skips)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, Features]:
        features = self.encoder(x)
        return self.decoder(features), features

    def fuse(self, ir: torch.Tensor, vis: torch.Tensor, rule: str | Rule = PAPER_RULE,
             skip_rule: str | Rule | None = None) -> torch.Tensor:
        """Encode both images, merge B, D (and the skips f1, f2 with ``skip_rule``, default the same) and decode."""
        if ir.shape != vis.shape:
            raise ValueError(f"ir and vis shapes differ: {tuple(ir.shape)} vs {tuple(vis.shape)}")
        merged = fuse_features(self.encoder(ir), self.encoder(vis), rule, skip_rule, SKIP_FIELDS, paper="didfuse")
        return self.decoder(merged)

    def fuse_rules(self, ir: torch.Tensor, vis: torch.Tensor, rules) -> dict:
        """``{rule: self.fuse(ir, vis, rule)}``, clamped to [0, 1], with the encoder (the costly half) run once."""
        if ir.shape != vis.shape:
            raise ValueError(f"ir and vis shapes differ: {tuple(ir.shape)} vs {tuple(vis.shape)}")
        ir_features, vis_features = self.encoder(ir), self.encoder(vis)
        return {rule: self.decoder(fuse_features(ir_features, vis_features, rule, None, SKIP_FIELDS,
                                                 paper="didfuse")).clamp(0, 1) for rule in rules}


# ----------------------------------------------------------------------------- weights

# Released IJCAI state-dict layout: `cov<k>.cov<k>.<i>.<param>` where <i> indexes an nn.Sequential of
# (pad?, conv, bn, act); cov1 and cov7 start with a ReflectionPad2d, so their indices shift by one.
_RELEASED_INDEX = {
    "default": {"0": "conv", "1": "norm", "2": "act"},
    "cov1": {"1": "conv", "2": "norm", "3": "act"},
    "cov7": {"1": "conv", "2": "norm"},
}


def _released_key(key: str) -> str:
    layer, _, index, param = key.split(".", 3)
    part = _RELEASED_INDEX.get(layer, _RELEASED_INDEX["default"])[index]
    half = "encoder" if int(layer[3:]) <= 4 else "decoder"
    return f"{half}.conv{layer[3:]}.{part}.{param}"


def _torch_load(path: Path) -> dict:
    try:
        # weights_only=True reads the legacy (pre-zip) pickle as well, without executing arbitrary code.
        return torch_load(path)
    except FileNotFoundError:
        raise DataError(f"{path}: weights file not found") from None
    except Exception as exc:  # unpickling errors come in many types
        raise DataError(f"{path}: not a readable torch weights file ({exc.__class__.__name__}: {exc})") from None


def _load_state(model: nn.Module, state: dict, path: Path) -> nn.Module:
    try:
        model.load_state_dict(state, strict=True)
    except (RuntimeError, KeyError) as exc:
        raise DataError(f"{path}: weights do not fit the DIDFuse network ({str(exc).splitlines()[0]})") from None
    return model


def load_released(folder: str | Path) -> DIDFuse:
    """The authors' IJCAI weights from a folder holding ``Encoder_weight_IJCAI.pkl`` and ``Decoder_weight_IJCAI.pkl``."""
    folder = Path(folder)
    state = {}
    for name in RELEASED_FILES:
        path = folder / name
        if not path.is_file():
            raise DataError(f"{path}: released DIDFuse weights file not found (expected {' and '.join(RELEASED_FILES)})")
        blob = _torch_load(path)
        if not isinstance(blob, dict) or "weight" not in blob:
            raise DataError(f"{path}: expected a dict with key 'weight' (the authors' checkpoint layout)")
        try:
            state.update({_released_key(k): v for k, v in blob["weight"].items()})
        except (ValueError, KeyError, IndexError):
            raise DataError(f"{path}: state-dict keys are not the released DIDFuse layout (cov<k>.cov<k>.<i>.*)") from None
    return _load_state(DIDFuse(), state, folder)


def load_checkpoint(path: str | Path) -> DIDFuse:
    """A model trained by :func:`fusion_core.train.train` (one file holding its config and state dict)."""
    path = Path(path)
    blob = _torch_load(path)
    if not isinstance(blob, dict) or "model" not in blob:
        raise DataError(f"{path}: not a fusion_core checkpoint (no 'model' entry)")
    if blob.get("model_class") not in (None, "DIDFuse"):
        raise DataError(f"{path}: checkpoint holds a {blob['model_class']}, not a DIDFuse model")
    return _load_state(DIDFuse(**(blob.get("model_config") or {})), blob["model"], path)


def load_weights(weights: str | Path) -> DIDFuse:
    """A folder → the released IJCAI weights; a file → our own checkpoint."""
    path = Path(weights)
    if path.is_dir():
        return load_released(path)
    if not path.exists():
        raise DataError(f"{path}: DIDFuse weights not found (give a checkpoint file or the folder of released .pkl files)")
    return load_checkpoint(path)


REFERENCE_CHECKPOINT = data.REPO_ROOT / "checkpoints" / "didfuse" / "didfuse_reduced_seed0.pt"


def released_weights_dir() -> Path:
    """``<data root>/../reference/didfuse_released/weights`` (where the paper notebooks find them too)."""
    return data.data_root().parent / "reference" / "didfuse_released" / "weights"


def default_weights() -> DefaultWeights:
    """The authors' released IJCAI weights when present next to the data root, else our reference checkpoint.

    The released weights are the authors' own trained model (they reproduce the released TNO outputs with the
    ``sum`` rule); without them, seed 0 of our reduced CPU protocol is the committed model the README's
    tables describe.
    """
    try:
        folder = released_weights_dir()
    except DataError:
        folder = None
    if folder is not None and all((folder / name).is_file() for name in RELEASED_FILES):
        return DefaultWeights(folder, "the authors' released IJCAI weights, found next to the data root")
    where = folder or "<data root>/../reference/didfuse_released/weights"
    return DefaultWeights(REFERENCE_CHECKPOINT, "the repository's reference checkpoint (seed 0, reduced CPU "
                                                f"protocol): no released weights in {where}")


# --------------------------------------------------------------------------- fusion rules (Table III, Eqs. 7-17)

RULES.register("didfuse/l1")(l1_attention)  # Eqs. 7-8: 3x3-box-blurred channel l1 norm as spatial weights
RULES.register("didfuse/sal")(saliency_attention)  # Eqs. 9-12: histogram saliency refined by a guided filter
for _name, _spatial in [("ave", weighted_average), ("l1", l1_attention), ("sal", saliency_attention)]:
    RULES.register(f"didfuse/{_name}+cam")(with_channel_attention(_spatial, f"{_name}+cam"))  # Eq. 17
TABLE3_RULES = ("ave", "l1", "sal", "ave+cam", "l1+cam", "sal+cam")  # Table III, left to right


describe("didfuse", "learned", "Zhao et al. 2020", rules=(PAPER_RULE, AUTHORS_RULE, "ave", "l1",
         "sal", "ave+cam", "l1+cam"), default_weights=default_weights)


@METHODS.register("didfuse")
def build(weights=None, rule=None, device="cpu"):
    """DIDFuse with ``weights`` (checkpoint file or released folder; default :func:`default_weights`) and a
    fusion ``rule`` (default ``sal+cam``)."""
    rule = get_rule(rule or PAPER_RULE, paper="didfuse")
    model = load_weights(weights if weights is not None else default_weights().path).to(device).eval()

    def fuser(ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return model.fuse(ir, vis, rule)

    fuser.model = model  # type: ignore[attr-defined]
    fuser.fuse_rules = model.fuse_rules  # type: ignore[attr-defined]  (engine.method_source: one encoding per pair)
    return fuser
