"""Train DIDFuse from the command line (no notebook server needed), and the models each notebook profile uses.

    python -m fusion_core.papers.didfuse.train --protocol quick --seed 0 --out build/didfuse
    python -m fusion_core.papers.didfuse.train --protocol paper --seed 3 --variant exp2 --device cuda
    python -m fusion_core.papers.didfuse.train --write-splits          # (re)write fusion_core/papers/didfuse/splits/*.txt

Protocols (:data:`PROTOCOLS`; explicit options override them):

========  ======  =====  ====  =====  ========  ===============================================================
protocol  epochs  batch  crop  pairs  lr steps  what it is
========  ======  =====  ====  =====  ========  ===============================================================
paper     120     24     128   180    40, 80    the paper's protocol on the FLIR-Train-180 split
                                                (NIR-Mountain/Water unavailable: spec §9.1)
reduced   12      24     64    180    4, 8      the committed CPU models (checkpoints/didfuse/): 64² centre crops
                                                (¼ the pixels) and a tenth of the epochs; a labelled substitute
quick     2       4      32    8      1         seconds on a CPU, for tests and smoke runs (numbers mean nothing);
                                                the quick notebooks train it on the first 4 pairs: one step per epoch
========  ======  =====  ====  =====  ========  ===============================================================

Learning-rate steps sit at ⅓ and ⅔ of the epochs (÷10 each; "decrease by 10 times every 40 epochs" of 120), so
``--epochs`` keeps the schedule's shape. Variants (:data:`VARIANTS`): ``base`` is the un-ablated network, ``exp1``
… ``exp5`` Table IV's ablations (:data:`ABLATIONS`). Output: ``<out>/didfuse_<protocol>[_<variant>]_seed<S>.pt``
plus its ``.json`` manifest and ``_history.csv`` (see :mod:`fusion_core.train`); an existing checkpoint of the
same run is resumed. ``--profile`` (the old name of ``--protocol``) and ``--ablation`` (of ``--variant``) are
still accepted, as are the old names ``full`` of the ``paper`` protocol and of the ``base`` variant.
"""
from __future__ import annotations

import argparse
import re
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import pandas as pd
import torch

from ... import data
from .loss import DIDFUSE_PRESETS, DIDFuseLoss
from .model import DIDFuse
from ...train import (INCOMPLETE, CropPairs, TrainConfig, TrainedModel, progress_of, quietly, seed_everything, train,
                      trained_model)
from ...train import first_seeds as _first_seeds

PAPER = "didfuse"
CHECKPOINT_DIR = data.REPO_ROOT / "checkpoints" / PAPER
QUICK_DIR = data.REPO_ROOT / "build" / "quick" / "checkpoints" / PAPER


@dataclass(frozen=True)
class Protocol:
    """One training recipe: Adam 1e-3 ÷10 at ⅓ and ⅔ of ``epochs``, centre crops of the ``train`` split."""

    epochs: int
    batch_size: int
    crop: int
    max_pairs: int | None  # the first K pairs of the split (None: all 180)
    description: str


PROTOCOLS = {
    "paper": Protocol(120, 24, 128, None, "paper protocol: Adam 1e-3 ÷10 at epochs 40/80, batch 24, 128² centre crops, "
                                          "flir_train180 (NIR-Mountain/Water unavailable)"),
    "reduced": Protocol(12, 24, 64, None, "CPU substitute (the committed models): the paper protocol with 64² centre "
                                          "crops instead of 128² and 12 epochs instead of 120 (lr ÷10 at 4 and 8)"),
    "quick": Protocol(2, 4, 32, 8, "smoke run: 2 epochs, 8 pairs, 32² crops, batch 4"),
}
PROTOCOL_ALIASES = {"full": "paper"}  # the paper protocol's old name (the GPU campaign and older docs use it)


@dataclass(frozen=True)
class Ablation:
    """One Table IV experiment: the network switches and the loss switches it trains with (spec §7)."""

    model: dict
    loss: dict
    description: str


ABLATIONS = {
    "exp1": Ablation(dict(base=False), dict(base_term=False),
                     "Exp. 1, no base-scale module: conv3 removed, decoder gets D only; loss Eq. 26"),
    "exp2": Ablation(dict(detail=False), dict(detail_term=False),
                     "Exp. 2, no detail-scale module: conv4 removed, decoder gets B only; loss Eq. 27"),
    "exp3": Ablation(dict(), dict(base_term=False, detail_term=False),
                     "Exp. 3, no two-scale decomposition loss: full network; loss Eq. 28"),
    "exp4": Ablation(dict(detail=False), dict(base_term=False, detail_term=False, autoencoder=True),
                     "Exp. 4, plain auto-encoder: conv4 removed, skips kept; loss Eq. 29 on IR and VIS as single "
                     "images (a batch holds 24 pairs = 48 singles, not 24 random singles)"),
    "exp5": Ablation(dict(skips=False), dict(),
                     "Exp. 5, no skip connections: conv6/conv7 take 64 channels; loss Eq. 5"),
}
BASE = Ablation({}, {}, "DIDFuse, no ablation")
VARIANTS = ("base", *ABLATIONS)
VARIANT_ALIASES = {"full": "base"}  # the base variant's old name


