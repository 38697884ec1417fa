"""Fig. 11 (MOS) as a rating tool: the paper's subjective study (Sec. 5.4: 10 raters score the fused images of 18
methods; per data set the highest and lowest score are dropped and the rest averaged) cannot be reproduced without
human raters, and no score is ever invented here. The tool does the rest:

1. ``sheet``: an anonymised, shuffled (seeded) rating sheet — one self-contained static HTML page (images embedded,
   no method name or file name in it) that a rater opens in any browser, scores every fused image on the spec's
   1–5 ACR scale (spec §5.2, the paper states no scale) and downloads as a CSV — and ``key.csv``, which maps the
   sheet's anonymous items back to (data set, image, method) and stays with the organiser.
2. ``aggregate``: reads the raters' CSVs, checks them against the key (same sheet, every item scored once, scores on
   the scale), aggregates the paper's way (:func:`mos`) and plots the bars (``fig11_mos.png``).

    python -m fusion_core.papers.savf.mos sheet --dataset tno42 --pairs 08,13 --methods savf,savf_noatt,cbf --out build/mos
    python -m fusion_core.papers.savf.mos sheet --ir IR --vis VIS --fused OURS+=fused/savf --fused CBF=fused/cbf --out build/mos
    python -m fusion_core.papers.savf.mos aggregate --key build/mos/key.csv --out build/mos/result ratings/*.csv
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import html
import io as _io
import json
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pandas as pd

from ... import data
from ...io import write_csv, write_text

SCALE = {1: "bad", 2: "poor", 3: "fair", 4: "good", 5: "excellent"}  # ITU-T P.910 ACR; the spec's assumption (§5.2)
KEY_COLUMNS = ["sheet", "item", "scene", "label", "dataset", "image", "method"]
RATING_COLUMNS = ["sheet", "rater", "item", "score"]


@dataclass(frozen=True)
class Candidate:
    """One fused image to rate: ``method``'s result for the pair ``dataset/image``, read from ``path``."""

    dataset: str
    image: str
    method: str
    path: Path


# --------------------------------------------------------------------------- the sheet

