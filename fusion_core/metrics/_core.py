"""The metric record, the ``METRICS`` registry and the numeric building blocks shared by the metrics.

Every metric function has the signature ``fn(fused, ir, vis, **options) -> Tensor[N]`` on *planes*:
float64 tensors of shape N×H×W holding grey levels in [0, 255] (what an 8-bit image decodes to).
No-reference metrics ignore ``ir``/``vis``. Options come from the convention table
(:mod:`fusion_core.metrics.conventions`); each function documents the ones it takes.

The filters reproduce MATLAB's boundary handling, since the toolboxes differ exactly there:
``filter2``/``imfilter`` correlate, ``conv2`` convolves, ``'same'`` keeps the size with zero padding,
``'valid'`` drops the border, ``imfilter(...,'replicate')`` repeats the edge pixels.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import math
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..registry import Registry

GREY_LEVELS = 256
# MATLAB rgb2gray coefficients: the first row of inv([1 .956 .621; 1 -.272 -.647; 1 -1.106 1.703]).
MATLAB_RGB2GRAY = (0.298936021293775, 0.587043074451121, 0.114020904255103)


@dataclass(frozen=True)
class Metric:
    """One registered metric: the function, which way is better, and whether it needs the sources."""

    name: str
    fn: Callable[..., torch.Tensor]
    direction: str  # "higher" or "lower" is better
    needs_sources: bool
    summary: str = ""
    defaults: dict = field(default_factory=dict)


METRICS: Registry[Metric] = Registry("metric")


def metric(name: str, direction: str, needs_sources: bool, summary: str = "", **defaults):
    """Decorator: register ``fn`` in ``METRICS`` under ``name``."""
    if direction not in ("higher", "lower"):
        raise ValueError(f"metric '{name}': direction must be 'higher' or 'lower', not {direction!r}")

    def add(fn):
        METRICS.register(name)(Metric(name, fn, direction, needs_sources, summary or (fn.__doc__ or "").split("\n")[0], defaults))
        return fn

    return add


# --------------------------------------------------------------------------- checks and colour

def check_planes(*planes: torch.Tensor) -> None:
    shape = planes[0].shape
    for plane in planes:
        if plane.dim() != 3:
            raise ValueError(f"metric input must be N×H×W planes, got shape {tuple(plane.shape)}")
        if plane.shape != shape:
            raise ValueError(f"metric inputs differ in shape: {tuple(shape)} vs {tuple(plane.shape)}")


def rgb2gray(rgb: torch.Tensor, rounded: bool) -> torch.Tensor:
    """MATLAB ``rgb2gray`` on N×3×H×W grey levels; ``rounded`` = the uint8 path (round half away from 0)."""
    # written out left to right (separate, correctly rounded products and sums, no reduction kernel whose order
    # depends on the CPU's vector width), so the rounding of x.5 cases is the same on every CPU
    r, g, b = rgb.unbind(dim=1)
    grey = (r * MATLAB_RGB2GRAY[0] + g * MATLAB_RGB2GRAY[1] + b * MATLAB_RGB2GRAY[2]).unsqueeze(1)
    return torch.floor(grey + 0.5).clamp(0, 255) if rounded else grey


def scaled(x: torch.Tensor, value_scale: float) -> torch.Tensor:
    """``x * value_scale``, or ``x`` itself for 1 (the same values without a copy). Do not modify the result
    in place."""
    return x if value_scale == 1 else x * value_scale


# --------------------------------------------------------------------------- planes known to hold grey levels

# id(plane) → (weak reference, version counter when marked). A plane built from 8-bit levels holds whole numbers by
# construction; a metric that needs to know (Qabf's exact Sobel sums) can skip a check that costs three passes over it.
_WHOLE: dict[int, tuple[weakref.ref, int]] = {}


def mark_whole(plane: torch.Tensor) -> torch.Tensor:
    """Record that ``plane`` holds whole numbers of magnitude below 2⁴³ by construction (grey levels, or levels ×255),
    until it is modified in place (its version counter moves). Inference-mode tensors track no version, so they stay
    unmarked. Returns ``plane``."""
    if not plane.is_inference():
        key = id(plane)
        _WHOLE[key] = (weakref.ref(plane, lambda _, key=key: _WHOLE.pop(key, None)), plane._version)
    return plane


def known_whole(plane: torch.Tensor) -> bool:
    """Whether ``plane`` was marked by :func:`mark_whole` and has not been modified in place since."""
    entry = _WHOLE.get(id(plane))
    return entry is not None and entry[0]() is plane and entry[1] == plane._version


# Within :func:`sharing_products`: (id(x), id(y)) → (x, y, x * y). score() opens it, so VIF and SSIM, which filter
# the same products of the same planes (F², A², A·F, B², B·F), compute them once per call.
_PRODUCTS: contextvars.ContextVar[dict | None] = contextvars.ContextVar("fusion_products", default=None)


@contextlib.contextmanager
def sharing_products():
    """Inside, :func:`product` of the same two planes is computed once and shared; the products are released on exit."""
    token = _PRODUCTS.set({})
    try:
        yield
    finally:
        _PRODUCTS.reset(token)


def product(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``x * y``, shared within :func:`sharing_products` while neither plane is modified in place; do not modify
    the result in place."""
    shared = _PRODUCTS.get()
    if shared is None or x.is_inference() or y.is_inference():
        return x * y
    key = (id(x), id(y))
    hit = shared.get(key)
    if hit is not None and hit[0] is x and hit[1] is y and hit[2] == (x._version, y._version):
        return hit[3]
    p = x * y
    shared[key] = (x, y, (x._version, y._version), p)
    return p


