r"""MFEIF, the authors' journal model (Liu, Fan, Jiang, Liu, Luo, "Learning a Deep Multi-Scale Feature Ensemble
and an Edge-Attention Guidance for Image Fusion", IEEE TCSVT 32(1), 2022), registered as the method ``mfeif`` with
its released weights (``JinyuanLiu-CV/MFEIF`` @ 07906ad ``weights/default.pth``, found through the data root as
``<data root>/../reference/mfeif_released/default.pth``; never copied into git). It is a reference column, not a
reproduction of paper 004: the architecture differs (spec §9.3).

Network (written from the journal paper and the released state dict; every layer conv 3×3 + BatchNorm + ReLU
unless said otherwise)::

    Ext:  conv 1→16 ─┬─ a: 16→32 (d=1) → 32→48 → 48→64
                     ├─ b: 16→32 (d=2) → 32→48 → 48→64       f = 0.1·a₃ + 0.1·b₃ + 1·c₃
                     └─ c: 16→32 (d=3) → 32→48 → 48→64       skips: s₄₈ = a₂+b₂+c₂, s₃₂ = a₁+b₁+c₁
    Att:  u + E(u), E = 3×3 max of the central-difference gradient magnitude; (3×3+ReLU, 3×3 d=2) pairs
          1→32→32, 32→64→128, 128→64→32, then a 1×1 conv 32→1 (one weight per pixel, no activation)
    Con:  conv 64→16, concat s₄₈ → 64→32, concat s₃₂ → 64→16 → 16→1 (BN + ReLU on the last layer too)

Fusion, as the authors' test code at the weights' commit does it (rule ``code``, the default):
z = f_ir·A(ir) + f_vis·A(vis), softmax over the 64 channels; each skip fused "min-mean":
(s_ir + s_vis + min(s_ir, s_vis)) / 3. Rule ``test_py`` is the repository's older ``test.py``: no softmax, skips
summed. Input: the grey image /255 as float32 (what ``cv2.imread(..., GRAYSCALE) / 255.0`` gives). Output: the
constructor's value ×255, saturated to [0, 255] and rounded to the nearest integer, ties to even (``cv2.imwrite``
of a float image converts with ``saturate_cast<uchar>``), returned /255.

Parameter count: extractor 139,728, attention 194,209, constructor 37,203 → 371,140 (BatchNorm scale/shift included).
"""
from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from ... import data
from ...data import DataError
from ...io import torch_load
from ...methods import METHODS, DefaultWeights, describe
from ...nets.blocks import ConvNormAct
from .model import edge_map_mfeif

METHOD = "mfeif"
PATH_WEIGHTS = {"a": 0.1, "b": 0.1, "c": 1.0}  # the released extractor's fixed path weights
DILATION = {"a": 1, "b": 2, "c": 3}
RULES = ("code", "test_py")
DEFAULT_RULE = "code"
RELEASED_PARTS = ("ext", "con", "att")


def _block(cin: int, cout: int, dilation: int = 1) -> ConvNormAct:
    return ConvNormAct(cin, cout, 3, padding="zeros", norm="batch", act="relu", dilation=dilation)


class MFEIFExtractor(nn.Module):
    """Stem and three sequential dilated paths (16→32→48→64); returns f, the 48- and the 32-channel skips."""

    def __init__(self):
        super().__init__()
        self.stem = _block(1, 16)
        self.paths = nn.ModuleDict({p: nn.ModuleList([_block(16, 32, d), _block(32, 48), _block(48, 64)])
                                    for p, d in DILATION.items()})

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x0 = self.stem(x)
        depth = {}
        for name, layers in self.paths.items():
            y, outs = x0, []
            for layer in layers:
                y = layer(y)
                outs.append(y)
            depth[name] = outs
        features = sum(PATH_WEIGHTS[p] * depth[p][2] for p in DILATION)
        return features, sum(depth[p][1] for p in DILATION), sum(depth[p][0] for p in DILATION)