def protocol_name(protocol: str) -> str:
    """``protocol`` with the old name ``full`` read as ``paper``; a ValueError names an unknown one."""
    protocol = PROTOCOL_ALIASES.get(protocol, protocol)
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown DIDFuse protocol '{protocol}' ({', '.join(PROTOCOLS)})")
    return protocol


def variant_name(variant: str) -> str:
    """``variant`` with the old name ``full`` read as ``base``; a ValueError names an unknown one."""
    variant = VARIANT_ALIASES.get(variant, variant)
    if variant not in VARIANTS:
        raise ValueError(f"unknown DIDFuse variant '{variant}' ({', '.join(VARIANTS)})")
    return variant


def milestones(epochs: int) -> tuple[int, ...]:
    """Steps at ⅓ and ⅔ of the run: (40, 80) for 120 epochs."""
    return tuple(sorted({m for m in (round(epochs / 3), round(2 * epochs / 3)) if 0 < m < epochs}))


def checkpoint_name(protocol: str, variant: str, seed: int) -> str:
    """File name ``didfuse_<protocol>[_<variant>]_seed<S>.pt`` (the base variant unnamed: ``didfuse_reduced_seed0.pt``)."""
    variant = variant_name(variant)
    return f"didfuse_{protocol_name(protocol)}" + ("" if variant == "base" else f"_{variant}") + f"_seed{seed}.pt"


# --------------------------------------------------------------------------- one training

def train_model(protocol: str = "quick", seed: int = 0, out: str | Path = CHECKPOINT_DIR, variant: str = "base",
                device: str = "cpu", progress: bool = True, max_minutes: float | None = None, *,
                epochs: int | None = None, crop: int | None = None, max_pairs: int | None = None,
                batch_size: int | None = None, loss_preset: str = "paper", crop_mode: str = "center",
                resume: bool = True, name: str | None = None) -> tuple[Path, pd.DataFrame]:
    """Train (or resume) one DIDFuse model of ``variant`` (:data:`VARIANTS`); returns (checkpoint, history).

    The keyword-only options override the protocol (the manifest records which). ``max_minutes`` bounds
    this call, data loading included (see :func:`fusion_core.train.train`); a stopped run resumes when
    called again. ``name`` replaces the file stem; a loss preset other than ``paper`` is appended to it.
    """
    started = time.perf_counter()
    protocol, variant = protocol_name(protocol), variant_name(variant)
    ablation = ABLATIONS.get(variant, BASE)
    base = PROTOCOLS[protocol]
    recipe = replace(base, epochs=epochs if epochs is not None else base.epochs,
                     batch_size=batch_size or base.batch_size, crop=crop or base.crop,
                     max_pairs=max_pairs if max_pairs is not None else base.max_pairs)
    config = TrainConfig(epochs=recipe.epochs, batch_size=recipe.batch_size, lr=1e-3,
                         milestones=milestones(recipe.epochs), gamma=0.1, seed=seed, device=device,
                         protocol=protocol)
    seed_everything(seed)  # before the model: the initial weights depend on the seed only
    model = DIDFuse(**ablation.model)
    loss = DIDFuseLoss(loss_preset, **ablation.loss)
    stem = name or (Path(checkpoint_name(protocol, variant, seed)).stem
                    + ("" if loss_preset == "paper" else f"_{loss_preset}"))
    checkpoint = Path(out) / f"{stem}.pt"
    if resume and progress_of(checkpoint) == (recipe.epochs, recipe.epochs):
        # finished: train() checks the settings and returns at once, without decoding the training images
        return checkpoint, train(model, loss, None, config, checkpoint=checkpoint, progress=False, log=None)
    pairs = data.load_split(PAPER, "train")
    if recipe.max_pairs is not None:
        pairs = pairs[: recipe.max_pairs]
    crops = CropPairs.from_pairs(pairs, crop=recipe.crop, mode=crop_mode, progress=progress)
    info = {"split": f"{PAPER}/train", **crops.describe(), "variant": variant,
            "variant_description": ablation.description, "protocol_description": recipe.description
            if recipe == base else f"{base.description}; overridden: {_overrides(base, recipe)}"}
    budget = None if max_minutes is None else max(60.0 * max_minutes - (time.perf_counter() - started), 0.0)
    history = train(model, loss, crops, config, checkpoint=checkpoint, resume=resume, progress=progress,
                    data_info=info, max_seconds=budget)
    return checkpoint, history