# --------------------------------------------------------------------------- filters

def fspecial_gaussian(size: int, sigma: float, dtype=torch.float64, device=None) -> torch.Tensor:
    """MATLAB ``fspecial('gaussian', size, sigma)`` as its separable 1-D factor (outer(g, g) = the 2-D kernel)."""
    half = (size - 1) / 2.0
    x = torch.arange(size, dtype=dtype, device=device) - half
    g = torch.exp(-(x * x) / (2.0 * sigma * sigma))
    return g / g.sum()


def _pad(x: torch.Tensor, ph: int, pw: int, boundary: str) -> torch.Tensor:
    if ph == 0 and pw == 0:
        return x
    if boundary == "zero":
        return F.pad(x, (pw, pw, ph, ph))
    if boundary == "replicate":
        return F.pad(x, (pw, pw, ph, ph), mode="replicate")
    if boundary == "symmetric":  # MATLAB 'symmetric': mirror including the edge pixel
        if ph:
            x = torch.cat([x[..., :ph, :].flip(-2), x, x[..., -ph:, :].flip(-2)], dim=-2)
        if pw:
            x = torch.cat([x[..., :, :pw].flip(-1), x, x[..., :, -pw:].flip(-1)], dim=-1)
        return x
    raise ValueError(f"unknown boundary {boundary!r}")


# On the CPU the filters run OpenCV (vectorised float64 C++: 3× faster than scipy.ndimage, 20× faster than
# torch's double convolution), one plane per task on torch's number of threads; elsewhere torch conv2d.
# Both correlate, as filter2/imfilter do.
_CV_BORDER = {"zero": "BORDER_CONSTANT", "replicate": "BORDER_REPLICATE", "symmetric": "BORDER_REFLECT"}
_SCIPY_MODE = {"zero": "constant", "replicate": "nearest", "symmetric": "reflect"}
_CV_MAX_DIRECT = 49  # cv2.filter2D switches to a DFT above ~50 taps; larger kernels go to scipy


def _use_cv2(x: torch.Tensor) -> bool:
    return x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and min(x.shape[-2:]) > 0


def _cv_border(boundary: str) -> int:
    import cv2

    try:
        return getattr(cv2, _CV_BORDER[boundary])
    except KeyError:
        raise ValueError(f"unknown boundary {boundary!r}") from None


