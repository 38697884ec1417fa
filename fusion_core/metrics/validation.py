"""Agreement with third-party reference values: VIFB's MATLAB metrics, DIDFuse's released outputs.

Used by ``tests/test_metrics.py`` (a subset) and ``notebooks/99_metric_validation.ipynb`` (everything).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from .. import data
from .conventions import VIFB_SUFFIX
from .score import score

_INVERSE = {ours: theirs for theirs, ours in VIFB_SUFFIX.items()}


def reference_root() -> Path:
    """``<data root>/../reference`` (the shared third-party outputs); DataError when absent."""
    root = data.data_root().parent / "reference"
    if not root.is_dir():
        raise data.DataError(f"{root}: reference folder not found next to the data root")
    return root


def vifb_methods() -> list[str]:
    """Methods with fused images in ``reference/vifb/fused`` (25; MST_SR has values but no images)."""
    pairs = {p.stem for p in data.list_pairs("vifb21")}
    methods = set()
    for path in (reference_root() / "vifb" / "fused").glob("*.jpg"):
        for pair in pairs:
            if path.stem.startswith(pair + "_"):
                methods.add(path.stem[len(pair) + 1:])
    return sorted(methods)


def vifb_agreement(pairs: Sequence[str] | None = None, methods: Sequence[str] | None = None,
                   metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """Ours (``vifb`` convention) vs VIFB's ``metrics_single`` values: one row per pair × method × metric."""
    from ..engine import relative_difference  # the engine imports the metrics: a module-level import would cycle

    ref = reference_root() / "vifb"
    by_stem = {p.stem: p for p in data.list_pairs("vifb21")}
    pairs = list(pairs or by_stem)
    methods = list(methods or vifb_methods())
    metrics = list(metrics or VIFB_SUFFIX.values())
    rows = []
    for stem in pairs:
        pair = by_stem[stem]
        ir, vis = data.read_array(pair.ir), data.read_array(pair.vis)
        for method in methods:
            fused = data.read_array(ref / "fused" / f"{stem}_{method}.jpg")
            ours = score(fused, ir, vis, metrics, "vifb")
            for name in metrics:
                path = ref / "metrics_single" / f"{stem}_{method}_{_INVERSE[name]}.txt"
                try:
                    theirs = float(path.read_text().strip())
                except (OSError, ValueError) as exc:
                    raise data.DataError(f"{path}: cannot read the reference value ({exc})") from None
                value = float(ours[name][0])
                rows.append({"pair": stem, "method": method, "metric": name, "ours": value, "vifb": theirs,
                             "rel_error": relative_difference(value, theirs)})
    return pd.DataFrame(rows)


def agreement_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per metric: count, median and max relative error, and the worst pair/method."""
    out = []
    for name, group in table.groupby("metric", sort=False):
        worst = group.loc[group["rel_error"].idxmax()]
        out.append({"metric": name, "n": len(group), "median_rel_error": float(np.median(group["rel_error"])),
                    "max_rel_error": float(group["rel_error"].max()),
                    "worst": f"{worst['pair']}_{worst['method']}"})
    return pd.DataFrame(out)


# DIDFuse (extended version) Table V, DIDFuse column, TNO (spec_001 §6): the paper's final model
DIDFUSE_TABLE_V_TNO = {"EN": 7.107, "SD": 44.251, "SF": 14.011, "VIF": 0.696, "AG": 4.688, "SCD": 1.834}


def didfuse_released_scores(limit: int | None = None, convention: str = "didfuse") -> pd.DataFrame:
    """The authors' released IJCAI outputs ``TNO_IJCAI/F<n>.png`` (n ↔ tno40 pair NN) under ``convention``
    (``didfuse``: the TSIFVS-calibrated Table V convention; ``didfuse_spec``: spec_001 §5.2's, its §11 fixture)."""
    folder = reference_root() / "didfuse_released" / "TNO_IJCAI"
    rows = []
    for pair in data.list_pairs("tno40")[:limit]:
        path = folder / f"F{int(pair.stem)}.png"
        values = score(data.read_array(path), data.read_array(pair.ir), data.read_array(pair.vis), convention=convention)
        rows.append({"pair": pair.stem, **{k: float(v[0]) for k, v in values.items()}})
    return pd.DataFrame(rows)