def _overrides(base: Protocol, recipe: Protocol) -> str:
    return ", ".join(f"{k}={getattr(recipe, k)}" for k in ("epochs", "batch_size", "crop", "max_pairs")
                     if getattr(recipe, k) != getattr(base, k))


# --------------------------------------------------------------------------- the models of a notebook profile

@dataclass(frozen=True)
class Plan:
    """What a notebook profile trains: the protocol, where its checkpoints live, the seeds of each variant."""

    protocol: str
    checkpoint_dir: Path
    seeds: dict[str, tuple[int, ...]]
    overrides: dict = field(default_factory=dict)  # :func:`train_model` options (quick: 4 pairs, one step per epoch)


N_PAPER = 25  # trainings per variant the paper averaged (Tables III-IV; 20 for Fig. 6)


def plan(profile: str, protocol: str | None = None) -> Plan:
    """The models a notebook ``profile`` evaluates (and, for quick and full, trains).

    ``quick`` always uses its own throw-away models (2 epochs on 4 pairs, build/quick/). ``eval`` and ``full``
    read ``checkpoints/didfuse/``; ``protocol`` picks the checkpoints: ``reduced`` (the committed CPU models,
    the default of ``eval``) or ``paper`` (the default of ``full``; trained on a GPU through
    :mod:`fusion_core.sweep`).
    """
    if profile == "quick":
        return Plan("quick", QUICK_DIR, {"base": (0, 1), **{v: (0,) for v in ABLATIONS}}, {"max_pairs": 4})
    if profile not in ("eval", "full"):
        raise ValueError(f"unknown profile '{profile}' (quick, eval, full)")
    protocol = protocol_name(protocol or ("reduced" if profile == "eval" else "paper"))
    if protocol == "reduced":
        return Plan("reduced", CHECKPOINT_DIR, {"base": (0, 1, 2), **{v: (0, 1) for v in ABLATIONS}})
    if protocol == "paper":
        return Plan("paper", CHECKPOINT_DIR, {v: tuple(range(N_PAPER)) for v in VARIANTS})
    raise ValueError(f"profile '{profile}' evaluates the reduced or paper protocol, not '{protocol}'")


_NAME = re.compile(r"^didfuse_(?P<protocol>[a-z]+)(?:_(?P<variant>exp[1-5]))?_seed(?P<seed>\d+)\.pt$")


def discover(checkpoint_dir: str | Path, protocol: str = "reduced") -> list[TrainedModel]:
    """Complete trained models of ``protocol`` in ``checkpoint_dir``, ordered by variant then seed.

    ``didfuse_<protocol>_seed<S>.pt`` is the base model, ``didfuse_<protocol>_exp<K>_seed<S>.pt`` Table IV's
    ablation K. A checkpoint counts only when its ``.json`` manifest says ``epochs_done == epochs`` (the
    trainer saves every epoch, so an unfinished run is on disk too).
    """
    protocol = protocol_name(protocol)
    found = []
    for path in sorted(Path(checkpoint_dir).glob("didfuse_*.pt")):
        match = _NAME.match(path.name)
        if not match or match["protocol"] != protocol:
            continue
        progress = progress_of(path)
        if progress is None or progress[0] != progress[1]:
            continue
        found.append(trained_model(path, PAPER, match["variant"] or "base", int(match["seed"]), protocol))
    return sorted(found, key=lambda m: (VARIANTS.index(m.variant), m.seed))


def first_seeds(models: Sequence[TrainedModel], repeats: int | None) -> list[TrainedModel]:
    """The first ``repeats`` trainings (lowest seeds) of each variant; all of them when ``repeats`` is None."""
    return _first_seeds(models, repeats, VARIANTS)


