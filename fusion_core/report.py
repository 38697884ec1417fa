"""Reported vs ours: side-by-side tables, the fidelity summary, and where results go.

A paper's own numbers are data, committed as ``fusion_core/papers/<paper>/reported.csv`` in long
form (columns ``table, dataset, method, metric, value`` and optionally ``std, note``). Ours come in
the same long form with per-run values; :func:`summarise` turns runs into mean ± std and
:func:`side_by_side` joins the two into ``reported | ours_mean | ours_std | n | delta_pct``.
They are never mixed: the paper's values only ever appear in the ``reported`` column.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd

from .data import REPO_ROOT
from .io import write_csv, write_json, write_text

RESULTS_ROOT = REPO_ROOT / "results"
PAPERS_ROOT = Path(__file__).resolve().parent / "papers"
KEYS = ["table", "dataset", "method", "metric"]
FIDELITY_KEYS = ("cells", "within_5pct", "sign_total", "sign_agree", "substitutes")


def results_dir(paper: str, profile: str) -> Path:
    """``results/<paper>/`` for the eval and full profiles; ``build/quick/<paper>/`` for quick runs.

    Called from a notebook whose parameters differ from its ``parameters`` cell: ``build/params/<profile>/
    <paper>/<parameters>/`` instead (the canonical folder is written only by the canonical parameters),
    and a bad parameter value stops with one :class:`fusion_core.params.ParameterError`.
    """
    if profile not in {"quick", "eval", "full"}:
        raise ValueError(f"unknown profile '{profile}' (quick, eval, full)")
    base = REPO_ROOT / "build" / "quick" if profile == "quick" else RESULTS_ROOT
    path = base / paper
    # A notebook passes its variables implicitly: non-default parameters get their own folder (fusion_core.params).
    from .params import redirect

    caller = sys._getframe(1).f_globals
    path = redirect(paper, profile, path, caller if caller.get("__name__") == "__main__" else None)
    path.mkdir(parents=True, exist_ok=True)
    return path


def load_reported(paper: str) -> pd.DataFrame:
    """The paper's own numbers (long form)."""
    path = PAPERS_ROOT / paper / "reported.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no reported numbers for paper '{paper}'")
    frame = pd.read_csv(path, dtype={"dataset": str, "method": str, "metric": str, "table": str})
    missing = [k for k in KEYS + ["value"] if k not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}")
    return frame


def summarise(runs: pd.DataFrame, value: str = "value") -> pd.DataFrame:
    """Per (table, dataset, method, metric): mean, sample std (ddof=1; 0 for one run) and run count."""
    grouped = runs.groupby(KEYS, sort=False)[value]
    out = grouped.agg(ours_mean="mean", ours_std="std", n="count").reset_index()
    out["ours_std"] = out["ours_std"].fillna(0.0)
    return out


def side_by_side(reported: pd.DataFrame, ours: pd.DataFrame) -> pd.DataFrame:
    """Outer join of the paper's cells and ours; ``delta_pct`` = 100·(ours − reported)/|reported|."""
    rep = reported[KEYS + ["value"]].rename(columns={"value": "reported"})
    table = rep.merge(ours, on=KEYS, how="outer")
    denom = table["reported"].abs()
    table["delta_pct"] = 100.0 * (table["ours_mean"] - table["reported"]) / denom.where(denom > 0)
    return table


def sign_agreement(table: pd.DataFrame, full: str, variants: Sequence[str]) -> tuple[int, int]:
    """Ablation cells: does (full − variant) have the paper's sign in ours? Returns (total, agree).

    Cells where either difference is exactly zero or missing are not counted.
    """
    total = agree = 0
    for (tbl, dataset, metric), cells in table.groupby(["table", "dataset", "metric"]):
        by_method = cells.set_index("method")
        if full not in by_method.index:
            continue
        for variant in variants:
            if variant not in by_method.index:
                continue
            rep = by_method.at[full, "reported"] - by_method.at[variant, "reported"]
            ours = by_method.at[full, "ours_mean"] - by_method.at[variant, "ours_mean"]
            if any(pd.isna(v) or v == 0 for v in (rep, ours)):
                continue
            total += 1
            agree += int(math.copysign(1, rep) == math.copysign(1, ours))
    return total, agree


