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
threads = 1  # torch/OpenCV CPU threads (1 keeps a shared 2-core CPU from thrashing)
repeats = None  # trainings per variant (None: every complete one; the paper: 25 for Tables III-IV, 20 for Fig. 6)
model_profile = None  # checkpoints: "reduced" (committed CPU models; eval default) | "full" (paper protocol, GPU; full default)

# %% [markdown]
# # 01b — DIDFuse Table IV: ablations
#
# *This notebook is paired with `notebooks/01b_didfuse_table4_ablation.py` by jupytext (one source, two files): edit either, then run `make sync`.*
#
# Each experiment compares "Ours" (the full model, `sal+cam`) with a "Test" variant trained the same way
# (`python -m fusion_core.papers.didfuse.train --ablation expK`): Exp. 1 no base module (Eq. 26), Exp. 2 no detail module
# (Eq. 27), Exp. 3 no decomposition loss (Eq. 28), Exp. 4 a plain auto-encoder on single images (Eq. 29),
# Exp. 5 no skip connections. "Overall # larger value" counts, per experiment, the cells where Ours is larger
# (paper: 12 cells over two scenes; ours: 6 metrics on one validation set). **Substitutes:** validation proxy of
# 15 `tno_scenes` pairs for NIR-Street/Urban (unavailable); reduced CPU training on FLIR-Train-180 only; N
# trainings per variant (stated below) instead of 25.

# %%
import matplotlib
matplotlib.use("Agg")
import cv2
import matplotlib.pyplot as plt
import pandas as pd
import torch

from fusion_core import checks, data, io, report
from fusion_core.papers.didfuse import experiment as exp

torch.set_num_threads(threads)
cv2.setNumThreads(threads)
out = report.results_dir(exp.PAPER, profile)
reported = report.load_reported(exp.PAPER)
substitutes = exp.substitutes(profile, model_profile)
training = {"reduced": "reduced CPU training", "full": "paper-protocol training", "quick": "quick smoke training"}[
    exp.settings(profile, model_profile).train_profile]
print("substitutes:")
for s in substitutes:
    print(" -", s)

# %% tags=["nbval-check-output"]
models = exp.ensure_models(profile, exp.VARIANTS, repeats=repeats, model_profile=model_profile)
run_profile = {**exp.profile_line(profile, models, model_profile=model_profile), "substitutes": "; ".join(substitutes)}
print("trained models:", [m.key for m in models])

# %% tags=["nbval-check-output"]
raw, verification, missing = exp.collect(models, [exp.VAL], [exp.PAPER_RULE], profile, out, verify)
table4 = exp.table4(raw, reported)
counts = exp.larger_counts(table4)
n_per_variant = dict(zip(counts["experiment"], counts["n_test"]))
n_full = int(counts["n_ours"].max())
caption = (f"Table IV: ablations on the val proxy (15 tno_scenes pairs; NIR-Street/Urban unavailable), sal+cam, {training}, "
           f"mean over trainings: full n={n_full}, " + ", ".join(f"{k} n={v}" for k, v in n_per_variant.items()))
report.write_table(table4, out, "table4_ablation", caption, run_profile)
report.write_table(counts, out, "table4_larger_counts", "Table IV 'Overall # larger value': paper (12 cells) vs ours (6 metrics)", run_profile)
ours = table4[table4["dataset"] == exp.VAL_SCENES[0]].pivot_table(index="metric", columns="method", values="ours_mean").reindex(exp.METRICS)
ours = ours[[f"{e}_{side}" for e in exp.ABLATIONS for side in ("ours", "test") if f"{e}_{side}" in ours]]
report.write_table(ours.reset_index(), out, "table4", caption + " (ours only; reported values in table4_ablation)", run_profile)
name = "table4"
if len(verification):
    report.write_table(verification, out, f"{name}_verification",
                       "Eval profile: re-fused pairs vs committed raw results (max relative difference per pair)", run_profile)
    print("re-fused pairs within tolerance:", int(verification["ok"].sum()), "/", len(verification))
print("raw files missing:", missing or "none")
print(counts[["experiment", "paper_ours_larger", "ours_cells", "n_ours", "n_test"]].to_string(index=False))
print(checks.structure(table4.dropna(subset=["ours_mean"]), ["method"], "ours_mean"))

# %%
print(counts[["experiment", "ours_ours_larger"]].to_string(index=False))
summary = report.fidelity(table4[table4["metric"] != "n_larger"], substitutes, exp.signs4(table4))
report.write_fidelity(out, summary, part="01b_didfuse_table4_ablation")
print({k: v for k, v in summary.items() if k != "substitutes"})