def ensure_models(profile: str, variants: Sequence[str] = VARIANTS, repeats: int | None = None,
                  protocol: str | None = None, progress: bool = False, parallel: int | None = None,
                  max_minutes: float | None = None, device: str | None = None) -> list[TrainedModel]:
    """Train (or resume) every model the profile wants; eval only discovers. Returns the complete models.

    ``repeats`` caps the trainings per variant (seeds 0…repeats−1 of the plan's list). The paper protocol
    trains through :mod:`fusion_core.sweep`: ``parallel`` runs at once (default 8 on a GPU; 1 on a CPU),
    each stopping after ``max_minutes`` and resumed by the next call; the other protocols train in this
    process, one after another (``device`` default: cuda if available for the sweep, else cpu).
    """
    variants = [variant_name(v) for v in variants]
    config = plan(profile, protocol)
    if profile != "eval":
        have = {(m.variant, m.seed) for m in discover(config.checkpoint_dir, config.protocol)}
        wanted = [(v, seed) for v in variants for seed in config.seeds.get(v, ())[:repeats]]
        todo = [job for job in wanted if job not in have]
        if todo and config.protocol == "paper":
            _train_with_sweep(todo, config, parallel, max_minutes, device)
        elif todo:
            for variant, seed in todo:
                with quietly(progress):
                    train_model(config.protocol, seed, config.checkpoint_dir, variant, device or "cpu", progress,
                                **config.overrides)
    found = [m for m in discover(config.checkpoint_dir, config.protocol) if m.variant in variants]
    return first_seeds(found, repeats)


def _train_with_sweep(todo: Sequence[tuple[str, int]], config: Plan, parallel: int | None,
                      max_minutes: float | None, device: str | None) -> None:
    """The missing paper-protocol trainings as concurrent processes on one device (``fusion_core.sweep``)."""
    from ... import sweep

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    parallel = parallel or (8 if device == "cuda" else 1)
    command = [sys.executable, "-m", "fusion_core.papers.didfuse.train", "--protocol", config.protocol, "--device",
               device, "--out", str(config.checkpoint_dir), "--no-progress"]
    if max_minutes is not None:
        command += ["--max-minutes", str(max_minutes)]
    jobs = [sweep.Job(f"{variant}_seed{seed}", [*command, "--seed", str(seed), "--variant", variant])
            for variant, seed in todo]
    logs = data.REPO_ROOT / "build" / "sweep" / PAPER
    threads = torch.get_num_threads() if device == "cpu" else 1
    sweep.run_jobs(jobs, parallel, threads, logs, echo=lambda m: print(time.strftime("%H:%M:%S"), m, flush=True))
    failed = [j.name for j in jobs if j.status == "failed"]
    if failed:
        raise RuntimeError(f"training failed for {', '.join(failed)}; logs in {logs}")


# --------------------------------------------------------------------------- splits

TEST_SETS = {"test_tno": "tno40", "test_flir": "flir_test40", "test_nir": "nir_country52"}
NEAR_DUPLICATE = 0.9  # thumbnail correlation above which two images count as the same picture


def _thumbnail(path) -> torch.Tensor:
    """Zero-mean, unit-norm 48×64 area-resized grey thumbnail (aspect ignored): r = dot product."""
    thumb = torch.nn.functional.interpolate(data.read_grey(path), size=(48, 64), mode="area").flatten().double()
    thumb = thumb - thumb.mean()
    return thumb / (thumb.norm() + 1e-12)