@functools.lru_cache(maxsize=4)
def _pool(workers: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(workers, thread_name_prefix="fusion-metrics")


def _cv_planes(xs: Sequence[torch.Tensor], apply: Callable) -> list[torch.Tensor]:
    """``apply(plane, out)`` on every H×W plane of the CPU tensors ``xs`` (OpenCV releases the GIL, so the
    planes run in parallel on torch's number of threads); returns same-shape outputs."""
    srcs = [np.ascontiguousarray(x.detach().numpy()) for x in xs]
    outs = [np.empty_like(src) for src in srcs]
    jobs = [job for src, out in zip(srcs, outs)
            for job in zip(src.reshape(-1, *src.shape[-2:]), out.reshape(-1, *src.shape[-2:]))]
    workers = min(torch.get_num_threads(), len(jobs))
    if workers > 1:
        list(_pool(workers).map(lambda job: apply(*job), jobs))
    else:
        for job in jobs:
            apply(*job)
    return [torch.from_numpy(out) for out in outs]


def _crop_valid(y: torch.Tensor, kh: int, kw: int, step: int = 1) -> torch.Tensor:
    """The 'valid' part of a 'same' result (a view; every ``step``-th row and column)."""
    top, left = (kh - 1) // 2, (kw - 1) // 2
    return y[..., top:y.shape[-2] - (kh - 1 - top):step, left:y.shape[-1] - (kw - 1 - left):step]


def correlate(x: torch.Tensor, kernel: torch.Tensor, shape: str = "same", boundary: str = "zero") -> torch.Tensor:
    """2-D correlation of N×H×W planes with a kh×kw kernel (MATLAB ``filter2``/``imfilter``).

    ``shape``: ``"same"`` (padded by ``boundary``: zero, replicate, symmetric) or ``"valid"``. On the CPU odd
    kernels run OpenCV (scipy.ndimage above 7×7), elsewhere conv2d.
    """
    kh, kw = kernel.shape
    if shape not in ("same", "valid"):
        raise ValueError(f"unknown shape {shape!r}")
    if _use_cv2(x) and kh % 2 and kw % 2:
        mode = boundary if shape == "same" else "zero"
        k = kernel.detach().cpu().to(x.dtype).numpy()
        if kh * kw <= _CV_MAX_DIRECT:
            import cv2

            border = _cv_border(mode)
            y = _cv_planes([x], lambda p, out: cv2.filter2D(p, -1, k, dst=out, borderType=border))[0]
        else:
            from scipy import ndimage

            y = torch.from_numpy(ndimage.correlate(x.numpy(), k[None], mode=_SCIPY_MODE[mode]))
        return y if shape == "same" else _crop_valid(y, kh, kw)
    if shape == "same":
        x = _pad(x, (kh - 1) // 2, (kw - 1) // 2, boundary)
        # MATLAB centres an even kernel at floor((k+1)/2); the extra row/column of padding goes after
        if kh % 2 == 0 or kw % 2 == 0:
            x = F.pad(x, (0, 1 if kw % 2 == 0 else 0, 0, 1 if kh % 2 == 0 else 0))
    return F.conv2d(x.unsqueeze(1), kernel.to(x).view(1, 1, kh, kw)).squeeze(1)


def convolve(x: torch.Tensor, kernel: torch.Tensor, shape: str = "same", boundary: str = "zero") -> torch.Tensor:
    """MATLAB ``conv2(x, kernel, shape)``: correlation with the kernel rotated by 180°."""
    return correlate(x, torch.flip(kernel, dims=(0, 1)), shape, boundary)


def separable(x: torch.Tensor, g: torch.Tensor, shape: str = "same", boundary: str = "zero",
              step: int = 1) -> torch.Tensor:
    """Correlation with the separable kernel outer(g, g) (odd length): same result as :func:`correlate`.

    ``step`` keeps every step-th output row and column ('valid' only). 'valid' results may be views."""
    return separable_many([x], g, shape, boundary, step)[0]


def separable_many(maps: Sequence[torch.Tensor], g: torch.Tensor, shape: str = "same", boundary: str = "zero",
                   step: int = 1) -> list[torch.Tensor]:
    """:func:`separable` of several N×H×W maps of one shape with one kernel, filtered together (one conv2d
    call, or every plane in parallel on the CPU)."""
    k = g.numel()
    if k % 2 == 0:
        raise ValueError(f"separable: kernel length must be odd, got {k}")
    if shape not in ("same", "valid"):
        raise ValueError(f"unknown shape {shape!r}")
    if step != 1 and shape != "valid":
        raise ValueError("separable: step needs shape='valid'")
    if not maps:
        return []
    if _use_cv2(maps[0]):
        import cv2

        gn = g.detach().cpu().to(maps[0].dtype).numpy()
        border = _cv_border(boundary if shape == "same" else "zero")
        out = _cv_planes(maps, lambda p, dst: cv2.sepFilter2D(p, -1, gn, gn, dst=dst, borderType=border))
        if shape == "same":
            return out
        # views, so that callers' in-place math needs no copy; subsampled ones are small, so compact
        return [_crop_valid(y, k, k) if step == 1 else _crop_valid(y, k, k, step).contiguous() for y in out]
    n = maps[0].shape[0]
    x = torch.cat(list(maps), dim=0)
    h = (k - 1) // 2
    if shape == "same":
        x = _pad(x, h, h, boundary)
    g = g.to(x)
    y = F.conv2d(x.reshape(x.shape[0], 1, *x.shape[-2:]), g.view(1, 1, 1, k))
    y = F.conv2d(y, g.view(1, 1, k, 1)).squeeze(1)
    if step != 1:
        y = y[..., ::step, ::step]
    return list(y.split(n, dim=0))


STRIP_ROWS = 128  # CPU per-pixel arithmetic runs on strips of rows: its temporaries stay in cache (2× faster)


def row_strips(x: torch.Tensor) -> list[slice]:
    """Row slices for per-pixel arithmetic on ``x``'s planes: strips on the CPU, the whole plane elsewhere
    (a GPU wants few large kernels)."""
    if x.device.type != "cpu":
        return [slice(None)]
    return [slice(r, r + STRIP_ROWS) for r in range(0, x.shape[-2], STRIP_ROWS)]


def gradient_xy(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """MATLAB ``gradient``: central differences inside, one-sided at the borders; returns (d/dx, d/dy).

    Written out on preallocated outputs: ``torch.gradient`` gives the same values 20× slower."""
    if min(x.shape[-2:]) < 2:
        raise ValueError(f"gradient needs at least 2 rows and columns, got shape {tuple(x.shape)}")
    dx, dy = torch.empty_like(x), torch.empty_like(x)
    for d, dim in ((dx, -1), (dy, -2)):
        size = x.shape[dim]
        torch.sub(x.narrow(dim, 2, size - 2), x.narrow(dim, 0, size - 2), out=d.narrow(dim, 1, size - 2))
        d.narrow(dim, 1, size - 2).div_(2)
        torch.sub(x.narrow(dim, 1, 1), x.narrow(dim, 0, 1), out=d.narrow(dim, 0, 1))
        torch.sub(x.narrow(dim, size - 1, 1), x.narrow(dim, size - 2, 1), out=d.narrow(dim, size - 1, 1))
    return dx, dy


def dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    r"""Per-image :math:`\sum a b` of N×H×W planes → N, as one batched matrix product (no product map)."""
    n = a.shape[0]
    return torch.bmm(a.reshape(n, 1, -1), b.reshape(n, -1, 1)).view(n)


# --------------------------------------------------------------------------- histograms

def _offset_rows(idx: torch.Tensor, stride: int) -> torch.Tensor:
    """Shift image i's bin indices by i·stride so one bincount counts every image (in place)."""
    n = idx.shape[0]
    if n > 1:
        idx += stride * torch.arange(n, device=idx.device).view(n, 1)
    return idx


def _index_dtype(count: int) -> torch.dtype:
    """int32 bin indices (half the memory traffic of int64) while every index fits."""
    return torch.int32 if count < 2 ** 31 else torch.int64


def histogram(levels: torch.Tensor, bins: int = GREY_LEVELS) -> torch.Tensor:
    """Per-image counts of integer levels 0..bins-1: N×H×W (integer-valued) → N×bins, via one bincount."""
    n = levels.shape[0]
    idx = _offset_rows(levels.reshape(n, -1).to(_index_dtype(n * bins)), bins)
    return torch.bincount(idx.reshape(-1), minlength=n * bins).view(n, bins).to(torch.float64)


def joint_histogram(a: torch.Tensor, b: torch.Tensor, bins: int = GREY_LEVELS) -> torch.Tensor:
    """Per-image joint counts N×bins×bins (rows: a, columns: b) of integer levels."""
    n = a.shape[0]
    dtype = _index_dtype(n * bins * bins)
    idx = a.reshape(n, -1).to(dtype).mul_(bins).add_(b.reshape(n, -1).to(dtype))
    idx = _offset_rows(idx, bins * bins)
    return torch.bincount(idx.reshape(-1), minlength=n * bins * bins).view(n, bins, bins).to(torch.float64)


def entropy_of(counts: torch.Tensor, base: float = 2.0, dims=(-1,)) -> torch.Tensor:
    """Shannon entropy of count arrays, 0·log 0 = 0, over ``dims``."""
    p = counts / counts.sum(dim=dims, keepdim=True)
    logp = torch.where(p > 0, torch.log(p.clamp_min(1e-300)), torch.zeros_like(p))
    return -(p * logp).sum(dim=dims) / math.log(base)


def corr2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """MATLAB ``corr2``: Pearson correlation of whole planes, N×H×W → N."""
    a = a - a.mean(dim=(-2, -1), keepdim=True)
    b = b - b.mean(dim=(-2, -1), keepdim=True)
    return dot(a, b) / torch.sqrt(dot(a, a) * dot(b, b))


def round_half_away(x: torch.Tensor) -> torch.Tensor:
    """MATLAB ``round``/integer casts: halves go away from zero (torch.round goes to even)."""
    return torch.sign(x) * torch.floor(torch.abs(x) + 0.5)
