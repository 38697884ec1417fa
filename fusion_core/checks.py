"""What an nbval-guarded notebook cell may print: facts that are the same on every CPU.

A trained model's scores move in their last digits from one processor to another: float32 convolutions and
element-wise kernels are chosen by CPU features (oneDNN's ISA, ATen's vector width, FMA), training amplifies
those differences, and a quick-profile model (two epochs on 32² crops) can sit within that noise of any
rounding boundary or comparison. Measured: the stored Table V digits of `01_didfuse` changed in the first
decimal between this repository's Intel CI machine and an AMD EPYC, and under ``ATEN_CPU_CAPABILITY=default``.

So guarded cells print counts, names and range checks, which still fail when a stage is missing, yields NaN
or works on the wrong scale; the values themselves go to the tables and to unguarded cells.
"""
from __future__ import annotations

import math
from typing import Iterable, Mapping

import pandas as pd

# The range every value of a metric can take on 8-bit images (not a plausibility window): a value outside
# means a wrong scale, a wrong formula or a broken pipeline. Metrics without an entry are only checked finite.
ROUNDING = 1e-9  # relative slack at a bound (out_of_range); far above float64 rounding, far below any real excess
BOUNDS: Mapping[str, tuple[float, float]] = {
    "EN": (0.0, 8.0),
    "SD": (0.0, 127.5),
    "SF": (0.0, 255.0 * math.sqrt(2.0)),
    "AG": (0.0, 255.0 * math.sqrt(2.0)),
    "VIF": (0.0, math.inf),
    "SCD": (-2.0, 2.0),
    "MI": (0.0, 16.0),  # the Li-lab bug column is 2·EN(F)
    "MI_correct": (0.0, 16.0),
    "Qabf": (0.0, 1.0),
    "FMI_pixel": (0.0, 1.0),
    "FMI_dct": (0.0, 1.0),
    "FMI_w": (0.0, 1.0),
    "SSIM": (-1.0, 2.0),  # sum conventions reach 2
    "MEF_SSIM": (-1.0, 1.0),
    "Nabf": (0.0, 1.0),
    "PSNR": (0.0, math.inf),
    "MSE": (0.0, 1.0),
}


def finite_counts(frame: pd.DataFrame, by: Iterable[str], value: str) -> dict:
    """Number of finite ``value`` entries per group of ``by`` (groups in order of appearance)."""
    by = list(by)
    finite = frame[value].apply(lambda v: pd.notna(v) and math.isfinite(float(v)))
    counts = finite.groupby([frame[c] for c in by], sort=False).sum()
    return {(k if len(by) > 1 else k[0] if isinstance(k, tuple) else k): int(v) for k, v in counts.items()}


def out_of_range(frame: pd.DataFrame, value: str, metric: str = "metric",
                 bounds: Mapping[str, tuple[float, float]] = BOUNDS) -> list[str]:
    """The ``metric`` names (long form) with a finite ``value`` outside its possible range; [] when all fit.

    A wide frame (one column per metric) is checked with ``metric=None``: every column named in ``bounds``.
    """
    if metric is None:
        long = frame.melt(value_vars=[c for c in frame.columns if c in bounds], var_name="metric", value_name=value)
        return out_of_range(long, value, "metric", bounds)
    bad = []
    for name, group in frame.groupby(metric, sort=False):
        lo, hi = bounds.get(name, (-math.inf, math.inf))
        values = pd.to_numeric(group[value], errors="coerce").dropna()
        # A value that lies on its bound (MI or Qabf of a constant image: exactly 0) arrives with float rounding of
        # either sign, e.g. -4e-16, and which one differs between CPUs: allow ROUNDING relative to the bound's size.
        lo_ok, hi_ok = lo - ROUNDING * max(1.0, abs(lo)), hi + ROUNDING * max(1.0, abs(hi))
        if ((values < lo_ok) | (values > hi_ok)).any():
            bad.append(str(name))
    return bad


def structure(frame: pd.DataFrame, by: Iterable[str], value: str, metric: str | None = "metric") -> str:
    """One printable block: finite values per group and the metrics outside their possible range."""
    counts = finite_counts(frame, by, value)
    lines = [f"{'/'.join(map(str, k)) if isinstance(k, tuple) else k}: {n} finite" for k, n in counts.items()]
    lines.append(f"outside the possible range: {out_of_range(frame, value, metric) or 'none'}")
    return "\n".join(lines)
