# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (fusion_core)
#     language: python
#     name: python3
# ---

# %% tags=["parameters"]
import os
profile = os.environ.get("FUSION_PROFILE", "eval")  # quick | eval | full
verify = "sample"  # eval: re-fuse a fixed sample ("sample") or everything ("all")
seed = 0

# %% [markdown]
# # 00 — The data sets
#
# *This notebook is paired with `notebooks/00_datasets.py` by jupytext (one source, two files): edit either, then run `make sync`.*
#
# Every public infrared/visible set this project reads (located through `FUSION_DATA`, default `../shared/data`;
# see `data/README.md`): pair counts, image sizes, how many visible images are colour, and whether the files match
# their `SHA256SUMS`. The figures show one example pair per set. Nothing here is a substitute; the sets that stand in
# for unavailable data (e.g. `tno_scenes` as a validation set, `roadscene221/vis_hr` as a natural-image corpus) are
# named in each paper's notebook.

# %%
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from fusion_core import data, io, report

out = report.results_dir("datasets", profile)
run_profile = {"profile": profile, "data_root": str(data.data_root().name)}

# %% [markdown]
# ## Table: pair counts and sizes
# `smallest_hxw`/`largest_hxw` are by area; `colour_vis` counts visible images with real chroma (grey content stored as
# RGB counts as grey). The checksum column is filled outside the `quick` profile.

# %% tags=["nbval-check-output"]
table = data.dataset_table(verify=profile != "quick")
report.write_table(table, out, "datasets", "Data sets: pairs, sizes, colour visible images", run_profile)
print(table[["dataset", "pairs", "smallest_hxw", "largest_hxw", "distinct_sizes", "colour_vis"]].to_string(index=False))

# %% [markdown]
# ## Figure: image sizes per set (megapixels per pair)

# %% tags=["nbval-check-output"]
sizes = {name: [np.prod(data.check_pair(p)) / 1e6 for p in data.list_pairs(name)] for name in table["dataset"]}
fig, ax = plt.subplots(figsize=(9, 4))
ax.boxplot(list(sizes.values()), orientation="horizontal", tick_labels=list(sizes.keys()))
ax.set_xlabel("megapixels per pair")
ax.set_title("Resolution of each data set's pairs")
io.save_figure(fig, out / "resolution.png")
plt.close(fig)
print({k: round(float(np.median(v)), 3) for k, v in sizes.items()})

# %% [markdown]
# ## Figure: one example pair per set
# The first pair (natural stem order) of each set; IR then VIS, two sets per row (colour where the set stores colour).

# %% tags=["nbval-check-output"]
names = [n for n in table["dataset"] if n not in {"tno_kaptein_1123", "tno_marne_04"}]
rows, titles = [], []
for start in range(0, len(names), 2):
    row, title = [], []
    for name in names[start:start + 2]:
        pair = data.list_pairs(name)[0]
        row += [data.read_array(pair.ir), data.read_array(pair.vis)]
        short = f"{name}/{pair.stem.split('__')[-1]}"
        title += [f"{short} IR", f"{short} VIS"]
    rows.append(row)
    titles.append(title)
fig = report.image_grid(rows, [""] * len(rows), [], title="One example pair per data set (IR, VIS; two sets per row)",
                        cell=2.6, panel_titles=titles)
io.save_figure(fig, out / "example_pairs.png", dpi=72)
plt.close(fig)
print(len(rows), "rows")
