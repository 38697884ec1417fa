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
