"""SAVF ablations (spec 000 §7, notebook ``05a_savf_ablation``). The paper has no ablation table: it shows OURS vs OURS+
in its figures and says it "also conducted a comparative experiment on whether there is a channel attention module or
not" without a result. The spec adds extension rows, labelled "not in paper".

Every row except OURS and OURS+ changes the **main network only**: it is trained by the main stage of the protocol on
top of the frozen sub-task columns (backbone, EnhanceNet, AttentionNet) copied from the committed OURS+ checkpoint of
the same protocol and seed, so a row differs from OURS+ by its change and its own main-stage training, nothing else.
(Removing the CAM from the sub-tasks too would retrain all three stages: not offered.)

    python -m fusion_core.papers.savf.ablation --row nocam --protocol reduced --seed 0 --threads 1 --max-minutes 30

Checkpoints ``savf_<protocol>_<row>_seed<S>.pt`` beside OURS+ (``checkpoints/savf/`` for ``reduced``); resumable: the
same command continues (exit 75 while unfinished).
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import pandas as pd
import torch

from ... import report
from ...train import TrainedModel, manifest_protocol, quietly, seed_everything, train, trained_model
from .loss import MainLoss, relu2_2
from .model import PAPER, SAVFNet, load_checkpoint
from .train import (CHECKPOINT_DIR, METHOD_OF_VARIANT, PROTOCOLS, QUICK_DIR, _config, _done, checkpoint_name,
                    pair_set, train_attention)

PAPER_ROW, MENTIONED, EXTENSION = "paper", "paper mentions, reports nothing", "not in paper"
NOISE = "noise floor (not in paper)"


@dataclass(frozen=True)
class Row:
    """One ablation row: the label of the table, its status, the main network's settings and the main loss's."""

    label: str
    status: str
    change: str
    model: dict = field(default_factory=dict)
    loss: dict = field(default_factory=dict)
    seed_offset: int = 0  # the main stage trains with seed + offset (the columns stay those of ``seed``)
    attention_bce: float = 0.0  # > 0: sub-task 1 is retrained first, with this weight on BCE(F_S, G) (spec att_bce)


ROWS = {
    "base": Row("OURS+", PAPER_ROW, "all parts (method savf)"),
    "noatt": Row("OURS", PAPER_ROW, "F_S ≡ 1, no attention lateral (method savf_noatt)"),
    "nocam": Row("OURS+ −CAM", MENTIONED, "no CAM after the main network's MSRBs (sub-tasks keep theirs)",
                 {"main_cam": False}),
    "noglobal": Row("OURS+ −global", EXTENSION, "main network's Eq. 1 without the global stages 3–5",
                    {"main_global": False}),
    "noenhance": Row("OURS+ −enhance", EXTENSION, "no F_S⊙F_Enhance input and no enhancement lateral",
                     {"main_enhance": False}),
    "nolateral": Row("OURS+ −lateral", EXTENSION, "no Eq. 2 lateral connections (sub-tasks only gate the inputs)",
                     {"lateral": False}),
    "ssimonly": Row("OURS+ L_SSIM only", EXTENSION, "main loss L_SSIM only", loss={"w_perceptual": 0.0, "w_edge": 0.0}),
    "noperceptual": Row("OURS+ −L_Perceptual", EXTENSION, "main loss without L_Perceptual", loss={"w_perceptual": 0.0}),
    "noedge": Row("OURS+ −L_Edge", EXTENSION, "main loss without L_Edge", loss={"w_edge": 0.0}),
    "edgebce": Row("OURS+ Edge-BCE", EXTENSION, "L_Edge as BCE of the Laplacian responses", loss={"edge": "bce"}),
    "attbce": Row("OURS+ BCE attention", EXTENSION, "sub-task 1 retrained with L_f + BCE(F_S, G) (spec flag att_bce, "
                  "weight 1) on OURS+'s backbone, then the main stage on it", attention_bce=1.0),
    "rerun": Row("OURS+ re-run", NOISE, "nothing: OURS+'s main stage trained again with seed + 1 on the same frozen "
                 "columns (the seed noise every row's difference is measured against)", seed_offset=1),
}
TRAINED = tuple(name for name in ROWS if name not in ("base", "noatt"))  # the rows this module trains


def folder(protocol: str) -> Path:
    return QUICK_DIR if protocol == "quick" else CHECKPOINT_DIR


def checkpoint_path(protocol: str, row: str, seed: int, out: str | Path | None = None) -> Path:
    """OURS+ / OURS: the main checkpoints of ``train.py``; the other rows ``savf_<protocol>_<row>_seed<S>.pt``."""
    base = Path(out) if out is not None else folder(protocol)
    if row in ("base", "noatt"):
        return base / checkpoint_name(protocol, row, seed)
    return base / f"{PAPER}_{protocol}_{row}_seed{seed}.pt"


def command(row: str, protocol: str = "reduced", seed: int = 0) -> str:
    """The exact command that trains (or resumes) a row."""
    if row in ("base", "noatt"):
        variant = "" if row == "base" else " --variant noatt"
        return f"python -m fusion_core.papers.savf.train --protocol {protocol} --seed {seed}{variant} --threads 1"
    return f"python -m fusion_core.papers.savf.ablation --row {row} --protocol {protocol} --seed {seed} --threads 1"


def train_row(row: str, protocol: str = "reduced", seed: int = 0, out: str | Path | None = None, device: str = "cpu",
              progress: bool = True, max_minutes: float | None = None) -> tuple[Path, pd.DataFrame]:
    """Train (or resume) the main stage of ``row`` on the frozen columns of the OURS+ checkpoint (protocol, seed)."""
    if row not in TRAINED:
        raise ValueError(f"row '{row}' is not one of {TRAINED} (OURS+ and OURS: fusion_core.papers.savf.train)")
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol '{protocol}' is not one of {sorted(PROTOCOLS)}")
    spec, recipe = ROWS[row], PROTOCOLS[protocol]
    columns = checkpoint_path(protocol, "base", seed, out)
    if not (columns.is_file() and _done(columns)):
        raise FileNotFoundError(f"{columns}: the ablation rows take their frozen sub-task columns from this OURS+ "
                                f"checkpoint; train it first: {command('base', protocol, seed)}")
    plus = load_checkpoint(columns, "cpu", expect="SAVFNet")
    deadline = None if max_minutes is None else time.monotonic() + 60.0 * max_minutes
    attention = plus.attention
    if spec.attention_bce:
        bce = dataclasses.replace(recipe, att_bce=spec.attention_bce)
        target = attention_checkpoint(protocol, row, seed, out)
        target.parent.mkdir(parents=True, exist_ok=True)
        attention, checkpoint, history = train_attention(bce, protocol, seed, target.parent, device, progress, deadline,
                                                         plus, target)
        if not _done(checkpoint):
            return checkpoint, history
    seed_everything(seed + spec.seed_offset)
    model = SAVFNet(attention=True, backbone_source=plus.config["backbone_source"], **recipe.model, **spec.model)
    for part in ("backbone", "enhance"):
        getattr(model, part).load_state_dict(getattr(plus, part).state_dict())
    model.attention.load_state_dict(attention.state_dict())
    loss_settings = {"edge": recipe.edge, **spec.loss}
    loss = MainLoss(relu2_2(model.backbone), recipe.main_ref, **loss_settings)
    stage = recipe.main
    checkpoint = checkpoint_path(protocol, row, seed, out)
    history = train(model, loss, pair_set("main_train", stage.size, stage.limit, augment=recipe.augment),
                    _config(stage, seed + spec.seed_offset, device, protocol), checkpoint=checkpoint,
                    progress=progress, log=None,
                    max_seconds=None if deadline is None else max(1.0, deadline - time.monotonic()))
    return checkpoint, history


def attention_checkpoint(protocol: str, row: str, seed: int, out: str | Path | None = None) -> Path:
    """The retrained sub-task 1 of a row with ``attention_bce``: ``savf_<protocol>_<row>_attention_seed<S>.pt``."""
    return checkpoint_path(protocol, row, seed, out).with_name(f"{PAPER}_{protocol}_{row}_attention_seed{seed}.pt")


def discover(protocol: str, rows: Sequence[str] = tuple(ROWS), seeds: Sequence[int] = (0,),
             out: str | Path | None = None) -> list[TrainedModel]:
    """The complete checkpoints of ``rows`` (table order); a row without one is simply absent."""
    found = []
    for row in rows:
        for seed in seeds:
            path = checkpoint_path(protocol, row, seed, out)
            if path.is_file() and _done(path) and manifest_protocol(path) == protocol:
                found.append(trained_model(path, PAPER, row, seed, protocol))
    return found


def ensure_rows(profile: str, protocol: str | None = None, rows: Sequence[str] = tuple(ROWS), seeds: Sequence[int] = (0,),
                device: str = "cpu", progress: bool = False) -> list[TrainedModel]:
    """quick: trains OURS, OURS+ and every row (seconds each); eval: the committed ones only; full: trains what is
    missing (the GPU protocol)."""
    from .train import ensure_models, plan

    protocol, _ = plan(profile, protocol)
    if profile != "eval":
        ensure_models(profile, protocol, seeds=seeds, device=device, progress=progress)
        for row in rows:
            for seed in seeds:
                if row in TRAINED:
                    with quietly(progress):
                        train_row(row, protocol, seed, device=device, progress=progress)
    return discover(protocol, rows, seeds)


def sources(models: Sequence[TrainedModel], device: str = "cpu") -> list:
    """One engine source per row model (OURS: method savf_noatt; every other row: method savf with its weights)."""
    import dataclasses

    from ... import engine

    return [dataclasses.replace(engine.method_source(METHOD_OF_VARIANT.get(m.variant, "savf"), weights=m.path,
                                                     device=device),
                                key=m.key, rules=None, labels={"variant": m.variant, "seed": m.seed}) for m in models]


def table(rows: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """Mean over the pairs of each test set per row and metric, wide, rows in :data:`ROWS` order with label and
    status (``not in paper`` for the spec's extensions)."""
    frame = rows.assign(row=rows["source"].str.replace(r"_seed\d+$", "", regex=True))
    wide = frame.groupby(["role", "row"], sort=False)[list(metrics)].mean().reset_index()
    pairs = frame.groupby(["role", "row"], sort=False)["stem"].nunique().rename("pairs").reset_index()
    wide = wide.merge(pairs, on=["role", "row"])
    wide.insert(2, "label", wide["row"].map(lambda r: ROWS[r].label))
    wide.insert(3, "status", wide["row"].map(lambda r: ROWS[r].status))
    order = {name: k for k, name in enumerate(ROWS)}
    return wide.sort_values(["role", "row"], key=lambda s: s.map(order) if s.name == "row" else s).reset_index(drop=True)


def paired_effects(rows: pd.DataFrame, metrics: Sequence[str], reference: str = "base") -> pd.DataFrame:
    """Each row against OURS+ on the same pairs (both test sets together), :func:`report.paired_effects` with the
    ``rerun`` row (OURS+ trained again with another seed) as the noise floor."""
    return report.paired_effects(rows, metrics, reference, {name: spec.label for name, spec in ROWS.items()},
                                 noise_row="rerun")


def status_table(models: Sequence[TrainedModel], protocol: str, seed: int = 0) -> pd.DataFrame:
    """Every row: label, status, change, and either its checkpoint or "owed" with the command that trains it."""
    have = {m.variant: m for m in models}
    out = []
    for name, spec in ROWS.items():
        model = have.get(name)
        out.append({"row": name, "label": spec.label, "status": spec.status, "change": spec.change,
                    "checkpoint": model.path.name if model else "owed",
                    "command": "" if model else command(name, protocol, seed)})
    return pd.DataFrame(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m fusion_core.papers.{PAPER}.ablation", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--row", required=True, choices=TRAINED)
    parser.add_argument("--protocol", default="reduced", choices=sorted(PROTOCOLS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="checkpoint folder (default: checkpoints/savf, quick: build/quick)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--max-minutes", type=float, default=None)
    parser.add_argument("--no-score", dest="score", action="store_false", help="do not compute the row's raw files "
                        "(by default, once trained, its raw files on test_tno and test_vifb, convention savf, are "
                        "written to results/savf/raw/, which the eval profile of 05a reads)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.monotonic()
    try:
        checkpoint, history = train_row(args.row, args.protocol, args.seed, args.out, args.device, True, args.max_minutes)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    done = _done(checkpoint)
    print(f"{'finished' if done else 'stopped (rerun to resume)'}: {checkpoint} ({time.monotonic() - start:.0f} s)")
    if done and args.score:
        raw = score_rows(discover(args.protocol, (args.row,), (args.seed,), args.out), device=args.device)
        print(f"raw rows: {len(raw.rows)} ({time.monotonic() - start:.0f} s)")
    return 0 if done else 75


def score_rows(models: Sequence[TrainedModel], out: str | Path | None = None, device: str = "cpu"):
    """Compute (or read) the raw files of ``models`` on both full test sets, as the eval profile of 05a reads them."""
    from ... import engine
    from . import experiment as exp

    out = out if out is not None else report.results_dir(PAPER, "eval")
    return engine.collect(sources(models, device), exp.test_sets("eval"), [None], metrics=exp.METRICS,
                          convention=exp.CONVENTION, out=out, compute=True, verify=None)


if __name__ == "__main__":
    sys.exit(main())
