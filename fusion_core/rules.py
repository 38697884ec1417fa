r"""Test-time fusion rules: merge the feature maps of the infrared and visible images.

An auto-encoder fusion method (DIDFuse, DenseFuse, NestFuse, Res2NetFuse, ...) encodes each source, merges
the two feature stacks with a hand-designed *rule*, and decodes the merged stack. A rule maps two tensors
``a`` (infrared) and ``b`` (visible) of shape N×C×H×W to one of the same shape.

This module holds the rule *primitives* (weighted average, ℓ1 attention, histogram saliency with a guided
filter, channel attention) and one registry, :data:`RULES`. A rule whose maths is the same in every paper
has a plain name (``sum``, ``ave``); a paper's own rule is registered by its ``papers/<p>/model.py`` under
``<paper>/<name>`` (``didfuse/l1`` is the 3×3-box-blurred ℓ1 attention, ``res2netfuse/l1`` the windowless
per-pixel ℓ1 weighting: two different rules). :func:`get_rule` resolves a short name within a paper
(``get_rule("l1", paper="didfuse")``), and accepts parameters as keywords or in the name
(``"sal+cam:radius=7,eps=0.01"``).

Example::

    >>> import torch
    >>> import fusion_core.papers  # registers every paper's rules
    >>> a, b = torch.rand(1, 64, 32, 32), torch.rand(1, 64, 32, 32)
    >>> get_rule("sal+cam:radius=7", paper="didfuse")(a, b).shape
    torch.Size([1, 64, 32, 32])
"""
from __future__ import annotations

import functools
import inspect
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, NamedTuple

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from kornia.filters import box_blur

from .registry import Registry

Rule = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
RULES: Registry[Rule] = Registry("fusion rule")

EPS = 1e-12  # keeps every normalising denominator away from zero (spec A-§3.2: an assumption)
LEVELS = 256  # grey levels of the saliency histogram (Eq. 9: k = 0..255)