def paired_effects(rows: pd.DataFrame, metrics: Sequence[str], reference: str, labels: dict[str, str],
                   noise_row: str | None = None, keys: Sequence[str] = ("role", "stem"),
                   noise: pd.Series | None = None) -> pd.DataFrame:
    """Each row of ``labels`` (name → label, in that order) against ``reference`` on the same pairs: per metric the
    mean paired difference (row − reference), its standard deviation over the pairs, Cohen's d_z (mean / std) and
    how many pairs the row is above the reference. A row's name is its raw ``source`` without ``_seed<S>``. With
    ``noise_row`` (the reference trained again), ``noise`` is that row's mean difference, or ``noise`` gives it
    per metric (a re-run measured against another reference), and ``beyond_noise`` says whether |mean| exceeds
    |noise| (one re-run: a rough floor, not a test)."""
    frame = rows.assign(row=rows["source"].str.replace(r"_seed\d+$", "", regex=True))
    keys = list(keys)
    base = frame[frame["row"] == reference].set_index(keys)[list(metrics)]
    records = []
    for name in [r for r in labels if r != reference and r in set(frame["row"])]:
        other = frame[frame["row"] == name].set_index(keys)[list(metrics)]
        delta = (other - base.reindex(other.index)).dropna(how="all")
        for metric in metrics:
            d = delta[metric].dropna()
            std = float(d.std(ddof=1)) if len(d) > 1 else float("nan")
            records.append({"row": name, "label": labels[name], "metric": metric, "pairs": len(d),
                            "mean_diff": float(d.mean()), "std_diff": std,
                            "d_z": float(d.mean()) / std if std > 0 else float("nan"),
                            "pairs_above": int((d > 0).sum())})
    table = pd.DataFrame(records, columns=["row", "label", "metric", "pairs", "mean_diff", "std_diff", "d_z",
                                           "pairs_above"])
    if noise_row is not None:
        noise = table[table["row"] == noise_row].set_index("metric")["mean_diff"]
    if noise is not None:
        table["noise"] = table["metric"].map(noise)
        table["beyond_noise"] = (table["mean_diff"].abs() > table["noise"].abs()).where(table["noise"].notna())
    return table


def fidelity(table: pd.DataFrame, substitutes: Iterable[str], sign: tuple[int, int] = (0, 0)) -> dict:
    """The fidelity summary: reported cells we computed, how many within ±5 %, ablation sign agreement."""
    both = table.dropna(subset=["reported", "ours_mean"])
    within = both["delta_pct"].abs() <= 5.0
    return {
        "cells": int(len(both)),
        "within_5pct": int(within.sum()),
        "sign_total": int(sign[0]),
        "sign_agree": int(sign[1]),
        "substitutes": list(substitutes),
    }


def write_fidelity(out_dir: str | Path, summary: dict, part: str | None = None, reading: str | None = None,
                   label: str | None = None) -> Path:
    """Write ``fidelity.json``; with ``part`` (a notebook name), write ``fidelity_parts/<part>.json`` and
    rebuild ``fidelity.json`` as the sum of all parts, since a paper's tables span several notebooks.

    A paper whose tables can be read in more than one way (DIDFuse: the fusion rule the paper describes vs the
    one its released code runs) writes its headline reading as above and every other reading with
    ``reading=NAME``: parts under ``fidelity_parts/<NAME>/``, the sum in ``fidelity_<NAME>.json``. ``label`` (one
    line: what the reading is, and for the headline why it is the headline) is stored under ``"reading"``, the
    one optional key, and shown by the scoreboard."""
    if set(summary) != set(FIDELITY_KEYS):
        raise ValueError(f"fidelity keys must be exactly {FIDELITY_KEYS}, got {sorted(summary)}")
    if reading is not None and not reading.isidentifier():
        raise ValueError(f"reading '{reading}' must be a plain name (it becomes fidelity_{reading}.json)")
    out_dir = Path(out_dir)
    target = out_dir / ("fidelity.json" if reading is None else f"fidelity_{reading}.json")
    extra = {} if label is None else {"reading": label}
    if part is None:
        return write_json(target, {**summary, **extra})
    parts = out_dir / "fidelity_parts" / (reading or "")
    write_json(parts / f"{part}.json", summary)
    total = {"cells": 0, "within_5pct": 0, "sign_total": 0, "sign_agree": 0, "substitutes": []}
    for path in sorted(parts.glob("*.json")):
        piece = json.loads(path.read_text())
        for key in ("cells", "within_5pct", "sign_total", "sign_agree"):
            total[key] += int(piece[key])
        total["substitutes"] += [s for s in piece["substitutes"] if s not in total["substitutes"]]
    if label is None and target.is_file():  # a part without a label keeps the label another part wrote
        extra = {k: v for k, v in json.loads(target.read_text()).items() if k == "reading"}
    return write_json(target, {**total, **extra})