def _data_uri(path: Path) -> str:
    """The image as an embedded PNG (re-encoded through :mod:`fusion_core.data`, so every format a browser cannot
    show — TIFF, BMP, 16 bit — works, and no file name reaches the page)."""
    import numpy as np
    from PIL import Image

    pixels = np.round(data.read_array(path).clip(0.0, 1.0) * 255.0).astype(np.uint8)
    buffer = _io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def shuffle_items(candidates: Sequence[Candidate], seed: int) -> pd.DataFrame:
    """The key: scenes in a seeded random order, the methods of each scene in their own random order, labelled A, B, …
    within the scene; items numbered in display order (the number says nothing about the method)."""
    rng = random.Random(seed)
    scenes: dict[tuple[str, str], list[Candidate]] = {}
    for c in candidates:
        scenes.setdefault((c.dataset, c.image), []).append(c)
    for (dataset, image), group in scenes.items():
        methods = [c.method for c in group]
        if len(set(methods)) != len(methods):
            raise ValueError(f"{dataset}/{image}: a method appears twice ({methods})")
    order = sorted(scenes)
    rng.shuffle(order)
    rows = []
    for s, scene in enumerate(order, 1):
        group = sorted(scenes[scene], key=lambda c: c.method)
        rng.shuffle(group)
        for k, c in enumerate(group):
            rows.append({"item": f"i{len(rows) + 1:04d}", "scene": s, "label": chr(ord("A") + k) if k < 26 else f"Z{k}",
                         "dataset": c.dataset, "image": c.image, "method": c.method, "path": str(c.path)})
    key = pd.DataFrame(rows)
    digest = hashlib.sha256(key[["item", "dataset", "image", "method"]].to_csv(index=False).encode()).hexdigest()
    key.insert(0, "sheet", f"{seed}-{digest[:10]}")
    return key


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Image fusion rating sheet __SHEET__</title>
<style>
body {font-family: sans-serif; margin: 1.5em; max-width: 1400px}
.scene {border-top: 2px solid #888; padding: .8em 0}
.row {display: flex; flex-wrap: wrap; gap: 14px; align-items: flex-start}
figure {margin: 0; text-align: center}
figure img {max-width: 320px; max-height: 320px; display: block; image-rendering: auto}
.source img {max-width: 220px; max-height: 220px}
fieldset {border: 1px solid #ccc; margin-top: 4px; padding: 2px 6px; font-size: 90%}
fieldset.unrated {border-color: #d33}
#bar {position: sticky; top: 0; background: #fff; padding: .5em 0; border-bottom: 1px solid #ccc; z-index: 1}
</style></head>
<body>
<h1>Image fusion rating sheet</h1>
<p>Sheet <code id="sheet">__SHEET__</code>: __NSCENES__ scenes, __NITEMS__ fused images. Each scene shows the infrared
and the visible source image, then its fused images in a random order under neutral letters. Rate the overall quality
of every fused image as a fusion of the two sources on this scale: __SCALE__. Then press <b>Download ratings (CSV)</b>
and send the file back. Your choices are kept in this browser until you download them.</p>
<div id="bar"><label>Your name or rater id: <input id="rater" size="24"></label>
<button id="download" disabled>Download ratings (CSV)</button> <span id="status"></span></div>
__SCENES__
<script id="items" type="application/json">__ITEMS__</script>
<script>
const SHEET = document.getElementById("sheet").textContent;
const ITEMS = JSON.parse(document.getElementById("items").textContent);
const STORE = "fusion-rating-" + SHEET;
const saved = JSON.parse(localStorage.getItem(STORE) || "{}");
function scores() {
  const out = {};
  for (const item of ITEMS) {
    const chosen = document.querySelector('input[name="' + item + '"]:checked');
    if (chosen) out[item] = chosen.value;
  }
  return out;
}
function refresh() {
  const s = scores(), rater = document.getElementById("rater").value.trim();
  const left = ITEMS.length - Object.keys(s).length;
  for (const item of ITEMS) document.getElementById("f-" + item).classList.toggle("unrated", !(item in s));
  document.getElementById("status").textContent = left ? left + " of " + ITEMS.length + " images not rated yet"
    : (rater ? "all rated" : "all rated: enter your name or rater id");
  document.getElementById("download").disabled = left > 0 || !rater;
  localStorage.setItem(STORE, JSON.stringify({rater: rater, scores: s}));
}
function csvField(text) { return /[",\\n]/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text; }
document.getElementById("download").addEventListener("click", () => {
  const s = scores(), rater = document.getElementById("rater").value.trim();
  const lines = ["sheet,rater,item,score"].concat(ITEMS.map(i => [SHEET, csvField(rater), i, s[i]].join(",")));
  const blob = new Blob([lines.join("\\n") + "\\n"], {type: "text/csv"});
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = "ratings_" + SHEET + "_" + rater.replace(/[^A-Za-z0-9_-]+/g, "_") + ".csv";
  document.body.appendChild(link); link.click(); link.remove();
});
if (saved.rater) document.getElementById("rater").value = saved.rater;
for (const [item, value] of Object.entries(saved.scores || {})) {
  const input = document.querySelector('input[name="' + item + '"][value="' + value + '"]');
  if (input) input.checked = true;
}
document.addEventListener("change", refresh);
document.getElementById("rater").addEventListener("input", refresh);
refresh();
</script>
</body></html>
"""


def render_page(key: pd.DataFrame, sources: dict[tuple[str, str], tuple[Path, Path]]) -> str:
    """The static HTML page of a key (:func:`shuffle_items`); ``sources``: (dataset, image) → (ir, vis) paths."""
    sheet = str(key["sheet"].iloc[0])
    scale = ", ".join(f"{k} = {v}" for k, v in SCALE.items())
    blocks = []
    for scene, group in key.groupby("scene", sort=True):
        first = group.iloc[0]
        ir, vis = sources[(first["dataset"], first["image"])]
        figures = [f'<figure class="source"><img alt="infrared" src="{_data_uri(ir)}"><figcaption>infrared</figcaption></figure>',
                   f'<figure class="source"><img alt="visible" src="{_data_uri(vis)}"><figcaption>visible</figcaption></figure>']
        for row in group.itertuples():
            radios = "".join(f'<label title="{v}"><input type="radio" name="{row.item}" value="{k}"> {k}</label> '
                             for k, v in SCALE.items())
            figures.append(f'<figure><img alt="fused image {row.label}" src="{_data_uri(Path(row.path))}">'
                           f'<figcaption>{row.label}</figcaption><fieldset id="f-{row.item}">{radios}</fieldset></figure>')
        blocks.append(f'<section class="scene" id="scene-{scene}"><h2>Scene {scene}</h2><div class="row">'
                      + "".join(figures) + "</div></section>")
    page = PAGE.replace("__SHEET__", html.escape(sheet)).replace("__SCALE__", html.escape(scale))
    page = page.replace("__NSCENES__", str(key["scene"].nunique())).replace("__NITEMS__", str(len(key)))
    page = page.replace("__ITEMS__", json.dumps(list(key["item"])))
    return page.replace("__SCENES__", "\n".join(blocks))


def write_sheet(candidates: Sequence[Candidate], sources: dict[tuple[str, str], tuple[Path, Path]], out: str | Path,
                seed: int = 0) -> tuple[Path, Path]:
    """Write ``<out>/sheet.html`` (for the raters) and ``<out>/key.csv`` (for the organiser only)."""
    missing = sorted({(c.dataset, c.image) for c in candidates} - set(sources))
    if missing:
        raise ValueError(f"no source images for {missing[:3]}")
    for c in candidates:
        if not Path(c.path).is_file():
            raise data.DataError(f"{c.path}: fused image of {c.method} for {c.dataset}/{c.image} not found")
    key = shuffle_items(candidates, seed)
    out = Path(out)
    page = write_text(out / "sheet.html", render_page(key, sources))
    return page, write_csv(out / "key.csv", key[KEY_COLUMNS + ["path"]], index=False)


def candidates_from_folders(pairs: Sequence[data.Pair], fused: dict[str, str | Path]) -> list[Candidate]:
    """One candidate per pair and method from folders of fused images (``fused``: method → folder, matched by stem;
    a pair without a fused image in some folder is an error naming the folder)."""
    out = []
    for method, folder in fused.items():
        files = data.image_files(folder)
        for pair in pairs:
            if pair.stem not in files:
                raise data.DataError(f"{folder}: no fused image for pair '{pair.stem}' of {method}")
            out.append(Candidate(pair.dataset, pair.stem, method, files[pair.stem]))
    return out


# --------------------------------------------------------------------------- the ratings

def read_ratings(key: pd.DataFrame, files: Sequence[str | Path]) -> pd.DataFrame:
    """The raters' CSVs joined to the key: columns dataset, method, image, rater, score. Each file must come from this
    sheet, name one rater (not used by another file) and score every item once with an integer on :data:`SCALE`."""
    sheet = str(key["sheet"].iloc[0])
    items = set(key["item"])
    frames, raters = [], {}
    for path in files:
        frame = pd.read_csv(path, dtype={"rater": str, "item": str, "sheet": str})
        if list(frame.columns) != RATING_COLUMNS:
            raise data.DataError(f"{path}: columns {list(frame.columns)}, expected {RATING_COLUMNS}")
        if set(frame["sheet"]) != {sheet}:
            raise data.DataError(f"{path}: ratings of sheet {sorted(set(frame['sheet']))}, the key is sheet {sheet}")
        names = set(frame["rater"].fillna(""))
        if len(names) != 1 or "" in names:
            raise data.DataError(f"{path}: one rater name per file expected, found {sorted(names)}")
        rater = names.pop()
        if rater in raters:
            raise data.DataError(f"{path}: rater '{rater}' also rated in {raters[rater]}")
        raters[rater] = path
        unknown = set(frame["item"]) - items
        if unknown:
            raise data.DataError(f"{path}: items not on the sheet: {sorted(unknown)[:5]}")
        if frame["item"].duplicated().any() or set(frame["item"]) != items:
            raise data.DataError(f"{path}: every item must be scored once ({frame['item'].nunique()} of {len(items)} "
                                 f"items, {int(frame['item'].duplicated().sum())} repeated)")
        score = pd.to_numeric(frame["score"], errors="coerce")
        if not score.isin(list(SCALE)).all():
            raise data.DataError(f"{path}: scores must be integers {min(SCALE)}–{max(SCALE)}")
        frames.append(frame.assign(score=score.astype(int)))
    if not frames:
        raise ValueError("no ratings file given")
    ratings = pd.concat(frames, ignore_index=True).merge(key[["item", "dataset", "image", "method"]], on="item")
    return ratings[["dataset", "method", "image", "rater", "score"]]


def mos(ratings: pd.DataFrame) -> pd.DataFrame:
    """Sec. 5.4: per (dataset, method, image) drop one highest and one lowest rating, average the rest; then average
    over the data set's images. ``ratings`` columns: dataset, method, image, rater, score. Needs ≥ 3 raters per image.
    Real human ratings only: the repository ships none and never makes any up."""
    missing = {"dataset", "method", "image", "rater", "score"} - set(ratings.columns)
    if missing:
        raise ValueError(f"ratings lack the columns {sorted(missing)}")

    def trimmed(scores: pd.Series) -> float:
        if len(scores) < 3:
            raise ValueError(f"{len(scores)} ratings of one image: dropping the highest and lowest needs at least 3")
        ordered = scores.sort_values().to_numpy()
        return float(ordered[1:-1].mean())

    per_image = ratings.groupby(["dataset", "method", "image"], sort=False)["score"].apply(trimmed).reset_index()
    table = per_image.groupby(["dataset", "method"], sort=False)["score"].agg(["mean", "count"]).reset_index()
    return table.rename(columns={"mean": "MOS", "count": "images"})


def plot_mos(table: pd.DataFrame, raters: int, title: str = "Fig. 11 substitute: MOS"):
    """One bar group per data set, one bar per method (sorted by name), the 1–5 scale as the y range."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(table["dataset"]))
    methods = sorted(set(table["method"]))
    width = 0.8 / len(methods)
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 + 0.35 * len(methods) * len(datasets)), 3.2))
    for k, method in enumerate(methods):
        rows = table[table["method"] == method].set_index("dataset").reindex(datasets)
        ax.bar([d + (k - (len(methods) - 1) / 2) * width for d in range(len(datasets))], rows["MOS"], width,
               label=method)
    ax.set_xticks(range(len(datasets)), datasets)
    ax.set_ylim(min(SCALE), max(SCALE)), ax.set_ylabel("MOS (1–5)")
    ax.set_title(f"{title} ({raters} raters; highest and lowest dropped per image)", fontsize=9)
    ax.legend(fontsize=7, ncol=2, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


def aggregate(key_file: str | Path, files: Sequence[str | Path], out: str | Path) -> pd.DataFrame:
    """Read, check, aggregate and plot: ``<out>/mos.csv`` / ``.md`` and ``<out>/fig11_mos.png``."""
    from ... import io, report

    key = pd.read_csv(key_file, dtype={"sheet": str, "item": str, "image": str})
    ratings = read_ratings(key, files)
    table = mos(ratings)
    raters = ratings["rater"].nunique()
    report.write_table(table, out, "mos", "Fig. 11 substitute: MOS (highest and lowest rating per image dropped, "
                       "then averaged over the images of each data set)",
                       {"sheet": key["sheet"].iloc[0], "raters": raters, "scale": "1-5 ACR (assumed; paper: not stated)"})
    fig = plot_mos(table, raters)
    io.save_figure(fig, Path(out) / "fig11_mos.png", dpi=80)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return table


# --------------------------------------------------------------------------- command line

def _fused_option(text: str) -> tuple[str, str]:
    name, sep, folder = text.partition("=")
    if not sep or not name or not folder:
        raise argparse.ArgumentTypeError(f"--fused {text!r}: expected NAME=FOLDER")
    return name, folder


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fusion_core.papers.savf.mos", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sheet = sub.add_parser("sheet", help="write an anonymised, shuffled rating sheet (sheet.html) and its key.csv")
    sheet.add_argument("--dataset", help="a registered data set (python -m fusion_core datasets)")
    sheet.add_argument("--ir", help="folder of infrared images (with --vis; paired by file stem)")
    sheet.add_argument("--vis", help="folder of visible images")
    sheet.add_argument("--pairs", help="comma-separated stems to show (default: every pair)")
    sheet.add_argument("--methods", default="", help="registered methods to fuse now, with their default weights, "
                       "into OUT/fused/<method>/ (python -m fusion_core methods)")
    sheet.add_argument("--fused", action="append", type=_fused_option, default=[], metavar="NAME=FOLDER",
                       help="already fused images of one method, by stem (repeatable)")
    sheet.add_argument("--seed", type=int, default=0, help="seed of the shuffle (default 0)")
    sheet.add_argument("--device", default="cpu")
    sheet.add_argument("--out", required=True)
    agg = sub.add_parser("aggregate", help="MOS from filled-in rating CSVs: table and bar chart")
    agg.add_argument("--key", required=True, help="the sheet's key.csv")
    agg.add_argument("--out", required=True)
    agg.add_argument("ratings", nargs="+", help="the raters' downloaded CSV files")
    args = parser.parse_args(argv)
    try:
        if args.command == "aggregate":
            table = aggregate(args.key, args.ratings, args.out)
            print(table.round(3).to_string(index=False))
            print(f"wrote {Path(args.out) / 'mos.csv'} and {Path(args.out) / 'fig11_mos.png'}")
            return 0
        from ...cli import source_pairs

        pairs = source_pairs(args)
        if args.pairs:
            wanted = [s.strip() for s in args.pairs.split(",") if s.strip()]
            known = {p.stem: p for p in pairs}
            absent = [s for s in wanted if s not in known]
            if absent:
                raise data.DataError(f"--pairs: no pair with stem {absent[0]!r} in the sources")
            pairs = [known[s] for s in wanted]
        fused = dict(args.fused)
        methods = [m.strip() for m in args.methods.split(",") if m.strip()]
        if methods:
            from ...fuse import fuse_pairs

            for method in methods:
                folder = Path(args.out) / "fused" / method
                fuse_pairs(method, pairs, folder, device=args.device, progress=False)
                fused[method] = folder
        if len(fused) < 2:
            raise ValueError("give at least two methods (--methods and/or --fused) to compare")
        candidates = candidates_from_folders(pairs, fused)
        page, key = write_sheet(candidates, {(p.dataset, p.stem): (p.ir, p.vis) for p in pairs}, args.out, args.seed)
        print(f"wrote {page} ({len(candidates)} images of {len(fused)} methods, {len(pairs)} scenes; seed {args.seed}) "
              f"and {key} (the key: keep it away from the raters)")
        return 0
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
