"""Building blocks shared by the networks of every paper (one definition each, reused by name).

A network file composes these blocks top to bottom like its paper's figure; a block that more than
one paper needs (conv-norm-act now; channel/spatial attention, Res2Net and dense dilated blocks as the
papers that use them arrive) lives here once.

Example::

    >>> import torch
    >>> block = ConvNormAct(1, 64, padding="reflect", act="prelu")
    >>> block(torch.rand(2, 1, 32, 32)).shape
    torch.Size([2, 64, 32, 32])
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

# Name → factory, so a network states its activations as data ("prelu", "tanh", ...).
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": lambda: nn.ReLU(inplace=False),
    "lrelu": lambda: nn.LeakyReLU(0.2),
    "prelu": lambda: nn.PReLU(),  # one shared slope per layer, initialised to 0.25
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "identity": nn.Identity,
}

NORMS: dict[str, Callable[[int], nn.Module]] = {
    "batch": nn.BatchNorm2d,
    "instance": lambda channels: nn.InstanceNorm2d(channels, affine=True),
    "none": lambda channels: nn.Identity(),
}

PADDINGS = ("zeros", "reflect", "replicate", "circular")


class ConvNormAct(nn.Module):
    r"""Padding → k×k convolution → normalisation → activation, the unit most fusion networks stack.

    Spatial size is preserved for odd ``kernel`` at ``stride`` 1 (padding ``kernel // 2`` of the
    given ``padding`` mode). Submodules are named ``conv``, ``norm`` and ``act`` so that state-dict
    keys read ``<layer>.conv.weight``, ``<layer>.norm.running_mean``, ...

    Args:
        in_channels, out_channels: channel counts.
        kernel: kernel size (odd).
        padding: ``"zeros"``, ``"reflect"``, ``"replicate"`` or ``"circular"``.
        norm: a key of :data:`NORMS` (``"batch"``, ``"instance"``, ``"none"``).
        act: a key of :data:`ACTIVATIONS`.
        bias: convolution bias.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int = 3,
        padding: str = "zeros",
        norm: str = "batch",
        act: str = "prelu",
        stride: int = 1,
        dilation: int = 1,
        bias: bool = True,
    ):
        super().__init__()
        if padding not in PADDINGS:
            raise ValueError(f"padding '{padding}' is not one of {PADDINGS}")
        if norm not in NORMS:
            raise ValueError(f"norm '{norm}' is not one of {sorted(NORMS)}")
        if act not in ACTIVATIONS:
            raise ValueError(f"activation '{act}' is not one of {sorted(ACTIVATIONS)}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel, stride=stride, padding=dilation * (kernel // 2),
            dilation=dilation, padding_mode=padding, bias=bias,
        )
        self.norm = NORMS[norm](out_channels)
        self.act = ACTIVATIONS[act]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected N×{self.in_channels}×H×W input, got shape {tuple(x.shape)}")
        return self.act(self.norm(self.conv(x)))


def count_parameters(module: nn.Module) -> int:
    """Trainable parameters (buffers such as BN running statistics excluded)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


class Res2NetBlock(nn.Module):
    r"""Res2Net block (Gao et al., TPAMI 2021) as Res2NetFuse uses it: 1×1 conv → split into ``scale``
    groups of ``channels/scale`` → hierarchical 3×3 branches → concat → 1×1 conv (all + ReLU).

    $y_1 = x_1,\; y_2 = F_2(x_2),\; y_i = F_i(x_i + y_{i-1})\ (2 < i \le s)$.
    Each branch $F_i$ is ``convs_per_branch`` conv3+ReLU layers; with ``share_branch_convs`` one
    3×3 conv is reused by every application (the Res2NetFuse authors' code).
    The identity skip around the block is the caller's (``c + block(c)``).
    """

    def __init__(self, channels: int = 64, scale: int = 4, share_branch_convs: bool = True, convs_per_branch: int = 2):
        super().__init__()
        if channels % scale:
            raise ValueError(f"channels {channels} not divisible by scale {scale}")
        self.scale, self.share, self.convs_per_branch = scale, share_branch_convs, convs_per_branch
        width = channels // scale
        count = 1 if share_branch_convs else (scale - 1) * convs_per_branch
        self.reduce = ConvNormAct(channels, channels, 1, norm="none", act="relu")
        self.branch_convs = nn.ModuleList(ConvNormAct(width, width, 3, norm="none", act="relu") for _ in range(count))
        self.expand = ConvNormAct(channels, channels, 1, norm="none", act="relu")

    def _branch(self, index: int, x: torch.Tensor) -> torch.Tensor:
        for k in range(self.convs_per_branch):
            x = self.branch_convs[0 if self.share else index * self.convs_per_branch + k](x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = torch.chunk(self.reduce(x), self.scale, dim=1)
        outputs = [parts[0]]
        for i in range(1, self.scale):
            outputs.append(self._branch(i - 1, parts[i] if i == 1 else parts[i] + outputs[-1]))
        return self.expand(torch.cat(outputs, dim=1))