def to_markdown(frame: pd.DataFrame, digits: int = 4) -> str:
    """A GitHub Markdown table (no tabulate dependency); floats rounded to ``digits``."""
    def fmt(v):
        if isinstance(v, float):
            return "" if math.isnan(v) else f"{v:.{digits}g}" if abs(v) >= 1e4 else f"{v:.{digits}f}".rstrip("0").rstrip(".")
        return str(v)

    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = ["| " + " | ".join(fmt(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows]) + "\n"


def write_table(frame: pd.DataFrame, out_dir: str | Path, name: str, caption: str, profile: dict | None = None) -> tuple[Path, Path]:
    """Write ``<name>.csv`` and ``<name>.md`` (caption + profile line + table), both atomically."""
    out_dir = Path(out_dir)
    csv_path = write_csv(out_dir / f"{name}.csv", frame)
    lines = [f"**{caption}**", ""]
    if profile:
        lines += ["Profile: " + ", ".join(f"{k}={v}" for k, v in profile.items()), ""]
    md_path = write_text(out_dir / f"{name}.md", "\n".join(lines) + "\n" + to_markdown(frame))
    return csv_path, md_path


def collect_fidelity(results_root: Path = RESULTS_ROOT) -> pd.DataFrame:
    """Every ``results/<paper>/fidelity.json`` as one row per paper, followed by its other readings
    (``fidelity_<reading>.json``, paper shown as ``<paper> [<reading>]``); ``reading`` says what each row counts."""
    rows = []
    for folder in sorted(p for p in results_root.iterdir() if p.is_dir()) if results_root.is_dir() else []:
        headline = folder / "fidelity.json"
        files = ([headline] if headline.is_file() else []) + sorted(folder.glob("fidelity_*.json"))
        for path in files:
            summary = json.loads(path.read_text())
            name = folder.name if path == headline else f"{folder.name} [{path.stem[len('fidelity_'):]}]"
            rows.append({"paper": name, **{k: summary.get(k) for k in FIDELITY_KEYS},
                         "reading": summary.get("reading", "")})
    return pd.DataFrame(rows, columns=["paper", *FIDELITY_KEYS, "reading"])


def image_grid(rows: list[list], row_labels: list[str], col_labels: list[str], title: str = "", cell: float = 2.2,
               panel_titles: list[list[str]] | None = None):
    """A grid of grey or RGB images (numpy H×W or H×W×3 in [0, 1], or 1×1×H×W tensors); returns the figure.

    ``panel_titles`` (same nesting as ``rows``) puts a title over each panel instead of the column labels.
    A string in place of an image draws a grey tile with that text (e.g. "not reproduced: baseline unavailable").
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(cell * n_cols, cell * 0.8 * n_rows), squeeze=False)
    for i, images in enumerate(rows):
        for j in range(n_cols):
            ax = axes[i][j]
            ax.set_xticks([]), ax.set_yticks([])
            if j < len(images) and isinstance(images[j], str):  # a labelled placeholder, never a fake image
                ax.set_facecolor("0.85")
                ax.text(0.5, 0.5, images[j], ha="center", va="center", fontsize=7, wrap=True, transform=ax.transAxes)
            elif j < len(images) and images[j] is not None:
                img = images[j]
                img = img.detach().cpu().numpy().reshape(img.shape[-2:]) if hasattr(img, "detach") else np.asarray(img)
                ax.imshow(np.clip(img, 0, 1), cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1)
            else:
                ax.axis("off")
            if panel_titles is not None and j < len(panel_titles[i]):
                ax.set_title(panel_titles[i][j], fontsize=8)
            elif i == 0 and j < len(col_labels):
                ax.set_title(col_labels[j], fontsize=9)
            if j == 0:
                ax.set_ylabel(row_labels[i], fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.97) if title else None)
    return fig


ZOOM_COLOURS = ("tab:orange", "tab:blue")
ZOOM_CORNERS = {"ll": (0.0, 0.0), "lr": (1.0, 0.0), "ul": (0.0, 1.0), "ur": (1.0, 1.0)}


def zoom_boxes(fig, boxes: list, colours: Sequence[str] = ZOOM_COLOURS, inset: float = 0.38) -> None:
    """Mark boxes on every image panel of an :func:`image_grid` figure and show each one enlarged in a corner.

    ``boxes`` holds, per grid column, a list of boxes ``(top, left, height, width[, corner])`` as fractions of
    the image; box k is drawn in ``colours[k]`` and enlarged to ``inset`` of the panel width in ``corner``
    (``"ll"``, ``"lr"``, ``"ul"``, ``"ur"``; default lower left for the first box, lower right for the
    second), as in the papers' "areas marked by boxes are amplified" figures.
    """
    import numpy as np
    from matplotlib.patches import Rectangle

    for ax in list(fig.axes):
        spec = ax.get_subplotspec()
        if not ax.images or spec is None or spec.colspan.start >= len(boxes):
            continue
        picture = ax.images[0]
        image = np.asarray(picture.get_array())
        h, w = image.shape[:2]
        for k, box in enumerate(boxes[spec.colspan.start]):
            top, left, height, width = box[:4]
            corner = box[4] if len(box) > 4 else ("ll", "lr")[k % 2]
            y0, x0 = int(top * h), int(left * w)
            y1, x1 = min(h, max(y0 + 2, int((top + height) * h))), min(w, max(x0 + 2, int((left + width) * w)))
            colour = colours[k % len(colours)]
            ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, edgecolor=colour, lw=1.2))
            size = (inset, min(1.0, inset * (y1 - y0) / (x1 - x0) * w / h))
            fx, fy = ZOOM_CORNERS[corner]
            sub = ax.inset_axes([fx * (1 - size[0]), fy * (1 - size[1]), *size])
            sub.imshow(image[y0:y1, x0:x1], cmap=picture.get_cmap(), vmin=0, vmax=1, interpolation="nearest")
            sub.set_xticks([]), sub.set_yticks([])
            for spine in sub.spines.values():
                spine.set_edgecolor(colour)
                spine.set_linewidth(1.5)