class MFEIFAttention(nn.Module):
    """Attention on u + E(u): three (3×3 + ReLU, 3×3 dilated by 2) pairs and a 1×1 head to one channel."""

    def __init__(self):
        super().__init__()
        self.pairs = nn.ModuleList()
        for a, b, c in ((1, 32, 32), (32, 64, 128), (128, 64, 32)):
            self.pairs.append(nn.ModuleDict({"plain": nn.Conv2d(a, b, 3, padding=1),
                                             "dilated": nn.Conv2d(b, c, 3, padding=2, dilation=2)}))
        self.head = nn.Conv2d(32, 1, 1)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        x = u + edge_map_mfeif(u)
        for pair in self.pairs:
            x = pair["dilated"](torch.relu(pair["plain"](x)))
        return self.head(x)


class MFEIFConstructor(nn.Module):
    """conv 64→16, concat the 48-ch skip, 64→32, concat the 32-ch skip, 64→16, 16→1 (all BN + ReLU)."""

    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([_block(64, 16), _block(64, 32), _block(64, 16), _block(16, 1)])

    def forward(self, f: torch.Tensor, skip48: torch.Tensor, skip32: torch.Tensor) -> torch.Tensor:
        x = torch.cat([self.layers[0](f), skip48], 1)
        x = torch.cat([self.layers[1](x), skip32], 1)
        return self.layers[3](self.layers[2](x))


def min_mean(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    r"""The released code's skip fusion: $(a + b + \min(a, b)) / 3$."""
    return (a + b + torch.minimum(a, b)) / 3


class MFEIF(nn.Module):
    """The journal model; :meth:`fuse` returns the constructor's raw output (≥ 0, not clipped)."""

    def __init__(self):
        super().__init__()
        self.config: dict = {}
        self.ext, self.att, self.con = MFEIFExtractor(), MFEIFAttention(), MFEIFConstructor()

    def fuse(self, ir: torch.Tensor, vis: torch.Tensor, rule: str = DEFAULT_RULE) -> torch.Tensor:
        if rule not in RULES:
            raise ValueError(f"unknown mfeif rule '{rule}'; known: {', '.join(RULES)}")
        if ir.ndim != 4 or ir.shape[1] != 1 or ir.shape != vis.shape:
            raise ValueError(f"expected two N×1×H×W images of one shape, got {tuple(ir.shape)} and "
                             f"{tuple(vis.shape)}")
        f_ir, s48_ir, s32_ir = self.ext(ir)
        f_vis, s48_vis, s32_vis = self.ext(vis)
        z = f_ir * self.att(ir) + f_vis * self.att(vis)
        if rule == "code":
            return self.con(torch.softmax(z, 1), min_mean(s48_ir, s48_vis), min_mean(s32_ir, s32_vis))
        return self.con(z, s48_ir + s48_vis, s32_ir + s32_vis)


def to_8bit(output: torch.Tensor) -> torch.Tensor:
    """×255, saturate to [0, 255], round half to even (cv2's float → uint8), back to [0, 1] on the 8-bit grid."""
    return torch.round((output * 255.0).clamp(0, 255)) / 255.0


# --------------------------------------------------------------------------- the released weights

_EXT_PATH = re.compile(r"^conv_([abc])([123])\.(.*)$")
_ATT_PAIR = re.compile(r"^conv_([123])\.conv_([12])\.(.*)$")


def released_key(part: str, key: str) -> str:
    """A key of the released state dict (``ext``/``con``/``att`` + name) → the name in :class:`MFEIF`.

    ext ``conv_1`` → ``ext.stem``, ``conv_b2`` → ``ext.paths.b.1``; con ``conv_k`` → ``con.layers.(k−1)``;
    att ``conv_i.conv_1``/``conv_2`` → ``att.pairs.(i−1).plain``/``dilated``, ``conv_4`` → ``att.head``;
    every ``.bn.`` → ``.norm.`` (our :class:`~fusion_core.nets.blocks.ConvNormAct`).
    """
    if part not in RELEASED_PARTS:
        raise KeyError(f"unknown released part '{part}'")
    key = key.removeprefix("module.").replace(".bn.", ".norm.")
    if part == "ext":
        if key.startswith("conv_1."):
            return "ext.stem." + key[len("conv_1."):]
        match = _EXT_PATH.match(key)
        if not match:
            raise KeyError(f"ext.{key}")
        return f"ext.paths.{match[1]}.{int(match[2]) - 1}.{match[3]}"
    if part == "con":
        match = re.match(r"^conv_([1-4])\.(.*)$", key)
        if not match:
            raise KeyError(f"con.{key}")
        return f"con.layers.{int(match[1]) - 1}.{match[2]}"
    if key.startswith("conv_4."):
        return "att.head." + key[len("conv_4."):]
    match = _ATT_PAIR.match(key)
    if not match:
        raise KeyError(f"att.{key}")
    return f"att.pairs.{int(match[1]) - 1}.{'plain' if match[2] == '1' else 'dilated'}.{match[3]}"


def released_state(blob: dict, path: Path) -> dict[str, torch.Tensor]:
    """The released ``{'ext': …, 'con': …, 'att': …}`` as one state dict in our names."""
    if not isinstance(blob, dict) or set(blob) != set(RELEASED_PARTS):
        keys = sorted(blob) if isinstance(blob, dict) else type(blob).__name__
        raise DataError(f"{path}: expected a dict with keys {list(RELEASED_PARTS)} (MFEIF's default.pth), got {keys}")
    state = {}
    for part in RELEASED_PARTS:
        for key, value in blob[part].items():
            try:
                state[released_key(part, key)] = value
            except KeyError as exc:
                raise DataError(f"{path}: key {exc} is not in MFEIF's released layout") from None
    return state


def flush_subnormal(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], int]:
    """``state`` with every subnormal float (0 < |x| < the smallest normal, 1.2e-38 in float32) set to zero, and
    how many there were. The released MFEIF weights hold 6,933 (conv and batch-norm weights of unused channels,
    decayed towards zero in training); x86 CPUs compute with subnormals through a microcode assist, so those
    channels made every convolution after them slow: ``fuse`` of a 640×480 pair took 8.2 s, 21 % of the bare
    convolutions' rate, and 2.6 s with them zeroed (``benchmarks/fuse_speed.py``). Their contribution is below
    1e-36, under float32's resolution of any output: the fused image is the same (tests/test_amfe.py)."""
    out, count = {}, 0
    for key, value in state.items():
        if value.is_floating_point():
            tiny = (value != 0) & (value.abs() < torch.finfo(value.dtype).tiny)
            count += int(tiny.sum())
            value = torch.where(tiny, torch.zeros_like(value), value)
        out[key] = value
    return out, count


