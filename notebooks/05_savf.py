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
seed = 0  # the training shown (one seed per variant is committed)
repeats = None  # trainings per variant (None: every complete committed one)
device = "cpu"  # "cuda" on a GPU
threads = 1  # torch CPU threads (1 keeps a shared 2-core CPU from thrashing)
protocol = None  # checkpoints: "reduced" (committed CPU models; eval/full default) | "paper" (GPU recipe)
example_pair = "tno42/08"  # Figs. 1/4 substitute: a held-out TNO pair (not one of the attention-training scenes)
baselines = ["DTCWT", "GTF", "MSVD", "LP", "RP", "Wavelet", "CBF"]  # Figs. 9/10: the paper's competitors we implement

# %% [markdown]
# # 05 — SAVF (Fang, Zhao, Zhang): cross-modal fusion guided by subjective visual attention
#
# *This notebook is paired with `notebooks/05_savf.py` by jupytext (one source, two files): edit either, then run `make sync`.*
#
# **The paper has no table and no number to compare with.** Its results (Figs. 9–11: metric charts and a MOS study)
# are images missing from the text, its CVS aviation data are private, no code or weights were released and the
# ImageNet backbone weights are not available offline. What runs here is the *pipeline*, trained by us on real IR/VIS
# substitutes: nothing below is claimed to match the paper. Sections: Fig. 2 as a computed model summary, the three
# training stages (sub-task 2 enhancement, sub-task 1 attention, main task; OURS and OURS+), attention detection on
# held-out labelled pairs against an IR-intensity baseline, and one pair through both variants (Figs. 1/4).
# Under `quick` the models are seconds-long trainings on 32² images (their numbers mean nothing); `eval` reads the
# committed `reduced` CPU checkpoints. Every substitute is listed by the next cell.

# %%
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

from fusion_core import checks, data, io, report
from fusion_core.papers.savf import experiment as exp
from fusion_core.papers.savf import model as savf_model
from fusion_core.papers.savf import train

torch.set_num_threads(threads)
out = report.results_dir(exp.PAPER, profile)
models = [m for m in train.ensure_models(profile, protocol, seeds=(seed,), device=device)]
trained_with = sorted({m.protocol for m in models}) or ["none"]
print("profile:", profile, "| protocol:", ", ".join(trained_with), "| models:", [m.key for m in models] or "none committed yet")
print("substitutes:")
for s in exp.SUBSTITUTES:
    print(" -", s)

# %% [markdown]
# ## Fig. 2 — the framework as a model summary (computed, not drawn)
# The spec-default networks (VGG16-layout backbone, width 64, `tap_ch` 32, two MSRBs, DANet PAM on 32² pooled
# features): each module of the main network OURS+ with its output shape from a forward pass on a 64² pair and its
# trainable / frozen parameters (frozen: the backbone, EnhanceNet and AttentionNet columns). The paper gives no layer
# table: every width is the spec's assumption (`model.DEFAULT_CONFIG`).

# %% tags=["nbval-check-output"]
summary = exp.model_summary(savf_model.SAVFNet(attention=True, backbone_source="untrained (summary only)"), size=64)
report.write_table(summary, out, "fig02_model_summary", "Fig. 2 substitute: SAVF OURS+ modules (spec-default widths)",
                   {"profile": profile})
print(summary.to_string(index=False))
print("trainable:", int(summary["trainable"].sum()), "| frozen:", int(summary["frozen"].sum()))

# %% [markdown]
# The same network at the widths of the CPU protocols (`quick` and `reduced`: backbone at 1/8 of VGG16's widths,
# width 16, `tap_ch` 8), which the committed checkpoints use.

# %% tags=["nbval-check-output"]
small = exp.model_summary(savf_model.SAVFNet(attention=True, backbone_source="untrained (summary only)",
                                             **train.REDUCED_MODEL), size=64)
report.write_table(small, out, "fig02_model_summary_reduced", "SAVF OURS+ modules at the reduced widths", {"profile": profile})
print(small.to_string(index=False))
print("trainable:", int(small["trainable"].sum()), "| frozen:", int(small["frozen"].sum()))

# %% [markdown]
# ## Training: the three stages (loss per epoch)
# Stage 1 trains EnhanceNet and the backbone (reconstruction auto-encoders on the natural-image corpus, the COCO
# substitute; no perceptual term: φ is the backbone being trained), stage 2 the attention network on 15 `tno_masks20`
# pairs ×3 flips, stage 3 the main network with both sub-tasks frozen (OURS+), or the enhancement one only (OURS).
# Loss L_f = L_SSIM + L_Perceptual + L_Edge (Eqs. 3–6).

