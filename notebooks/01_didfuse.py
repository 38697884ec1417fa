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
verify = "sample"  # eval: re-fuse a fixed sample ("sample") or every pair ("all")
seed = 0  # the model of Figs. 4-5
repeats = None  # trainings per variant (None: every complete one; the paper: 25 for Tables III-IV, 20 for Fig. 6)
device = "cpu"  # "cuda" on a GPU
threads = 1  # torch/OpenCV CPU threads (1 keeps a shared 2-core CPU from thrashing)
protocol = None  # checkpoints: "reduced" (committed CPU models; eval default) | "paper" (GPU-trained; full default)
fig4_pairs = ["tno40/01", "tno40/18", "flir_test40/12", "nir_country52/04"]  # Fig. 4 rows (not stated in the paper)
gap_pairs = 3  # Fig. 4 companion: first N pairs of each test set
fig5_pairs = ["tno40/01", "tno40/05", "tno40/18", "flir_test40/12", "nir_country52/04", "nir_country52/09"]
fig5_boxes = [  # per scene: (top, left, height, width, inset corner) as fractions; orange first, blue second
    [(0.50, 0.12, 0.28, 0.20, "ur"), (0.10, 0.05, 0.25, 0.25, "lr")],
    [(0.20, 0.60, 0.25, 0.25, "ll"), (0.50, 0.60, 0.25, 0.25, "ul")],
    [(0.40, 0.20, 0.20, 0.25, "lr"), (0.10, 0.55, 0.20, 0.20, "ll")],
    [(0.35, 0.70, 0.30, 0.20, "ul"), (0.15, 0.42, 0.20, 0.20, "ll")],
    [(0.05, 0.60, 0.20, 0.30, "ll"), (0.30, 0.10, 0.20, 0.30, "lr")],
    [(0.10, 0.10, 0.25, 0.25, "lr"), (0.15, 0.60, 0.25, 0.25, "ll")],
]

# %% [markdown]
# # 01 — DIDFuse (Zhao et al., *When Image Decomposition Meets Deep Learning*): main results
#
# *This notebook is paired with `notebooks/01_didfuse.py` by jupytext (one source, two files): edit either, then run `make sync`.*
#
# Fig. 3 (training losses), Fig. 4 (base/detail decomposition), Fig. 5 (qualitative comparison) and Table V
# (comparison on the test sets). Our models follow the paper's architecture, loss and fusion layer (Sal-Att & CAM,
# `sal+cam`), trained on CPU with a **reduced protocol** (the committed models; `protocol="paper"` evaluates
# paper-protocol models trained on a GPU, see `fusion_core/papers/didfuse/README.md`). Table III (fusion rules), Table IV (ablations) and Fig. 6
# (reproducibility) are in `01a`–`01c`.
#
# **Substitutes** (in every table and figure caption): reduced CPU training (64² centre crops instead of 128²,
# 12 epochs instead of 120); training on FLIR-Train-180 only (NIR-Mountain/Water unavailable); the NIR-Forest
# and NIR-Field test scenes are unavailable ("data not available"); N trainings instead of 20–25, stated per
# table. Competitor columns of Table V are the paper's reported numbers, except TSIFVS, which we also run
# (`tif`, our re-implementation, validated against VIFB). The authors' released IJCAI outputs and weights
# (FLIR-only training, the IJCAI code's loss, `sum` fusion) are scored as extra, labelled columns.

# %%
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

from fusion_core import checks, io, report
from fusion_core.papers.didfuse import experiment as exp
from fusion_core.papers.didfuse.model import load_checkpoint

out = report.results_dir(exp.PAPER, profile)  # here, not in a helper: it reads this notebook's parameters
reported, substitutes, training = exp.setup(profile, protocol, threads)

# %% tags=["nbval-check-output"]
models, run = exp.trained_models(profile, ["base"], repeats, protocol, device, substitutes)

# %% [markdown]
# ## Fig. 3 — loss curves
# Per-epoch mean of each loss term of Eq. 5 for every base-model training (thin lines) and their mean (black);
# `base`/`detail` are the raw distances before tanh. The paper trains 120 epochs (lr ÷10 at 40, 80); the reduced
# protocol trains 12 (lr ÷10 at 4, 8) on 64² crops, so "flat by the end" is the claim to check, not the values.