def load_released(path: str | Path, device: str = "cpu") -> MFEIF:
    """MFEIF with the released weights, loaded strictly: every key and every shape must match. Subnormal values
    are set to zero (:func:`flush_subnormal`: the same output, three times faster on x86)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: MFEIF released weights not found")
    try:
        blob = torch_load(path)
    except Exception as exc:
        raise DataError(f"{path}: not a readable torch weights file ({exc.__class__.__name__})") from None
    model = MFEIF()
    try:
        model.load_state_dict(flush_subnormal(released_state(blob, path))[0], strict=True)
    except RuntimeError as exc:
        raise DataError(f"{path}: weights do not fit the MFEIF network ({str(exc).splitlines()[0]})") from None
    return model.to(device).eval()


def released_weights_path() -> Path:
    """``<data root>/../reference/mfeif_released/default.pth`` (as DIDFuse finds its released weights)."""
    return data.data_root().parent / "reference" / "mfeif_released" / "default.pth"


def default_weights() -> DefaultWeights:
    try:
        path = released_weights_path()
    except DataError:
        path = Path("<data root>/../reference/mfeif_released/default.pth")
    return DefaultWeights(path, "the authors' released MFEIF weights (JinyuanLiu-CV/MFEIF @ 07906ad), "
                                "found next to the data root")


def build(weights=None, rule=None, device="cpu"):
    """MFEIF with the released weights (default) and ``rule`` ∈ {code (default), test_py}; 8-bit output."""
    rule = rule or DEFAULT_RULE
    if rule not in RULES:
        raise ValueError(f"unknown mfeif rule '{rule}'; known: {', '.join(RULES)}")
    model = load_released(weights if weights is not None else default_weights().path, device)

    def fuse(ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return to_8bit(model.fuse(ir, vis, rule))

    fuse.model = model  # type: ignore[attr-defined]
    return fuse


describe(METHOD, "learned", "Liu et al. 2022 (MFEIF, journal version of paper 004)", rules=RULES,
         default_weights=default_weights)
METHODS.register(METHOD)(build)
