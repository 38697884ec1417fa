"""``score(fused, ir, vis, metrics, convention)``: images in, one value per image and column out.

Images are tensors N×C×H×W (C = 1 or 3) or arrays H×W / H×W×3, in [0, 1] (or uint8 levels v standing for
v / 255, as 8-bit files decode: the same values, without the float round trip). They become float64 grey-level
planes (0..255) following the convention (quantisation, grey conversion or per-channel evaluation), once
per call and colour mode; each column's metric runs batched on them, and per-channel values are averaged.
"""
from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np
import torch

from ._core import METRICS, mark_whole, rgb2gray, sharing_products
from .conventions import Column, Convention, get_convention


def _as_batch(image, name: str, device) -> torch.Tensor | None:
    if image is None:
        return None
    t = torch.as_tensor(np.ascontiguousarray(image)) if isinstance(image, np.ndarray) else image
    if t.dim() == 2:
        t = t[None, None]
    elif t.dim() == 3:
        t = t.permute(2, 0, 1)[None] if t.shape[-1] in (1, 3) and t.shape[0] not in (1, 3) else t[None]
    if t.dim() != 4 or t.shape[1] not in (1, 3):
        raise ValueError(f"{name}: expected N×C×H×W with C = 1 or 3 (or H×W[×3]), got shape {tuple(t.shape)}")
    return t.to(device=device) if t.dtype == torch.uint8 else t.to(device=device, dtype=torch.float64)


def _levels(t: torch.Tensor | None, quantize: bool) -> torch.Tensor | None:
    """Grey levels (×255) of an image in [0, 1], rounded if ``quantize``. A uint8 image holds 8-bit levels v
    standing for v / 255, whose levels are v itself either way: (v / 255) · 255 = v exactly in float64 for all
    256 values, so rounding changes nothing (tests/test_speed_invariants.py compares the two paths)."""
    if t is None:
        return None
    if t.dtype == torch.uint8:
        if t.dim() == 4 and t.shape[1] == 3 and t.stride(1) == 0:
            # one plane seen three times (DecodedAhead's colour-stored grey): laid out as the decoded RGB it stands
            # for (channels last), since the order a reduction sums in follows the layout (SD moved in the last bit)
            return t.to(torch.float64, memory_format=torch.channels_last)
        return t.to(torch.float64)
    t = t * 255.0
    return t.clamp_(0, 255).add_(0.5).floor_() if quantize else t


def _grey_keeps_equal_levels() -> bool:
    """Whether MATLAB ``rgb2gray`` (uint8 path) maps every grey level v = R = G = B to v itself on this CPU
    (checked on all 256 levels: the coefficients sum to 1 − 1e-15 and the result is rounded)."""
    v = torch.arange(256, dtype=torch.float64).view(1, 1, 1, -1)
    return bool(torch.equal(rgb2gray(v.expand(1, 3, 1, -1), rounded=True), v))


_GREY_KEEPS_EQUAL_LEVELS = _grey_keeps_equal_levels()


def _equal_channels(t: torch.Tensor) -> bool:
    """Three equal channels: by layout (a zero channel stride, one plane seen three times), else compared."""
    if t.shape[1] != 3:
        return False
    return t.stride(1) == 0 or (torch.equal(t[:, 0], t[:, 1]) and torch.equal(t[:, 1], t[:, 2]))


def _grey_levels(t: torch.Tensor, quantize: bool, levels: dict) -> torch.Tensor:
    """The grey plane of an image in [0, 1] (N×1×H×W): its levels, through ``rgb2gray`` if in colour.

    A grey image stored as RGB (three equal channels: most IVIF sets) gives its one channel's levels, the same
    values (see :func:`_grey_keeps_equal_levels`) at a third of the work; ``levels`` caches the full levels."""
    if t.shape[1] == 3 and quantize and _GREY_KEEPS_EQUAL_LEVELS and _equal_channels(t):
        return _levels(t[:, :1], quantize)
    if id(t) not in levels:
        levels[id(t)] = _levels(t, quantize)
    x = levels[id(t)]
    return rgb2gray(x, rounded=quantize) if x.shape[1] == 3 else x


def _planes(fused, ir, vis, colour: str, quantize: bool, levels: dict | None = None):
    """(fused, ir, vis) as (N·C)×H×W planes for the colour mode; C = the number of fused channels used.

    Inputs are in [0, 1]; ``levels`` caches each image's grey levels (×255, rounded if ``quantize``) between
    colour modes. Rounded levels are whole numbers from 0 to 255, and the planes are marked so
    (:func:`~._core.mark_whole`; a NaN stays NaN, and Qabf is NaN on either of its paths)."""
    f, a, b, c = _unmarked_planes(fused, ir, vis, colour, quantize, {} if levels is None else levels)
    if quantize:
        f, a, b = (mark_whole(x) if x is not None else None for x in (f, a, b))
    return f, a, b, c