def _check_pair(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.shape != b.shape or a.ndim != 4:
        raise ValueError(f"fusion rule needs two N×C×H×W tensors of one shape, got {tuple(a.shape)} and {tuple(b.shape)}")


# --------------------------------------------------------------------------- spatial rules

@RULES.register("sum")
def sum_rule(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    r"""$F = a + b$ (the IJCAI code's ``Sum`` mode)."""
    _check_pair(a, b)
    return a + b


@RULES.register("ave")
def weighted_average(a: torch.Tensor, b: torch.Tensor, gamma: float = 0.5) -> torch.Tensor:
    r"""Eq. 13: $F = \gamma a + (1 - \gamma) b$."""
    _check_pair(a, b)
    return gamma * a + (1.0 - gamma) * b


def l1_weights(a: torch.Tensor, b: torch.Tensor, window: int = 3) -> torch.Tensor:
    r"""Eq. 7: $\eta_a = \psi(\|a\|_1) / (\psi(\|a\|_1) + \psi(\|b\|_1))$, N×1×H×W.

    $\|a(x, y)\|_1 = \sum_c |a^c(x, y)|$ is the activity at each pixel and $\psi$ a window×window mean
    filter with zero padding (as the IJCAI code's ``l1_addition``). Eq. 7 is a plain normalisation; the
    text's word "softmax" is not applied as an exponential.
    """
    _check_pair(a, b)
    activity_a = box_blur(a.abs().sum(1, keepdim=True), window, border_type="constant")
    activity_b = box_blur(b.abs().sum(1, keepdim=True), window, border_type="constant")
    return activity_a / (activity_a + activity_b + EPS)


def l1_attention(a: torch.Tensor, b: torch.Tensor, window: int = 3) -> torch.Tensor:
    r"""Eq. 8: $F = \eta_a \otimes a + (1 - \eta_a) \otimes b$ with $\eta$ from :func:`l1_weights`."""
    weight = l1_weights(a, b, window)
    return weight * a + (1.0 - weight) * b


def quantise_jointly(a: torch.Tensor, b: torch.Tensor, levels: int = LEVELS) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Map each channel of ``a`` and ``b`` to integers $0..L-1$ over their *joint* min–max range.

    $q = \mathrm{round}((L-1)(x - m) / (M - m))$ with $m, M$ the min and max of the channel over both
    sources, so equal feature values get equal levels in the two images (spec §3.2.2, an assumption:
    the paper applies Eq. 9 to 8-bit images and does not say how real-valued maps are quantised).
    """
    low = torch.minimum(a.amin((-2, -1), keepdim=True), b.amin((-2, -1), keepdim=True))
    high = torch.maximum(a.amax((-2, -1), keepdim=True), b.amax((-2, -1), keepdim=True))
    scale = (levels - 1) / (high - low + EPS)
    return ((a - low) * scale).round().clamp(0, levels - 1), ((b - low) * scale).round().clamp(0, levels - 1)


def histogram_saliency(q: torch.Tensor, levels: int = LEVELS) -> torch.Tensor:
    r"""Eq. 9 per channel: $S(x, y) = \sum_{k=0}^{L-1} H(k)\,|q(x, y) - k|$, with $H$ the normalised histogram.

    ``q`` holds integer levels (N×C×H×W). Computed through a lookup table
    $T[v] = \sum_k H(k)|v - k|$, then $S = T[q]$.
    """
    n, c = q.shape[:2]
    index = q.long().flatten(2)  # N×C×HW
    hist = torch.zeros(n, c, levels, dtype=q.dtype, device=q.device)
    hist.scatter_add_(2, index, torch.ones_like(q.flatten(2)))
    hist /= index.shape[-1]
    grid = torch.arange(levels, dtype=q.dtype, device=q.device)
    table = hist @ (grid[:, None] - grid[None, :]).abs()  # N×C×L, T[v] = Σ_k H(k)|k − v|
    return table.gather(2, index).view_as(q)


def box_filter(x: torch.Tensor, radius: int) -> torch.Tensor:
    r"""Mean over a (2r+1)×(2r+1) window with reflect border: O(1) per pixel in r.

    Same values as ``kornia.filters.box_blur(x, 2r+1, "reflect")`` (tested). On CPU, without autograd,
    each plane goes through OpenCV's ``cv2.blur`` (``BORDER_REFLECT_101`` = torch's "reflect"), ≈8×
    faster than the torch running sums used elsewhere (CUDA, or when gradients are needed). The planes
    are split over ``torch.get_num_threads()`` threads (OpenCV releases the GIL; each plane's arithmetic
    is unchanged, so the values are the same as one thread's).
    """
    k = 2 * radius + 1
    if x.device.type == "cpu" and not x.requires_grad and x.dtype in (torch.float32, torch.float64):
        planes = x.detach().reshape(-1, *x.shape[-2:]).contiguous().numpy()
        out = np.empty_like(planes)

        def blur(first: int, last: int) -> None:
            for plane, target in zip(planes[first:last], out[first:last]):
                cv2.blur(plane, (k, k), dst=target, borderType=cv2.BORDER_REFLECT_101)

        workers = min(torch.get_num_threads(), len(planes))
        if workers > 1:
            bounds = np.linspace(0, len(planes), workers + 1).astype(int)
            list(_blur_pool(workers, os.getpid()).map(blur, bounds[:-1], bounds[1:]))
        else:
            blur(0, len(planes))
        return torch.from_numpy(out).view_as(x)
    x = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    x = F.pad(x.cumsum(-1), (1, 0))
    x = x[..., k:] - x[..., :-k]
    x = F.pad(x.cumsum(-2), (0, 0, 1, 0))
    return (x[..., k:, :] - x[..., :-k, :]) / (k * k)


@functools.lru_cache(maxsize=4)
def _blur_pool(workers: int, pid: int) -> ThreadPoolExecutor:
    # Keyed by process id: a forked child (sweep jobs, DataLoader workers) inherits no threads, so it gets its own.
    return ThreadPoolExecutor(workers, thread_name_prefix="box_filter")


def guided_filter(guide: torch.Tensor, p: torch.Tensor, radius: int, eps: float) -> torch.Tensor:
    r"""He et al.'s guided filter $\chi(p, G)$ with a grey guide per channel (N×C×H×W each).

    $a = \mathrm{cov}(G, p) / (\mathrm{var}(G) + \epsilon)$, $b = \bar p - a \bar G$, output
    $\bar a G + \bar b$, every bar a :func:`box_filter` of radius r. The same formula and border as
    ``kornia.filters.guided_blur(guide, p, 2r+1, eps, border_type="reflect")`` (tested to 1e-5), with
    the running-sum box filter for speed.
    """
    mean_g, mean_p = box_filter(guide, radius), box_filter(p, radius)
    if torch.is_grad_enabled() and (guide.requires_grad or p.requires_grad):
        var_g = box_filter(guide * guide, radius) - mean_g * mean_g
        cov_gp = box_filter(guide * p, radius) - mean_g * mean_p
        a = cov_gp / (var_g + eps)
        b = mean_p - a * mean_g
        return box_filter(a, radius) * guide + box_filter(b, radius)
    # Without autograd the same arithmetic runs in place: identical values, far fewer large allocations.
    var_g = box_filter(guide * guide, radius).sub_(mean_g * mean_g)
    a = box_filter(guide * p, radius).sub_(mean_g * mean_p).div_(var_g.add_(eps))
    del var_g
    b = mean_p.sub_(a * mean_g)
    del mean_g
    return box_filter(a, radius).mul_(guide).add_(box_filter(b, radius))


def saliency_weights(
    a: torch.Tensor, b: torch.Tensor, radius: int = 45, eps: float = 0.01, levels: int = LEVELS
) -> torch.Tensor:
    r"""Eqs. 9–11: per-channel weight of ``a`` (N×C×H×W); the weight of ``b`` is one minus it.

    $\tilde\omega_a = S_a / (S_a + S_b)$ (Eq. 10), then
    $\omega_a = \chi(\tilde\omega_a, a) / (\chi(\tilde\omega_a, a) + \chi(\tilde\omega_b, b))$ (Eq. 11)
    with $\chi(p, G)$ He et al.'s guided filter of $p$ guided by $G$ (:func:`guided_filter`, box radius
    ``radius``, regulariser ``eps``, reflect border). Each channel is its own image; the guide is the
    channel's quantised levels scaled to [0, 1]. ``radius`` is capped at ``min(H, W) - 1`` so that the
    reflect border exists on small inputs. Defaults r = 45, ε = 0.01 are Lahoud & Süsstrunk's base-layer
    values (the paper gives none; spec A11).
    """
    _check_pair(a, b)
    if _plane_path(a, b):
        return _saliency_planes(a, b, radius, eps, levels, None)
    # The weights are piecewise constant in a and b (quantisation, histogram lookup): no gradient flows
    # through them, so they are computed without autograd, in place (same values, less memory traffic).
    with torch.no_grad():
        qa, qb = quantise_jointly(a, b, levels)
        sal_a, sal_b = histogram_saliency(qa, levels), histogram_saliency(qb, levels)
        raw_a = sal_a.div_(sal_b.add_(sal_a).add_(EPS))  # S_a / (S_a + S_b + eps)
        del sal_b
        radius = max(1, min(radius, a.shape[-2] - 1, a.shape[-1] - 1))
        chi_a = guided_filter(qa.div_(levels - 1), raw_a, radius, eps).clamp_min_(0)
        chi_b = guided_filter(qb.div_(levels - 1), raw_a.neg_().add_(1.0), radius, eps).clamp_min_(0)
        return chi_a.div_(chi_b.add_(chi_a).add_(EPS))


def saliency_attention(a: torch.Tensor, b: torch.Tensor, radius: int = 45, eps: float = 0.01) -> torch.Tensor:
    r"""Eq. 12: $F = \omega_a \otimes a + (1 - \omega_a) \otimes b$ with $\omega$ from :func:`saliency_weights`."""
    _check_pair(a, b)
    if _plane_path(a, b):
        return _saliency_planes(a, b, radius, eps, LEVELS, (a, b))
    weight = saliency_weights(a, b, radius, eps)
    return weight * a + (1.0 - weight) * b


def _saliency_with_channel_attention(a: torch.Tensor, b: torch.Tensor, radius: int = 45, eps: float = 0.01,
                                     pool: str = "absmean") -> torch.Tensor:
    """Eq. 17 for the saliency rule on the CPU plane path: ½(:func:`saliency_attention` + :func:`channel_attention`)
    computed plane by plane in one pass (the same element-wise operations in the same order, so the same values)."""
    _check_pair(a, b)
    return _saliency_planes(a, b, radius, eps, LEVELS, (a, b), channel_weights(a, b, pool))


saliency_attention.with_channel_attention = _saliency_with_channel_attention  # type: ignore[attr-defined]


def _plane_path(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether the saliency rule may run plane by plane in NumPy/OpenCV (CPU float32/64, no autograd)."""
    return (a.device.type == "cpu" and a.dtype in (torch.float32, torch.float64) and b.dtype == a.dtype
            and not (torch.is_grad_enabled() and (a.requires_grad or b.requires_grad)))


def _saliency_planes(a: torch.Tensor, b: torch.Tensor, radius: int, eps: float, levels: int,
                     blend: tuple[torch.Tensor, torch.Tensor] | None,
                     channel: torch.Tensor | None = None) -> torch.Tensor:
    r"""The CPU path of :func:`saliency_weights` (``blend`` None) or :func:`saliency_attention` (``blend`` =
    (a, b): the weighted sum of Eq. 12 as well); with ``channel`` (λ_a of Eq. 15, N×C×1×1) also Eq. 17's
    average with the channel attention, ½(F^sal + λ_a a + (1 − λ_a) b). One channel plane at a time.

    The same float operations in the same order as the tensor path, so the same values (tested): every step
    is element-wise or exact (min, max, integer counts, table lookups) except the histogram-to-table product
    of Eq. 9, which runs once for all channels between the two per-plane passes, as the tensor path does.
    Why planes: on whole 64×480×640 feature stacks each of the rule's ~40 element-wise steps streams 80 MB
    through memory and OpenCV's box filters run apart from them; per plane (1.2 MB) the temporaries stay in
    cache, and the planes are spread over ``torch.get_num_threads()`` threads (NumPy and OpenCV release the
    GIL; no plane's arithmetic depends on the split). The two sources' planes travel interleaved (H×W×2), so
    each box filter, lookup and element-wise step of the guided filters runs once for both sides: OpenCV
    filters each channel of a multi-channel image with the single-channel arithmetic (tested: same values);
    the levels are kept as uint8 (exact: integers 0..255) for ``cv2.calcHist`` and ``cv2.LUT``.
    """
    n, c, h, w = a.shape
    planes = n * c
    low = torch.minimum(a.amin((-2, -1), keepdim=True), b.amin((-2, -1), keepdim=True))
    high = torch.maximum(a.amax((-2, -1), keepdim=True), b.amax((-2, -1), keepdim=True))
    scale = (levels - 1) / (high - low + EPS)  # as quantise_jointly
    xa, xb = (x.detach().reshape(planes, h, w).contiguous().numpy() for x in (a, b))
    dtype = xa.dtype
    lows, scales = low.reshape(-1).numpy(), scale.reshape(-1).numpy()
    byte_levels = levels == 256  # cv2.LUT takes exactly 256 entries
    q = np.empty((planes, 2, h, w), dtype=np.uint8 if byte_levels else dtype)  # both sides' levels
    counts = np.empty((2, planes, levels), dtype=dtype)

    def quantise(i: int) -> None:
        for side, x in enumerate((xa[i], xb[i])):
            t = np.subtract(x, lows[i])
            np.clip(np.rint(np.multiply(t, scales[i], out=t), out=t), 0, levels - 1, out=t)
            q[i, side] = t
            counts[side, i] = (cv2.calcHist([q[i, side]], [0], None, [levels], [0, levels]).ravel() if byte_levels
                               else np.bincount(t.astype(np.intp).ravel(), minlength=levels))

    _map_planes(quantise, planes)
    # Eq. 9's lookup table T[v] = Σ_k H(k)|k − v| per side, with histogram_saliency's arithmetic on N×C×L
    grid = torch.arange(levels, dtype=a.dtype)
    distance = (grid[:, None] - grid[None, :]).abs()
    tables = []
    for side in counts:
        hist = torch.from_numpy(side).view(n, c, levels)
        hist /= h * w
        tables.append((hist @ distance).view(planes, levels).numpy())
    radius = max(1, min(radius, h - 1, w - 1))
    if channel is not None:
        lam = channel.reshape(-1)
        lam_a, lam_b = lam.numpy(), (1.0 - lam).numpy()  # channel_attention's weight and 1 − weight
    out = np.empty_like(xa)

    def weigh(first: int) -> None:
        group = range(first, min(first + 2, planes))  # two planes: four channels, OpenCV's fastest box filter
        weights, guides = [], []
        for i in group:
            qa, qb = q[i]
            if byte_levels:
                sal_a, sal_b = cv2.LUT(qa, tables[0][i]), cv2.LUT(qb, tables[1][i])
            else:
                sal_a, sal_b = tables[0][i][qa.astype(np.intp)], tables[1][i][qb.astype(np.intp)]
            raw_a = sal_a / ((sal_b + sal_a) + EPS)  # S_a / (S_a + S_b + eps)
            weights += [raw_a, (-raw_a) + 1.0]  # the weights of a and b
            guides += [qa, qb]
        guide = cv2.merge(guides).astype(dtype)
        guide /= levels - 1
        chi = _guided_plane(guide, cv2.merge(weights), radius, eps)
        chi = cv2.split(np.maximum(chi, 0, out=chi))
        for k, i in enumerate(group):
            chi_a, chi_b = chi[2 * k], chi[2 * k + 1]
            weight = np.divide(chi_a, (chi_b + chi_a) + EPS, out=out[i] if blend is None else None)
            if blend is not None:
                fused = np.add(weight * xa[i], (1.0 - weight) * xb[i], out=out[i] if channel is None else None)
                if channel is not None:
                    np.multiply(0.5, fused + (lam_a[i] * xa[i] + lam_b[i] * xb[i]), out=out[i])

    _map_planes(weigh, range(0, planes, 2))
    return torch.from_numpy(out).view(n, c, h, w)


def _guided_plane(guide: np.ndarray, p: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """:func:`guided_filter`'s no-autograd arithmetic on one H×W plane, or on H×W×k planes filtered channel by
    channel (NumPy + ``cv2.blur``, same values)."""
    k = (2 * radius + 1, 2 * radius + 1)

    def box(x: np.ndarray) -> np.ndarray:
        return cv2.blur(x, k, borderType=cv2.BORDER_REFLECT_101)

    mean_g, mean_p = box(guide), box(p)
    # guided_filter's arithmetic, in place where a temporary ends (same operations, same values)
    var_g = box(guide * guide)
    var_g -= mean_g * mean_g
    var_g += eps
    a = box(guide * p)
    a -= mean_g * mean_p
    a /= var_g
    mean_g *= a
    b = np.subtract(mean_p, mean_g, out=mean_p)  # mean_p − a·mean_g
    out = box(a)
    out *= guide
    out += box(b)
    return out


def _map_planes(work: Callable[[int], None], planes: int | range) -> None:
    """``work(i)`` for every plane index (``range(planes)``, or the given range), on ``torch.get_num_threads()``
    threads (one process-local pool)."""
    indices = range(planes) if isinstance(planes, int) else planes
    workers = min(torch.get_num_threads(), len(indices))
    if workers > 1:
        list(_blur_pool(workers, os.getpid()).map(work, indices))
    else:
        for i in indices:
            work(i)


# --------------------------------------------------------------------------- channel attention

# Ω of Eq. 14, "global pooling" (type not stated). absmean is the default because tanh/PReLU features
# take both signs and a signed mean makes the Eq. 15 denominator ≈ 0 (spec A12, §11.3).
POOLS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "absmean": lambda x: x.abs().mean((-2, -1), keepdim=True),
    "mean": lambda x: x.mean((-2, -1), keepdim=True),
    "max": lambda x: x.amax((-2, -1), keepdim=True),
}


def channel_weights(a: torch.Tensor, b: torch.Tensor, pool: str = "absmean") -> torch.Tensor:
    r"""Eqs. 14–15: $\lambda_a^n = \Omega(a^n) / (\Omega(a^n) + \Omega(b^n))$, shape N×C×1×1."""
    _check_pair(a, b)
    if pool not in POOLS:
        raise ValueError(f"channel pooling '{pool}' is not one of {sorted(POOLS)}")
    pooled_a, pooled_b = POOLS[pool](a), POOLS[pool](b)
    return pooled_a / (pooled_a + pooled_b + EPS)


def channel_attention(a: torch.Tensor, b: torch.Tensor, pool: str = "absmean") -> torch.Tensor:
    r"""Eq. 16: $F^{cha} = \lambda_a \odot a + (1 - \lambda_a) \odot b$ (channel-wise weights)."""
    weight = channel_weights(a, b, pool)
    return weight * a + (1.0 - weight) * b


def with_channel_attention(spatial: Rule, name: str) -> Rule:
    """Eq. 17: the average of a spatial rule and the channel attention module."""
    spatial_params = list(inspect.signature(spatial).parameters)[2:]

    together = getattr(spatial, "with_channel_attention", None)  # one pass over the planes for both halves

    def rule(a: torch.Tensor, b: torch.Tensor, pool: str = "absmean", **params) -> torch.Tensor:
        if together is not None and _plane_path(a, b):
            return together(a, b, pool=pool, **params)
        return 0.5 * (spatial(a, b, **params) + channel_attention(a, b, pool))

    rule.__name__ = name.replace("+", "_")
    rule.__doc__ = f"Eq. 17: ½ ({spatial.__name__} + channel_attention); parameters {spatial_params + ['pool']}."
    rule.accepts = set(spatial_params) | {"pool"}  # type: ignore[attr-defined]
    return rule


# --------------------------------------------------------------------------- lookup and application

def _accepted(rule: Rule) -> set[str]:
    return getattr(rule, "accepts", None) or set(list(inspect.signature(rule).parameters)[2:])


def _parse_value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def rule_name(name: str, paper: str | None = None) -> str:
    """The registry key of a rule name: ``<paper>/<name>`` where that paper registered one, else ``name``."""
    if name not in RULES or paper:
        import fusion_core.papers  # noqa: F401  (each paper registers its rules when imported)
    if paper and f"{paper}/{name}" in RULES:
        return f"{paper}/{name}"
    return name


def get_rule(spec: str | Rule, paper: str | None = None, **params) -> Rule:
    """A rule by name (``"sal+cam"``, within ``paper``'s rules first), with parameters as keywords or
    ``"name:key=value,key=value"``.

    Unknown names list the known ones; unknown parameters list the accepted ones.
    """
    if callable(spec):
        return functools.partial(spec, **params) if params else spec
    name, _, options = spec.partition(":")
    for item in filter(None, options.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"rule '{spec}': option '{item}' is not key=value")
        params[key.strip()] = _parse_value(value.strip())
    rule = RULES[rule_name(name.strip(), paper)]
    unknown = set(params) - _accepted(rule)
    if unknown:
        raise ValueError(
            f"rule '{name}' does not take {sorted(unknown)}; it takes {sorted(_accepted(rule)) or 'no options'}"
        )
    return functools.partial(rule, **params) if params else rule


def fuse_features(ir: NamedTuple, vis: NamedTuple, rule: str | Rule, skip_rule: str | Rule | None = None,
                  skip_fields: tuple[str, ...] = (), paper: str | None = None) -> NamedTuple:
    """Merge two feature tuples field by field (fields that are ``None`` stay ``None``).

    ``skip_fields`` (e.g. DIDFuse's ``("f1", "f2")``) use ``skip_rule`` — the main rule when ``None``
    (spec A3, ``fuse_skip="same"``).
    """
    main = get_rule(rule, paper)
    skip = main if skip_rule is None else get_rule(skip_rule, paper)
    merged = {}
    for field in ir._fields:
        x, y = getattr(ir, field), getattr(vis, field)
        merged[field] = None if x is None else (skip if field in skip_fields else main)(x, y)
    return type(ir)(**merged)