# %% tags=["nbval-check-output"]
histories = exp.loss_histories(models)
io.write_csv(out / "fig03_loss_history.csv", histories)
fig = exp.plot_losses(histories, f"Fig. 3: DIDFuse training losses, {len(models)} base-model trainings "
                      f"({profile} profile: {run['protocol']} protocol, FLIR-Train-180 only)")
io.save_figure(fig, out / "fig03_loss_curves.png")
plt.close(fig)
print("epochs per training:", sorted(set(histories.groupby("source")["epoch"].max())))
print("total loss falls:", bool((histories.groupby("source")["total"].apply(lambda t: t.iloc[-1] < t.iloc[0])).all()))

# %% [markdown]
# ## Fig. 4 — deep image decomposition
# Columns: IR, VIS, then the first channel (index 0) of the base map B (conv3) and detail map D (conv4) of each
# image, each map min–max scaled (order [IR, VIS, B_I, D_I, B_V, D_V], an assumption: the paper's order is
# ambiguous). Companion numbers: mean |B_I − B_V| vs mean |D_I − D_V| over all channels for the first pairs of
# each test set; the paper's reading is that the base maps of the two modalities agree and the details differ.

# %% tags=["nbval-check-output"]
shown = next(m for m in models if m.seed == seed)
model = load_checkpoint(shown.path).eval()
fig = exp.decomposition_figure(model, fig4_pairs, profile,
                               f"Fig. 4: base/detail decomposition, base model seed {seed} ({profile} profile, "
                               f"{run['protocol']} training on FLIR-Train-180 only)")
io.save_figure(fig, out / "fig04_decomposition.png", dpi=100)
plt.close(fig)
gaps = exp.decomposition_gaps(model, exp.gap_pairs(profile, gap_pairs), profile)
report.write_table(gaps, out, "fig04_decomposition_gaps",
                   "Fig. 4 companion: mean |B_I - B_V| and |D_I - D_V| per pair (base model, first pairs of each test set)", run)
print("pairs:", len(gaps), "| finite gaps:", bool(gaps[["base_gap", "detail_gap"]].notna().all().all()))

# %%
print("base gap < detail gap on", int((gaps["base_gap"] < gaps["detail_gap"]).sum()), "of", len(gaps), "pairs")

# %% [markdown]
# ## Table V — comparison on the test sets
# Ours, under two readings of the paper's DIDFuse (issue 18), each every complete base-model training, mean ± std
# over trainings (n stated), next to the paper's DIDFuse value: **code reading** `DIDFuse (ours, sum)` — the rule
# of the authors' released test code, the headline (their released IJCAI images are their released weights + sum
# to ≤ 1 grey level, the one end-to-end artefact of their pipeline) — and **paper reading** `DIDFuse (ours,
# sal+cam)`, the fusion layer the paper's text describes. `TSIFVS`: our `tif` on the same images. Extra rows
# without a paper value: the authors' released IJCAI images scored by us and their released weights run by us
# with each rule. `Nestfuse`: ours too under eval, the NestFuse trained here for MSFAM (reduced CPU protocol, MSFAM's
# substitute data, `nestfuse_avg`; its float16 checkpoint is committed, so eval re-fuses its sample like the others;
# `python -m fusion_core.papers.didfuse.experiment raw --variant nestfuse` rebuilds the rows). Other competitors:
# reported only; NIR-Forest and NIR-Field: data not available.
#
# **Metric convention**: `didfuse`, calibrated on the paper's deterministic TSIFVS column (all 18 TSIFVS cells
# within 0.1 %: SD centred per column, SF with a zero-padded 2-tap difference, VIF = VIFF;
# `docs/metric_conventions.md`). The raw files also hold the spec's reading of SD, SF and VIF (`didfuse_spec`)
# for the same fused images, so `table5_conventions` shows every cell before and after the calibration. The eval
# profile re-fuses the smallest pair of each (source, test set) and checks it against the committed raw files.

# %% tags=["nbval-check-output"]
result = exp.table5_raw(models, profile, out, verify, device)
table5 = exp.table5(result.rows, reported)
caption = (f"Table V: reported (paper) vs ours; ours = DIDFuse, {training} (FLIR-Train-180 only), fused with sum "
           "(code reading, headline) and sal+cam (paper reading), mean ± std over n trainings; TSIFVS = our tif; "
           "convention didfuse (TSIFVS-calibrated); NIR-Forest/Field: data not available")