def write_splits(log=print) -> list[Path]:
    """Write fusion_core/papers/didfuse/splits/{train,test_tno,test_flir,test_nir,val}.txt from the data registry.

    val.txt is the validation proxy for Tables III–IV (NIR-Urban/Street are unavailable): the
    single-frame TNO scenes (``tno_scenes``) whose IR and VIS images share no decoded pixels with any
    image of the three Table V test sets or the training set (:func:`fusion_core.data.pixel_hash`).
    """
    written = [data.write_split(PAPER, "train", data.list_pairs("flir_train180"),
                                "DIDFuse training set: FLIR-Train-180 (released Train_data_FLIR), all pairs.\n"
                                "Paper adds NIR-Mountain (55) + NIR-Water (51): unavailable offline (spec 9.1).")]
    for role, name in TEST_SETS.items():
        written.append(data.write_split(PAPER, role, data.list_pairs(name), f"DIDFuse Table V test set: {name}, all pairs."))
    guarded = ["flir_train180", *TEST_SETS.values()]
    taken: dict[str, str] = {}
    thumbs: list[tuple[torch.Tensor, str]] = []
    for name in guarded:
        for pair in data.list_pairs(name):
            for path in (pair.ir, pair.vis):
                taken.setdefault(data.pixel_hash(path), pair.name)
                thumbs.append((_thumbnail(path), pair.name))
    guard_stack = torch.stack([t for t, _ in thumbs])
    candidates = data.list_pairs("tno_scenes")
    kept, dropped, nearest = [], [], []
    for pair in candidates:
        hits = {taken[h] for h in (data.pixel_hash(pair.ir), data.pixel_hash(pair.vis)) if h in taken}
        if not hits:  # second guard: the same picture re-encoded, resized or slightly cropped
            scores = torch.stack([guard_stack @ _thumbnail(p) for p in (pair.ir, pair.vis)]).amax(0)
            best = int(scores.argmax())
            if scores[best] > NEAR_DUPLICATE:
                hits = {f"{thumbs[best][1]}, thumbnail r={float(scores[best]):.3f}"}
            else:
                nearest.append((float(scores[best]), pair.stem, thumbs[best][1]))
        (dropped if hits else kept).append((pair, sorted(hits)))
    closest = max(nearest) if nearest else (float("nan"), "-", "-")
    header = (
        "DIDFuse validation proxy (replaces NIR-Urban/NIR-Street, unavailable; spec 9.1 'proxy-val A').\n"
        f"Candidates: the {len(candidates)} single-frame TNO scene folders of data set 'tno_scenes' (tno_full).\n"
        "Disjointness check 1: SHA-256 of the decoded 8-bit grey pixels (fusion_core.data.pixel_hash) of each\n"
        f"candidate's IR and VIS image against every IR and VIS image of {', '.join(guarded)}\n"
        f"({len(taken)} distinct hashes). A candidate sharing any hash is excluded.\n"
        "Check 2 (near duplicates): Pearson correlation of 48x64 area-resized thumbnails against the same\n"
        f"images; excluded above {NEAR_DUPLICATE}. Highest among kept: r={closest[0]:.3f} ({closest[1]} vs {closest[2]});\n"
        "kept scenes can share a TNO scene series with a test pair (other frame/view), never the image.\n"
        f"Excluded {len(dropped)}: " + ("; ".join(f"{p.stem} (= {', '.join(h)})" for p, h in dropped) or "none") + "\n"
        f"Kept {len(kept)}. Written by: python -m fusion_core.papers.didfuse.train --write-splits"
    )
    written.append(data.write_split(PAPER, "val", [p for p, _ in kept], header))
    if log:
        log(f"val: kept {len(kept)} of {len(candidates)} tno_scenes pairs, excluded {len(dropped)}")
        for path in written:
            log(f"wrote {path}")
    return written



# --------------------------------------------------------------------------- command line

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fusion_core.papers.didfuse.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    protocols = [*PROTOCOLS, *PROTOCOL_ALIASES]
    parser.add_argument("--protocol", default="quick", choices=protocols, metavar="{" + ",".join(PROTOCOLS) + "}")
    parser.add_argument("--profile", dest="protocol", choices=protocols, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(CHECKPOINT_DIR), help="folder for checkpoint, manifest and loss log")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--crop", type=int, help="training crop side (pixels)")
    parser.add_argument("--crop-mode", default="center", choices=["center", "random"])
    parser.add_argument("--max-pairs", type=int, help="use only the first K pairs of the training split")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--loss", default="paper", choices=sorted(DIDFUSE_PRESETS), help="loss preset")
    variants = [*VARIANTS, *VARIANT_ALIASES]
    parser.add_argument("--variant", default="base", choices=variants, metavar="{" + ",".join(VARIANTS) + "}",
                        help="base: the un-ablated network; expK: Table IV's ablation K")
    parser.add_argument("--ablation", dest="variant", choices=variants, help=argparse.SUPPRESS)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--name", help="checkpoint file stem (default didfuse_<protocol>[_<variant>]_seed<S>)")
    parser.add_argument("--no-resume", action="store_true", help="start over even if the checkpoint exists")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--max-minutes", type=float,
                        help="stop after the last epoch that fits in this many minutes (checkpoint saved; exit "
                             f"code {INCOMPLETE}); rerun the same command to resume")
    parser.add_argument("--write-splits", action="store_true", help="write fusion_core/papers/didfuse/splits/*.txt and exit")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        if args.write_splits:
            write_splits()
            return 0
        checkpoint, history = train_model(
            args.protocol, args.seed, args.out, args.variant, args.device, not args.no_progress, args.max_minutes,
            epochs=args.epochs, crop=args.crop, max_pairs=args.max_pairs, batch_size=args.batch_size,
            loss_preset=args.loss, crop_mode=args.crop_mode, resume=not args.no_resume, name=args.name)
    except (data.DataError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    final = history.iloc[-1] if len(history) else None
    done, epochs = progress_of(checkpoint) or (0, 0)
    print(f"wrote {checkpoint} ({done}/{epochs} epochs" + (f", final loss {final['total']:.5f})" if final is not None else ")"))
    return 0 if done >= epochs else INCOMPLETE


if __name__ == "__main__":
    raise SystemExit(main())