def _unmarked_planes(fused, ir, vis, colour: str, quantize: bool, levels: dict):
    channels = fused.shape[1]
    if colour == "grey" or channels == 1:
        f, a, b = (_grey_levels(x, quantize, levels) if x is not None else None for x in (fused, ir, vis))
        return f[:, 0], (a[:, 0] if a is not None else None), (b[:, 0] if b is not None else None), 1
    if colour not in ("per_channel", "side_by_side"):
        raise ValueError(f"unknown colour handling {colour!r}")

    def match(x):
        if x is None:
            return None
        if id(x) not in levels:
            levels[id(x)] = _levels(x, quantize)
        x = levels[id(x)]
        return x if x.shape[1] == 3 else x.expand(-1, 3, -1, -1)

    f, a, b = match(fused), match(ir), match(vis)
    if colour == "side_by_side":  # MATLAB indexes an m×n×3 array as m×3n (channels side by side)
        cat = lambda x: None if x is None else torch.cat(x.unbind(1), dim=-1)  # noqa: E731
        return cat(f), cat(a), cat(b), 1
    flat = lambda x: None if x is None else x.reshape(-1, *x.shape[-2:])  # noqa: E731
    return flat(f), flat(a), flat(b), 3


def score_column(column: Column, fused, ir, vis, convention: Convention, planes: dict | None = None,
                 levels: dict | None = None) -> torch.Tensor:
    """One column for a batch of N×C×H×W images in [0, 1]: N values (float64, on the images' device).

    ``planes`` (colour mode → planes) and ``levels`` (image → grey levels) are caches shared by the columns of
    one call, so that quantisation and grey conversion run once per image, not once per column (the metrics
    do not modify their inputs)."""
    record = METRICS[column.metric]
    if record.needs_sources and (ir is None or vis is None):
        raise ValueError(f"metric '{column.metric}' needs the source images ir and vis")
    colour = column.colour or convention.colour
    planes = {} if planes is None else planes
    if colour not in planes:
        planes[colour] = _planes(fused, ir, vis, colour, convention.quantize, levels)
    f, a, b, c = planes[colour]
    values = record.fn(f, a, b, **{**record.defaults, **column.options})
    return values.reshape(-1, c).mean(dim=1)


def score(fused, ir=None, vis=None, metrics: Iterable[str] | None = None, convention: str = "tang",
          device: str | torch.device | None = None, options: Mapping[str, Mapping] | None = None,
          mi_matlab_bug: bool | None = None) -> dict[str, torch.Tensor]:
    """Score fused images against their sources.

    ``metrics``: column names (default: the convention's set); a registered metric the convention does not
    list runs with its own defaults. ``options``: per-column option overrides, e.g. ``{"VIF": {"reduce": "mean"}}``.
    ``mi_matlab_bug``: force the MI column to the DenseFuse/NestFuse MATLAB value (2·EN) or to the correct MI.
    Returns ``{column: float64 tensor of N values}`` on the CPU.

    >>> import torch
    >>> x = torch.rand(1, 1, 64, 64)
    >>> bool(score(x, x, x, ["SCD"], "tang")["SCD"].isnan())  # F − B = 0: an undefined correlation
    True
    """
    conv = get_convention(convention)
    device = torch.device(device) if device is not None else None
    f = _as_batch(fused, "fused", device)
    a, b = _as_batch(ir, "ir", f.device), _as_batch(vis, "vis", f.device)
    for name, t in (("ir", a), ("vis", b)):
        if t is not None and (t.shape[0] != f.shape[0] or t.shape[-2:] != f.shape[-2:]):
            raise ValueError(f"{name}: shape {tuple(t.shape)} does not match fused {tuple(f.shape)}")
    names = list(metrics) if metrics is not None else list(conv.default_columns)
    overrides = dict(options or {})
    if mi_matlab_bug is not None:
        overrides["MI"] = {**overrides.get("MI", {}), "matlab_bug": mi_matlab_bug}
    out, planes, levels = {}, {}, {}
    with sharing_products():  # VIF and SSIM filter the same products of the planes
        for name in names:
            column = conv.column(name)
            if name in overrides:
                column = Column(column.metric, {**column.options, **overrides[name]}, column.colour)
            out[name] = score_column(column, f, a, b, conv, planes, levels).cpu()
    return out