# %% tags=["nbval-check-output"]
runs = {("OURS+" if m.variant == "base" else "OURS"): exp.histories(m) for m in models}
for label, run in runs.items():
    for stage, history in run.items():
        finite = bool(history["total"].notna().all()) and bool((history["total"] >= 0).all())
        print(f"{label:6s} {stage:9s} epochs={len(history)} loss finite and >= 0: {finite}")
if runs:
    fig = exp.plot_histories(runs, f"SAVF training losses ({', '.join(trained_with)} protocol)")
    io.save_figure(fig, out / "fig_training_losses.png", dpi=80)
    plt.close(fig)
else:
    print("no trained model: the training figure is not computed (see the README status)")

# %% [markdown]
# ## Sub-task 1 — attention detection on the held-out labelled pairs
# F_S of the OURS+ model against the `tno_masks20` masks of the 5 held-out pairs (`splits/attention_test.txt`), at
# the size the attention net was trained on, next to an IR-intensity baseline (the normalised IR image). MAE (↓),
# max F-measure (β² = 0.3, ↑), IoU at 0.5 (↑). The labels are salient-target masks, a proxy for the paper's
# subjective-attention labels; the paper reports no attention-detection number.

# %%
base = [m for m in models if m.variant == "base"]
if base:
    per_pair = exp.attention_table(base[0], profile, device)
    attention = exp.attention_summary(per_pair)
    report.write_table(per_pair, out, "attention_heldout_per_pair", "Attention detection, held-out tno_masks20 pairs",
                       {"profile": profile, "protocol": base[0].protocol, "seed": base[0].seed})
    report.write_table(attention, out, "attention_heldout", "Attention detection (mean over held-out pairs): SAVF F_S vs IR intensity",
                       {"profile": profile, "protocol": base[0].protocol, "seed": base[0].seed})
    print(attention.round(3).to_string(index=False))
else:
    per_pair = None
    print("attention metrics: not yet computed (no OURS+ checkpoint; see README status)")

# %% tags=["nbval-check-output"]
if per_pair is not None:
    values = per_pair[["MAE", "maxF", "IoU"]]
    print("pairs:", per_pair["pair"].nunique(), "| predictors:", list(per_pair["predictor"].unique()))
    print("all values in [0, 1]:", bool(((values >= 0) & (values <= 1)).all().all()))

# %% [markdown]
# ## Figs. 1 / 4 substitute — one held-out pair through both variants
# IR, VIS, the attention map F_S, OURS (no attention), OURS+ (raw network output) and the composite display
# F_S·OURS+ + (1 − F_S)·OURS (spec §2.7). `quick`: a 128² crop of the pair.

# %% tags=["nbval-check-output"]
pair = next(p for p in data.load_split(exp.PAPER, "test_tno") if p.name == example_pair)
panels = exp.fuse_example(models, pair, crop=128 if profile == "quick" else None, device=device) if models else {}
if panels:
    fig = report.image_grid([list(panels.values())], [pair.name], list(panels), title="SAVF: one pair, both variants")
    io.save_figure(fig, out / "fig04_example.png", dpi=80)
    plt.close(fig)
    for name, image in panels.items():
        print(f"{name:15s} shape={tuple(image.shape)} in [0, 1]: {bool(image.min() >= 0 and image.max() <= 1)}")
else:
    print("example figure: not computed (no trained model)")

# %% [markdown]
# ## Figs. 9 / 10 substitute — objective metrics on the two IR-VIS test sets
# Convention `savf` (spec §5.2: EN, CPBD, JNB, VIF = VIFp averaged, AG, SSIM averaged, MI summed in bits) per pair,
# for OURS+, OURS and the competitors of the paper's list that the repository implements (DTCWT, GTF, MSVD, LP, RP,
# Wavelet = `dwt`, CBF: our Python re-implementations, not the authors' MATLAB codes; CVT, LPSR, DSIFT, JSR, CNN,
# DL, FZL, FusionGAN and IFCNN are not run; on `test_vifb` only, the VIFB benchmark's released fused images of CNN,
# DL (`DLF`) and IFCNN are scored as "VIFB reference output" columns, grey by BT.601 luma). Test sets: `test_tno` (tno42 without the 20 attention-training scenes,
# 22 pairs) and `test_vifb` (vifb21). The paper's values are not in its text: no reported column. `quick`: two pairs
# of each set, top-left 128². `eval`: the committed raw files, one pair per source and set re-fused and compared.