report.write_table(table5, out, "table5_comparison", caption, run)
report.write_table(exp.wide5(table5, reported), out, "table5", caption, run)
print(exp.write_verification(result, out, "table5", run))
ours = table5[table5["method"].isin([*map(exp.ours_name, exp.READINGS), "TSIFVS"])].dropna(subset=["ours_mean"])
print(checks.structure(ours, ["dataset", "method"], "ours_mean"))

# %%
print(ours.pivot_table(index=["dataset", "method"], columns="metric", values="ours_mean", sort=False)[exp.METRICS].round(2).to_string())
for reading in exp.READINGS:
    summary = report.fidelity(exp.fidelity_rows(table5, reading), substitutes)
    headline = reading == exp.HEADLINE
    report.write_fidelity(out, summary, part="01_didfuse", reading=None if headline else reading,
                          label=exp.READING_LABELS[reading])
    cells = table5[table5["method"] == exp.ours_name(reading)].dropna(subset=["ours_mean", "reported"])
    print(f"{exp.ours_name(reading)}{' (headline)' if headline else ''}: cells within 5 %:",
          int((cells["delta_pct"].abs() <= 5).sum()), "of", len(cells))
# TSIFVS is the same method on the same images: its deltas measure the metric convention, not fusion quality.
tsifvs = table5[table5["method"] == "TSIFVS"].dropna(subset=["ours_mean", "reported"])
print("TSIFVS delta % per metric (mean over sets):", tsifvs.groupby("metric", sort=False)["delta_pct"].mean().round(1).to_dict())
nestfuse = table5[table5["method"] == exp.NESTFUSE_ROW].dropna(subset=["ours_mean", "reported"])
print(f"{exp.NESTFUSE_ROW} (ours: MSFAM's reduced training): cells within 5 %:",
      int((nestfuse["delta_pct"].abs() <= 5).sum()), "of", len(nestfuse))

# %% [markdown]
# ### Table V before and after the metric calibration
# The same fused images scored with the spec's reading of SD, SF and VIF (`didfuse_spec`, the repository's
# convention before issue 18) and with the TSIFVS-calibrated `didfuse`: cells within ±5 % of the paper per column
# and test set, and per metric for each reading of our DIDFuse.

# %%
conventions = exp.conventions5(result.rows, reported)
report.write_table(conventions, out, "table5_conventions",
                   "Table V cells under both metric conventions (same fused images): didfuse_spec (before the TSIFVS "
                   f"calibration) and didfuse (after); Δ % vs the paper; ours = {training}", run)
counts = exp.within5(conventions)
report.write_table(counts, out, "table5_within5",
                   "Table V cells within ±5 % of the paper per column and test set, before (didfuse_spec) and after "
                   "(didfuse) the TSIFVS calibration", run)
print(counts[counts["dataset"] == "all three"].to_string(index=False))
for reading in exp.READINGS:
    print(exp.ours_name(reading), "test sets within 5 % per metric (before, after):")
    print(exp.within5_by_metric(conventions, exp.ours_name(reading)).to_string(index=False))

# %% [markdown]
# ## Fig. 5 — qualitative comparison
# Six scenes chosen to match the paper's description (people, a bunker, houses, people outdoors, mountains and
# clouds, leaves); the paper names neither images nor boxes. Rows: IR, VIS, the authors' released IJCAI result
# (`sum` rule), ours (our model of seed `seed`, `sal+cam`), and TSIFVS (our `tif`). Orange and blue boxes are
# enlarged in the panel corners. FusionGAN, DenseFuse, ImageFuse, DeepFuse, TVADMM, U2Fusion and NestFuse: no
# outputs or weights offline, not shown.

# %% tags=["nbval-check-output"]
fig = exp.qualitative_figure(shown, fig5_pairs, profile, fig5_boxes,
                             f"Fig. 5: qualitative comparison ({profile} profile; ours = {training}, FLIR-Train-180 only)",
                             device)
io.save_figure(fig, out / "fig05_qualitative.png", dpi=110)
plt.close(fig)
print(fig5_pairs)