# %%
raw = exp.fusion_metrics(models, profile, out, verify=verify, baselines=baselines, device=device) if models else None
if raw is not None and len(raw.rows):
    metrics = exp.metrics_table(raw.rows)
    report.write_table(metrics, out, "fig09_10_metrics", "Figs. 9/10 substitute: convention savf, mean and std over the "
                       "test pairs (no paper values exist)", {"profile": profile, "protocol": ", ".join(trained_with)})
    print(metrics.pivot_table(index=["role", "method"], columns="metric", values="mean", sort=False)
          [exp.METRICS].round(3).to_string())
    for number, role in ((9, "test_tno"), (10, "test_vifb")):
        if role not in set(metrics["role"]):
            continue
        fig = exp.plot_metrics(metrics, role, f"Fig. {number} substitute: {role} ({profile}), mean ± std over pairs")
        io.save_figure(fig, out / f"fig{number:02d}_metrics_{role}.png", dpi=80)
        plt.close(fig)
elif raw is not None:
    print(f"objective metrics: not yet computed ({len(raw.missing)} raw files missing; see README status)")
else:
    print("objective metrics: not yet computed (no committed checkpoint; see README status)")

# %% tags=["nbval-check-output"]
if raw is not None:
    print("raw rows per test set and source:", raw.rows.groupby(["role", "source"], sort=False).size().to_dict())
    print("metrics outside their possible range:", checks.out_of_range(raw.rows, "value", metric=None) or "none")
    print("verification ok:", raw.ok, "| missing raw files:", len(raw.missing))

# %% [markdown]
# ## The paper's claim "our image fusion theory highlights the region of human concern" (Sec. 1, Fig. 1)
# Target contrast = mean intensity inside the labelled target minus outside it, on the 5 held-out `tno_masks20`
# pairs (native resolution; `quick`: two pairs at 64²), for the two sources, OURS and OURS+. The claim predicts
# OURS+ > OURS. The masks are salient-target labels, a proxy for the paper's subjective attention.

# %%
if models:
    contrast = exp.contrast_table(models, profile, device)
    by_image = contrast.pivot(index="pair", columns="image", values="target_contrast")
    report.write_table(contrast, out, "claim_target_contrast", "Target contrast inside vs outside the held-out masks",
                       {"profile": profile, "protocol": ", ".join(trained_with)})
    print(by_image.round(3).to_string())
    if {"OURS+", "OURS"} <= set(by_image):
        print("pairs where OURS+ > OURS:", int((by_image["OURS+"] > by_image["OURS"]).sum()), "of", len(by_image))
else:
    print("target contrast: not yet computed (no trained model)")

# %% tags=["nbval-check-output"]
if models:
    print("pairs:", contrast["pair"].nunique(), "| images:", list(contrast["image"].unique()))
    print("contrasts in [-1, 1]:", bool(contrast["target_contrast"].abs().le(1).all()))

# %% [markdown]
# ## Fig. 11 — MOS
# Not computed from invented scores: it needs human raters (the paper: 10 researchers, scale not stated; the spec
# assumes 1–5 ACR). The rating tool `fusion_core/papers/savf/mos.py` writes an anonymised, shuffled (seeded) static
# HTML sheet and its key, e.g. `python -m fusion_core.papers.savf.mos sheet --dataset tno42 --pairs 08,13 --methods
# savf,savf_noatt,cbf,gtf --out build/mos`; raters download their scores as CSV from the page; the organiser puts the
# key in `results/savf/mos/key.csv` and the raters' files in `results/savf/mos/ratings/`, and this cell aggregates them
# the paper's way (per image the highest and lowest score dropped, the rest averaged, then averaged over the images)
# into `mos.csv` and `fig11_mos.png`.

# %% tags=["nbval-check-output"]
from fusion_core.papers.savf import mos

mos_dir = out / "mos"
ratings = sorted((mos_dir / "ratings").glob("*.csv")) if (mos_dir / "key.csv").is_file() else []
if ratings:
    print(mos.aggregate(mos_dir / "key.csv", ratings, mos_dir).round(3).to_string(index=False))
else:
    print("Fig. 11: no human ratings collected, so no MOS is shown (rating tool: python -m fusion_core.papers.savf.mos)")
